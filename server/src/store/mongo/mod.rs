//! The production store on MongoDB (official `mongodb` driver, standard API
//! only: CRUD, unique indexes, multi-document transactions; no JavaScript,
//! no `$where`, no map-reduce), implementing the same traits as the
//! embedded SQLite store and held to the same contract tests.
//!
//! Collections (indexes are created at start-up, idempotently):
//!
//! | collection | `_id` | notable fields / indexes |
//! | --- | --- | --- |
//! | `players` | player uuid | name, role, score, streak, best_streak, answers, score_at_ms; index `score` |
//! | `accounts` | username | player_id (unique), password_hash |
//! | `images` | sha256 hex | mime, size, source, uploader, votes `[7]`, status, consensus, playable; index `updated_ms`, `status` |
//! | `image_bytes` | sha256 hex | bytes (binary). Crops and faces are small (< 1 MB), far under the 16 MB document limit, so plain documents instead of GridFS |
//! | `rounds` | round uuid | player_id, image_id (unique together), state, deadlines |
//! | `labels` | round uuid | image_id + player_id unique; emotion, shown, response_ms, points, created_ms; append-only |
//! | `predictions` | `<image>:<model>` | image_id, model, probabilities |
//! | `uploads` | sha256 hex | player_id, consent scopes + version + time, face box, original, deleted_ms; index (player_id, created_ms) |
//! | `score_events` | idempotency key | player_id, delta, total, reason, at_ms; index `at_ms` |
//! | `consent_log` | generated | append-only: image_id, player_id, event (`given`/`revoked`), scopes, version, at_ms |
//! | `leases` | lease name | holder, expires_ms: one conditional upsert takes a lease (`leases.rs`) |
//! | `models` | model version | parent, architecture, state, state_ms, replaced, gate_passed, test_accuracy, card (JSON text), has_files; index `created_ms` |
//! | `model_files` | `<version>/<file>/<seq>` | version, name, seq, bytes: each file in chunks of at most 4 MiB |
//! | `registry` | `champion` | version: the serving model (the compare-and-set of promotions and rollbacks) |
//!
//! Every value a client sends reaches a query only as a typed value inside
//! a document this module builds (`doc! { "_id": username }`), never as a
//! document or operator of its own: `{"$gt": ""}` is just a string.
//!
//! An answer is one multi-document transaction (round, label, image tally,
//! player totals, settlement, ledger), committed with the configured write
//! concern before `record_answer` returns: the store loads what
//! `emofy_game::plan::plan_answer` reads, and applies the plan's writes. Every
//! multi-document write goes through the `transaction!` helper in `tx.rs` (commit or
//! abort; the whole transaction retried with jittered backoff on transient
//! errors, within a deadline).
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | the store, connecting, indexes |
//! | `tx.rs` | the transaction helper, retries and deadlines |
//! | `codec.rs` | error mapping and document codecs |
//! | `players.rs`, `images.rs`, `uploads.rs` | the plain traits |
//! | `rounds.rs` | offers, the answer (load → plan → apply), the label writer (group commit) |
//! | `review.rs` | moderation (load → plan → apply), reliabilities, the audit log, truth passes |
//! | `models.rs` | the model registry and its files |

mod prelude;

mod codec;
mod images;
mod leases;
mod models;
mod players;
mod review;
mod rounds;
pub(crate) mod tx;
mod uploads;

use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, IndexOptions, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use tokio::sync::mpsc;

use crate::store::StoreError;
use codec::{err, is_duplicate};
use rounds::{PendingAnswer, label_writer};

/// The MongoDB store. Cheap to clone.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// The label writer's queue (group commit); `None`: one transaction per answer.
    writer: Option<mpsc::Sender<PendingAnswer>>,
    limits: Limits,
}

/// Deadlines and retries of the store's transactions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// How long a player waits for MongoDB to confirm an answer before `try_again`.
    pub(super) answer_deadline: std::time::Duration,
    /// How long any other transaction may keep retrying.
    pub(super) transaction_deadline: std::time::Duration,
    /// Attempts at a transaction that keeps failing transiently.
    pub(super) attempts: usize,
}

/// How answers reach MongoDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerWrites {
    /// The label writer: answers queued while a commit is in flight go
    /// together in the next transaction (one commit, one journal flush),
    /// and each is acknowledged only after that commit.
    GroupCommit { max_batch: usize },
    /// One transaction per answer.
    OnePerAnswer,
}

/// Options for [`MongoStore::connect_with`] (`[storage.mongodb]`).
#[derive(Debug, Clone)]
pub struct MongoOptions {
    pub database: String,
    /// Write concern `majority` with journal (production with a replica
    /// set); otherwise `w: 1` with journal.
    pub majority: bool,
    pub writes: AnswerWrites,
    /// Answers queued for the label writer before callers wait.
    pub write_queue: usize,
    /// Reaching the server and preparing the indexes at start-up.
    pub connect_timeout: std::time::Duration,
    /// Server selection when the URI does not set `serverSelectionTimeoutMS`
    /// (short, so that a player gets `try_again` rather than a hang).
    pub server_selection_timeout: std::time::Duration,
    pub answer_deadline: std::time::Duration,
    pub transaction_deadline: std::time::Duration,
    pub transaction_attempts: usize,
}

impl MongoOptions {
    /// The defaults of `[storage.mongodb]`, for `database`.
    pub fn new(database: &str) -> MongoOptions {
        MongoOptions {
            database: database.to_owned(),
            majority: false,
            writes: AnswerWrites::GroupCommit { max_batch: 256 },
            write_queue: 4096,
            connect_timeout: std::time::Duration::from_secs(15),
            server_selection_timeout: std::time::Duration::from_secs(2),
            answer_deadline: std::time::Duration::from_secs(30),
            transaction_deadline: std::time::Duration::from_secs(10),
            transaction_attempts: 12,
        }
    }
}

impl MongoStore {
    /// Connects to `uri`, uses database `db`, and creates the indexes, with
    /// the default options otherwise. `journaled_majority`: write concern
    /// `majority` with journal (production); otherwise `w: 1` with journal.
    pub async fn connect(
        uri: &str,
        db: &str,
        journaled_majority: bool,
    ) -> Result<MongoStore, StoreError> {
        Self::connect_with(
            uri,
            MongoOptions {
                majority: journaled_majority,
                ..MongoOptions::new(db)
            },
        )
        .await
    }

    /// Connects with every option. Group commit starts the label writer task
    /// on the current tokio runtime.
    pub async fn connect_with(uri: &str, o: MongoOptions) -> Result<MongoStore, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(uri)
            .await
            .map_err(err)?;
        options.app_name = Some("emofy".into());
        options.write_concern = Some(
            WriteConcern::builder()
                .w(if o.majority {
                    Acknowledgment::Majority
                } else {
                    Acknowledgment::Nodes(1)
                })
                .journal(true)
                .build(),
        );
        // Fail fast when the server is away: the player gets `try_again`, not a hang.
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(o.server_selection_timeout);
        }
        if options.connect_timeout.is_none() {
            options.connect_timeout = Some(o.server_selection_timeout);
        }
        let client = Client::with_options(options).map_err(err)?;
        let mut store = MongoStore {
            db: client.database(&o.database),
            client,
            writer: None,
            limits: Limits {
                answer_deadline: o.answer_deadline,
                transaction_deadline: o.transaction_deadline,
                attempts: o.transaction_attempts.max(1),
            },
        };
        tokio::time::timeout(o.connect_timeout, store.create_indexes())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "MongoDB did not answer within {} s",
                    o.connect_timeout.as_secs()
                ))
            })??;
        if let AnswerWrites::GroupCommit { max_batch } = o.writes {
            let (tx, rx) = mpsc::channel(o.write_queue.max(1));
            tokio::spawn(label_writer(store.clone(), rx, max_batch.max(1)));
            store.writer = Some(tx);
        }
        Ok(store)
    }

    /// The database (for tests and tools).
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(super) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = || IndexOptions::builder().unique(true).build();
        let specs: Vec<(&str, Document, bool)> = vec![
            ("players", doc! {"score": -1, "score_at_ms": 1}, false),
            ("accounts", doc! {"player_id": 1}, true),
            (
                "reliability",
                doc! {"moderation": 1, "updated_ms": 1},
                false,
            ),
            ("images", doc! {"updated_ms": 1}, false),
            ("images", doc! {"status": 1}, false),
            ("rounds", doc! {"player_id": 1, "image_id": 1}, true),
            ("labels", doc! {"image_id": 1, "player_id": 1}, true),
            (
                "labels",
                doc! {"player_id": 1, "created_ms": -1, "_id": -1},
                false,
            ),
            ("labels", doc! {"image_id": 1, "created_ms": 1}, false),
            (
                "labels",
                doc! {"image_id": 1, "counted": 1, "created_ms": 1, "_id": 1},
                false,
            ),
            ("predictions", doc! {"model": 1, "image_id": 1}, false),
            (
                "uploads",
                doc! {"player_id": 1, "created_ms": -1, "_id": -1},
                false,
            ),
            ("uploads", doc! {"player_id": 1, "fingerprint": 1}, false),
            ("score_events", doc! {"at_ms": 1, "_id": 1}, false),
            ("consent_log", doc! {"image_id": 1, "at_ms": 1}, false),
            ("models", doc! {"created_ms": -1, "_id": -1}, false),
            (
                "model_files",
                doc! {"version": 1, "name": 1, "seq": 1},
                false,
            ),
        ];
        for (coll, keys, is_unique) in specs {
            let mut model = IndexModel::builder().keys(keys).build();
            if is_unique {
                model.options = Some(unique());
            }
            self.coll(coll).create_index(model).await.map_err(err)?;
        }
        self.backfill_counted().await
    }

    /// Labels written before each label said whether it counts: marked from
    /// their players' reliabilities (banned, or flagged and not cleared: not
    /// counted), once.
    async fn backfill_counted(&self) -> Result<(), StoreError> {
        let missing = doc! {"counted": {"$exists": false}};
        let labels = self.coll("labels");
        if labels
            .find_one(missing.clone())
            .await
            .map_err(err)?
            .is_none()
        {
            return Ok(());
        }
        let mut uncounted = Vec::new();
        let mut cursor = self
            .coll("reliability")
            .find(doc! {"$or": [
                {"moderation": "banned"},
                {"moderation": {"$ne": "cleared"}, "flag": {"$ne": null}},
            ]})
            .await
            .map_err(err)?;
        while let Some(d) = cursor.try_next().await.map_err(err)? {
            if let Ok(id) = d.get_str("_id") {
                uncounted.push(id.to_owned());
            }
        }
        labels
            .update_many(
                doc! {"counted": {"$exists": false}, "player_id": {"$in": uncounted}},
                doc! {"$set": {"counted": false}},
            )
            .await
            .map_err(err)?;
        labels
            .update_many(missing, doc! {"$set": {"counted": true}})
            .await
            .map_err(err)?;
        Ok(())
    }

    /// Inserts documents, leaving any whose `_id` is already there (migrations).
    pub(crate) async fn insert_ignoring_existing(
        &self,
        coll: &str,
        docs: Vec<Document>,
    ) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        match self.coll(coll).insert_many(docs).ordered(false).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate(&e) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    pub(super) async fn session(&self) -> Result<ClientSession, StoreError> {
        self.client.start_session().await.map_err(err)
    }
}
