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
//!
//! Every value a client sends reaches a query only as a typed value inside
//! a document this module builds (`doc! { "_id": username }`), never as a
//! document or operator of its own: `{"$gt": ""}` is just a string.
//!
//! An answer is one multi-document transaction (round, label, image tally,
//! player totals, settlement, ledger), committed with the configured write
//! concern before `record_answer` returns.

use async_trait::async_trait;
use emofy_game::{
    AnswerFacts, Emotion, ImageId, ImageStatus, ImageTally, Millis, PlayerId, PlayerTally,
    PoolEntry, Reliability, Role, RoundId, Transition, VoteCounts,
};
use emofy_inference::Prediction;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc, spec::BinarySubtype};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, IndexOptions, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use tokio::sync::{mpsc, oneshot};

use super::{
    AccountRecord, AnswerOutcome, AnswerRecord, Consent, ConsentEvent, FaceRegion, GameRules,
    ImageMeta, ImageSource, ImageStore, LabelCursor, LabelRecord, NewImage, NewUpload, OfferRecord,
    PlayerRecord, PlayerStore, RoundStore, ScoreChange, ScoreReason, Stats, StoreError,
    UploadAccess, UploadCursor, UploadRecord, UploadStore, truth,
};
use super::{
    AuditEntry, DatasetStats, ImageAction, ModeratedImage, PlayerAction, PlayerReliability,
    ReviewCandidate, ReviewStore, TruthPass, TruthSnapshot,
};

/// The MongoDB store. Cheap to clone.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// The label writer's queue (group commit); `None`: one transaction per answer.
    writer: Option<mpsc::Sender<PendingAnswer>>,
}

/// An answer waiting for the label writer.
struct PendingAnswer {
    answer: AnswerRecord,
    rules: GameRules,
    reply: oneshot::Sender<Result<AnswerOutcome, StoreError>>,
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

fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().all(|w| w.code == 11000)),
        _ => e.to_string().contains("E11000"),
    }
}

const TRANSIENT: &str = "mongodb (transient): ";

fn err(e: mongodb::error::Error) -> StoreError {
    if is_duplicate(&e) {
        StoreError::Conflict(e.to_string())
    } else if e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
    {
        StoreError::Unavailable(format!("{TRANSIENT}{e}"))
    } else {
        StoreError::Unavailable(format!("mongodb: {e}"))
    }
}

/// A transaction that failed for a reason worth retrying it whole (a write
/// conflict with a concurrent transaction, a commit whose result is unknown).
fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(TRANSIENT))
}

/// How long a player waits for MongoDB to confirm an answer before `try_again`.
const ANSWER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

fn unconfirmed() -> StoreError {
    StoreError::Unavailable(format!(
        "MongoDB did not confirm the answer within {} s",
        ANSWER_DEADLINE.as_secs()
    ))
}

/// Attempts at a transaction that keeps failing transiently.
const TRANSACTION_ATTEMPTS: usize = 12;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn get_i64(d: &Document, k: &str) -> Result<i64, StoreError> {
    match d.get(k) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) => Ok(*v as i64),
        other => Err(corrupt(format!("field {k}: {other:?}"))),
    }
}

fn get_u64(d: &Document, k: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(get_i64(d, k)?).unwrap_or(0))
}

fn get_u32(d: &Document, k: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(get_i64(d, k)?).unwrap_or(0))
}

fn get_str<'a>(d: &'a Document, k: &str) -> Result<&'a str, StoreError> {
    d.get_str(k).map_err(|e| corrupt(format!("field {k}: {e}")))
}

fn opt_str(d: &Document, k: &str) -> Option<String> {
    d.get_str(k).ok().map(str::to_owned)
}

fn get_bool(d: &Document, k: &str) -> bool {
    d.get_bool(k).unwrap_or(false)
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(format!("bad id {s:?}")))
}

fn emotion(s: Option<String>) -> Result<Option<Emotion>, StoreError> {
    s.map(|e| e.parse().map_err(|_| corrupt(format!("bad emotion {e:?}"))))
        .transpose()
}

fn votes_of(d: &Document) -> Result<VoteCounts, StoreError> {
    let arr = d
        .get_array("votes")
        .map_err(|e| corrupt(format!("votes: {e}")))?;
    let mut v = VoteCounts::default();
    if arr.len() != v.0.len() {
        return Err(corrupt("votes length"));
    }
    for (slot, b) in v.0.iter_mut().zip(arr) {
        *slot = match b {
            Bson::Int32(n) => u32::try_from(*n).unwrap_or(0),
            Bson::Int64(n) => u32::try_from(*n).unwrap_or(0),
            other => return Err(corrupt(format!("vote {other:?}"))),
        };
    }
    Ok(v)
}

fn votes_bson(v: &VoteCounts) -> Bson {
    Bson::Array(v.0.iter().map(|n| Bson::Int64(i64::from(*n))).collect())
}

fn status_of(d: &Document) -> Result<ImageStatus, StoreError> {
    let status = get_str(d, "status")?;
    let consensus = emotion(opt_str(d, "consensus"))?;
    Ok(match (status, consensus) {
        ("open", _) => ImageStatus::Open,
        ("retired", Some(label)) => ImageStatus::Retired { label },
        ("disputed", _) => ImageStatus::Disputed,
        ("removed", _) => ImageStatus::Removed,
        (s, _) => return Err(corrupt(format!("bad status {s:?}"))),
    })
}

fn consensus_bson(s: &ImageStatus) -> Bson {
    match s {
        ImageStatus::Retired { label } => Bson::String(label.as_str().into()),
        _ => Bson::Null,
    }
}

fn player_record(d: &Document) -> Result<PlayerRecord, StoreError> {
    let role = get_str(d, "role")?;
    Ok(PlayerRecord {
        id: parse_id(get_str(d, "_id")?)?,
        name: get_str(d, "name")?.to_owned(),
        role: Role::parse(role).ok_or_else(|| corrupt(format!("bad role {role:?}")))?,
        created: Millis(get_u64(d, "created_ms")?),
        tally: PlayerTally {
            score: get_u64(d, "score")?,
            streak: get_u32(d, "streak")?,
            best_streak: get_u32(d, "best_streak")?,
            answers: get_u32(d, "answers")?,
        },
        score_at: Millis(get_u64(d, "score_at_ms")?),
    })
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(mongodb::bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

fn bytes_of(d: &Document, k: &str) -> Option<Vec<u8>> {
    match d.get(k) {
        Some(Bson::Binary(b)) => Some(b.bytes.clone()),
        _ => None,
    }
}

/// Every document a find returns.
async fn all(find: mongodb::action::Find<'_, Document>) -> Result<Vec<Document>, StoreError> {
    find.await.map_err(err)?.try_collect().await.map_err(err)
}

/// Adds "strictly after `(ms, id)` in newest-first order" to a keyset-paged filter.
fn older_than(filter: &mut Document, ms: i64, id: String) {
    filter.insert(
        "$or",
        vec![
            doc! {"created_ms": {"$lt": ms}},
            doc! {"created_ms": ms, "_id": {"$lt": id}},
        ],
    );
}

impl MongoStore {
    /// Connects to `uri`, uses database `db`, and creates the indexes.
    /// `journaled_majority`: write concern `majority` with journal (production);
    /// otherwise `w: 1` with journal.
    pub async fn connect(
        uri: &str,
        db: &str,
        journaled_majority: bool,
    ) -> Result<MongoStore, StoreError> {
        Self::connect_with(
            uri,
            db,
            journaled_majority,
            AnswerWrites::GroupCommit { max_batch: 256 },
        )
        .await
    }

    /// [`MongoStore::connect`] with a choice of answer path. Group commit
    /// starts the label writer task on the current tokio runtime.
    pub async fn connect_with(
        uri: &str,
        db: &str,
        journaled_majority: bool,
        writes: AnswerWrites,
    ) -> Result<MongoStore, StoreError> {
        let mut options = mongodb::options::ClientOptions::parse(uri)
            .await
            .map_err(err)?;
        options.app_name = Some("emofy".into());
        options.write_concern = Some(
            WriteConcern::builder()
                .w(if journaled_majority {
                    Acknowledgment::Majority
                } else {
                    Acknowledgment::Nodes(1)
                })
                .journal(true)
                .build(),
        );
        // Fail fast when the server is away: the player gets `try_again`, not a hang.
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(std::time::Duration::from_secs(2));
        }
        if options.connect_timeout.is_none() {
            options.connect_timeout = Some(std::time::Duration::from_secs(2));
        }
        let client = Client::with_options(options).map_err(err)?;
        let mut store = MongoStore {
            db: client.database(db),
            client,
            writer: None,
        };
        tokio::time::timeout(std::time::Duration::from_secs(15), store.create_indexes())
            .await
            .map_err(|_| StoreError::Unavailable("MongoDB did not answer within 15 s".into()))??;
        if let AnswerWrites::GroupCommit { max_batch } = writes {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(label_writer(store.clone(), rx, max_batch.max(1)));
            store.writer = Some(tx);
        }
        Ok(store)
    }

    /// The database (for tests and tools).
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = || IndexOptions::builder().unique(true).build();
        let specs: Vec<(&str, Document, bool)> = vec![
            ("players", doc! {"score": -1, "score_at_ms": 1}, false),
            ("accounts", doc! {"player_id": 1}, true),
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
            ("predictions", doc! {"model": 1, "image_id": 1}, false),
            (
                "uploads",
                doc! {"player_id": 1, "created_ms": -1, "_id": -1},
                false,
            ),
            ("uploads", doc! {"player_id": 1, "fingerprint": 1}, false),
            ("score_events", doc! {"at_ms": 1, "_id": 1}, false),
            ("consent_log", doc! {"image_id": 1, "at_ms": 1}, false),
        ];
        for (coll, keys, is_unique) in specs {
            let mut model = IndexModel::builder().keys(keys).build();
            if is_unique {
                model.options = Some(unique());
            }
            self.coll(coll).create_index(model).await.map_err(err)?;
        }
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

    async fn session(&self) -> Result<ClientSession, StoreError> {
        self.client.start_session().await.map_err(err)
    }
}

#[async_trait]
impl PlayerStore for MongoStore {
    async fn create_player(
        &self,
        id: PlayerId,
        name: &str,
        role: Role,
        at: Millis,
    ) -> Result<PlayerRecord, StoreError> {
        self.coll("players")
            .insert_one(new_player(id, name, role, at))
            .await
            .map_err(err)?;
        Ok(PlayerRecord {
            id,
            name: name.to_owned(),
            role,
            created: at,
            tally: PlayerTally::default(),
            score_at: Millis(0),
        })
    }

    async fn player(&self, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError> {
        self.coll("players")
            .find_one(doc! {"_id": id.to_string()})
            .await
            .map_err(err)?
            .map(|d| player_record(&d))
            .transpose()
    }

    async fn scored_players(&self) -> Result<Vec<PlayerRecord>, StoreError> {
        let docs: Vec<Document> =
            all(self.coll("players").find(doc! {"score": {"$gt": 0_i64}})).await?;
        docs.iter().map(player_record).collect()
    }

    async fn create_account(
        &self,
        account: AccountRecord,
        name: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let mut s = self.session().await?;
        s.start_transaction().await.map_err(err)?;
        let result = async {
            self.coll("players")
                .insert_one(new_player(account.player, name, account.role, at))
                .session(&mut s)
                .await?;
            self.coll("accounts")
                .insert_one(doc! {
                    "_id": &account.username,
                    "player_id": account.player.to_string(),
                    "password_hash": &account.password_hash,
                    "created_ms": i64_of(at.0),
                })
                .session(&mut s)
                .await?;
            Ok::<_, mongodb::error::Error>(())
        }
        .await;
        finish(&mut s, result).await
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let Some(a) = self
            .coll("accounts")
            .find_one(doc! {"_id": username})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let player: PlayerId = parse_id(get_str(&a, "player_id")?)?;
        let p = self
            .player(player)
            .await?
            .ok_or_else(|| corrupt("account without player"))?;
        Ok(Some(AccountRecord {
            username: get_str(&a, "_id")?.to_owned(),
            player,
            password_hash: get_str(&a, "password_hash")?.to_owned(),
            role: p.role,
        }))
    }
}

fn new_player(id: PlayerId, name: &str, role: Role, at: Millis) -> Document {
    doc! {
        "_id": id.to_string(), "name": name, "role": role.as_str(), "created_ms": i64_of(at.0),
        "score": 0_i64, "score_at_ms": 0_i64, "streak": 0_i64, "best_streak": 0_i64, "answers": 0_i64,
    }
}

/// Commits on success, aborts on failure, and maps the driver's error.
async fn finish<T>(
    s: &mut ClientSession,
    result: Result<T, mongodb::error::Error>,
) -> Result<T, StoreError> {
    match result {
        Ok(v) => {
            s.commit_transaction().await.map_err(err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = s.abort_transaction().await;
            Err(err(e))
        }
    }
}

fn image_doc(id: ImageId, image: &NewImage, at: Millis, playable: bool) -> Document {
    doc! {
        "_id": id.to_hex(),
        "mime": &image.mime,
        "width": i64::from(image.width),
        "height": i64::from(image.height),
        "source": image.source.as_str(),
        "source_label": image.source_label.map(|e| e.as_str()),
        "uploader": image.uploader.map(|p| p.to_string()),
        "created_ms": i64_of(at.0),
        "updated_ms": i64_of(at.0),
        "votes": votes_bson(&VoteCounts::default()),
        "status": "open",
        "consensus": Bson::Null,
        "playable": playable,
    }
}

fn pool_entry(d: &Document) -> Result<PoolEntry, StoreError> {
    Ok(PoolEntry {
        image: parse_id(get_str(d, "_id")?)?,
        uploader: opt_str(d, "uploader").map(|u| parse_id(&u)).transpose()?,
        votes: votes_of(d)?,
        status: status_of(d)?,
        leading: truth::leading(truth::posterior_from(opt_str(d, "posterior").as_deref())),
        model_guess: emotion(opt_str(d, "model_guess"))?,
    })
}

fn prediction_of(d: &Document, model: &str) -> Result<Prediction, StoreError> {
    let arr = d
        .get_array("probabilities")
        .map_err(|e| corrupt(format!("probabilities: {e}")))?;
    let mut probs = [0f32; 7];
    if arr.len() != 7 {
        return Err(corrupt("probabilities length"));
    }
    for (p, b) in probs.iter_mut().zip(arr) {
        *p = b.as_f64().ok_or_else(|| corrupt("probability"))? as f32;
    }
    Prediction::new(model, probs).map_err(corrupt)
}

#[async_trait]
impl ImageStore for MongoStore {
    async fn insert_image(
        &self,
        image: NewImage,
        at: Millis,
    ) -> Result<(ImageId, bool), StoreError> {
        let id = super::sqlite::content_id(&image.bytes);
        let hex = id.to_hex();
        if self
            .coll("images")
            .find_one(doc! {"_id": &hex})
            .await
            .map_err(err)?
            .is_some()
        {
            return Ok((id, false));
        }
        // Bytes first (idempotent), then the metadata that makes the image visible.
        match self
            .coll("image_bytes")
            .insert_one(doc! {"_id": &hex, "bytes": binary(image.bytes.clone())})
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {}
            Err(e) => return Err(err(e)),
        }
        match self
            .coll("images")
            .insert_one(image_doc(id, &image, at, true))
            .await
        {
            Ok(_) => Ok((id, true)),
            Err(e) if is_duplicate(&e) => Ok((id, false)),
            Err(e) => Err(err(e)),
        }
    }

    async fn image_bytes(&self, id: ImageId) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let hex = id.to_hex();
        let Some(meta) = self
            .coll("images")
            .find_one(doc! {"_id": &hex, "status": {"$ne": "removed"}})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let bytes = self
            .coll("image_bytes")
            .find_one(doc! {"_id": &hex})
            .await
            .map_err(err)?
            .and_then(|d| bytes_of(&d, "bytes"));
        Ok(bytes.map(|b| (b, opt_str(&meta, "mime").unwrap_or_default())))
    }

    async fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, StoreError> {
        let Some(d) = self
            .coll("images")
            .find_one(doc! {"_id": id.to_hex()})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let source = get_str(&d, "source")?;
        Ok(Some(ImageMeta {
            id,
            mime: get_str(&d, "mime")?.to_owned(),
            width: get_u32(&d, "width")?,
            height: get_u32(&d, "height")?,
            source: ImageSource::parse(source)
                .ok_or_else(|| corrupt(format!("bad source {source:?}")))?,
            source_label: emotion(opt_str(&d, "source_label"))?,
            uploader: opt_str(&d, "uploader").map(|u| parse_id(&u)).transpose()?,
            votes: votes_of(&d)?,
            status: status_of(&d)?,
            created: Millis(get_u64(&d, "created_ms")?),
            posterior: truth::posterior_from(opt_str(&d, "posterior").as_deref()),
            gold: emotion(opt_str(&d, "gold"))?,
        }))
    }

    async fn pool_entries(&self, since: Millis) -> Result<Vec<PoolEntry>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("images")
            .find(doc! {
                "updated_ms": {"$gte": i64_of(since.0)},
                "$or": [{"playable": true}, {"status": "removed"}],
            })
            .projection(doc! {
                "uploader": 1, "votes": 1, "status": 1, "consensus": 1, "posterior": 1, "model_guess": 1,
            }))
        .await?;
        docs.iter().map(pool_entry).collect()
    }

    async fn image_count(&self) -> Result<u64, StoreError> {
        self.coll("images")
            .count_documents(doc! {})
            .await
            .map_err(err)
    }

    async fn save_predictions(
        &self,
        predictions: Vec<(ImageId, Prediction)>,
    ) -> Result<(), StoreError> {
        let at = i64_of(crate::clock::now().0);
        for (id, p) in predictions {
            let probs: Vec<Bson> = p
                .probabilities
                .iter()
                .map(|v| Bson::Double(f64::from(*v)))
                .collect();
            self.coll("predictions")
                .replace_one(
                    doc! {"_id": format!("{}:{}", id.to_hex(), p.model)},
                    doc! {"image_id": id.to_hex(), "model": &p.model, "probabilities": probs, "created_ms": at},
                )
                .upsert(true)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn prediction(&self, id: ImageId, model: &str) -> Result<Option<Prediction>, StoreError> {
        self.coll("predictions")
            .find_one(doc! {"_id": format!("{}:{model}", id.to_hex())})
            .await
            .map_err(err)?
            .map(|d| prediction_of(&d, model))
            .transpose()
    }

    async fn predictions(&self, model: &str) -> Result<Vec<(ImageId, Prediction)>, StoreError> {
        let docs: Vec<Document> = all(self.coll("predictions").find(doc! {"model": model})).await?;
        docs.iter()
            .map(|d| Ok((parse_id(get_str(d, "image_id")?)?, prediction_of(d, model)?)))
            .collect()
    }

    async fn unpredicted_images(&self, model: &str) -> Result<Vec<ImageId>, StoreError> {
        let done: std::collections::HashSet<String> = self
            .coll("predictions")
            .find(doc! {"model": model})
            .projection(doc! {"image_id": 1})
            .await
            .map_err(err)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(err)?
            .iter()
            .filter_map(|d| opt_str(d, "image_id"))
            .collect();
        let images: Vec<Document> = all(self
            .coll("images")
            .find(doc! {"status": {"$ne": "removed"}})
            .projection(doc! {"_id": 1}))
        .await?;
        images
            .iter()
            .filter_map(|d| opt_str(d, "_id"))
            .filter(|id| !done.contains(id))
            .map(|id| parse_id(&id))
            .collect()
    }

    async fn all_images(
        &self,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let filter = match after {
            Some(a) => doc! {"_id": {"$gt": a.to_hex()}},
            None => doc! {},
        };
        let docs: Vec<Document> = all(self
            .coll("images")
            .find(filter)
            .sort(doc! {"_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"_id": 1}))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in &docs {
            if let Some(m) = self.image_meta(parse_id(get_str(d, "_id")?)?).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn gold_images(&self) -> Result<Vec<ImageId>, StoreError> {
        let docs = all(self.coll("images").find(doc! {
            "gold": {"$ne": Bson::Null}, "status": {"$ne": "removed"}, "playable": {"$ne": false},
        }))
        .await?;
        docs.iter()
            .map(|d| get_str(d, "_id").and_then(parse_id))
            .collect()
    }

    async fn restore_tally(
        &self,
        id: ImageId,
        votes: VoteCounts,
        status: ImageStatus,
        at: Millis,
    ) -> Result<(), StoreError> {
        let r = self
            .coll("images")
            .update_one(
                doc! {"_id": id.to_hex()},
                doc! {"$set": {"votes": votes_bson(&votes), "status": status.name(),
                "consensus": consensus_bson(&status), "updated_ms": i64_of(at.0)}},
            )
            .await
            .map_err(err)?;
        if r.matched_count == 0 {
            return Err(StoreError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let count = |c: &str, f: Document| {
            let coll = self.coll(c);
            async move { coll.count_documents(f).await.map_err(err) }
        };
        Ok(Stats {
            players: count("players", doc! {}).await?,
            images: count("images", doc! {}).await?,
            open: count("images", doc! {"status": "open"}).await?,
            retired: count("images", doc! {"status": "retired"}).await?,
            disputed: count("images", doc! {"status": "disputed"}).await?,
            removed: count("images", doc! {"status": "removed"}).await?,
            labels: count("labels", doc! {}).await?,
            rounds: count("rounds", doc! {}).await?,
        })
    }
}

#[async_trait]
impl RoundStore for MongoStore {
    async fn record_offer(&self, o: OfferRecord) -> Result<(), StoreError> {
        self.coll("rounds")
            .insert_one(doc! {
                "_id": o.round.to_string(),
                "player_id": o.player.to_string(),
                "image_id": o.image.to_hex(),
                "shown": o.shown.map(|e| e.as_str()),
                "offered_ms": i64_of(o.offered.0),
                "deadline_ms": i64_of(o.deadline.0),
                "state": "offered",
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn close_round(
        &self,
        round: RoundId,
        state: &'static str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.coll("rounds")
            .update_one(
                doc! {"_id": round.to_string(), "state": "offered"},
                doc! {"$set": {"state": state, "closed_ms": i64_of(at.0)}},
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn seen_images(&self, player: PlayerId) -> Result<Vec<ImageId>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("rounds")
            .find(doc! {"player_id": player.to_string()})
            .projection(doc! {"image_id": 1}))
        .await?;
        docs.iter()
            .map(|d| parse_id(get_str(d, "image_id")?))
            .collect()
    }

    async fn record_answer(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        if let Some(writer) = &self.writer {
            let (reply, done) = oneshot::channel();
            writer
                .send(PendingAnswer {
                    answer: a,
                    rules: *rules,
                    reply,
                })
                .await
                .map_err(|_| StoreError::Unavailable("the label writer has stopped".into()))?;
            // The driver has no socket timeout: a server that stops answering would hang the player.
            return match tokio::time::timeout(ANSWER_DEADLINE, done).await {
                Ok(reply) => reply.map_err(|_| {
                    StoreError::Unavailable("the label writer dropped the answer".into())
                })?,
                Err(_) => Err(unconfirmed()),
            };
        }
        tokio::time::timeout(ANSWER_DEADLINE, self.answer_alone(a, rules))
            .await
            .unwrap_or_else(|_| Err(unconfirmed()))
    }

    async fn player_labels(
        &self,
        player: PlayerId,
        cursor: Option<LabelCursor>,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        let mut filter = doc! {"player_id": player.to_string()};
        if let Some(c) = cursor {
            older_than(&mut filter, i64_of(c.at.0), c.round.to_string());
        }
        let docs: Vec<Document> = all(self
            .coll("labels")
            .find(filter)
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter().map(label_of).collect()
    }

    async fn image_labels(
        &self,
        image: ImageId,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("labels")
            .find(doc! {"image_id": image.to_hex()})
            .sort(doc! {"created_ms": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter().map(label_of).collect()
    }

    async fn score_events_since(
        &self,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<ScoreChange>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("score_events")
            .find(doc! {"at_ms": {"$gte": i64_of(since.0)}})
            .sort(doc! {"at_ms": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter()
            .map(|d| {
                let reason = get_str(d, "reason")?;
                Ok(ScoreChange {
                    player: parse_id(get_str(d, "player_id")?)?,
                    name: get_str(d, "name")?.to_owned(),
                    delta: get_u32(d, "delta")?,
                    total: get_u64(d, "total")?,
                    key: get_str(d, "_id")?.to_owned(),
                    at: Millis(get_u64(d, "at_ms")?),
                    reason: match reason {
                        "answer" => ScoreReason::Answer,
                        "consensus" => ScoreReason::Consensus,
                        other => return Err(corrupt(format!("score reason {other:?}"))),
                    },
                })
            })
            .collect()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is acknowledged with the configured (journaled) write concern before it returns.
        Ok(())
    }
}

impl MongoStore {
    /// One answer in its own transaction, retried on transient errors.
    async fn answer_alone(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut s = self.session().await?;
            s.start_transaction().await.map_err(err)?;
            let result = match answer_tx(self, &mut s, &a, rules).await {
                Ok(outcome) => s.commit_transaction().await.map_err(err).map(|()| outcome),
                Err(e) => {
                    let _ = s.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if transient(&e) && attempt < TRANSACTION_ATTEMPTS => {
                    // Back off with jitter so conflicting transactions stop colliding.
                    let ms = rand::random_range(1..=4 * attempt as u64);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                other => return other,
            }
        }
    }
}

/// The label writer (group commit). **Owns:** the queue of answers waiting
/// for MongoDB. It takes every answer queued (up to `max_batch`), applies
/// them in order inside one transaction (later answers see earlier ones'
/// writes), commits once, and only then answers each caller. An answer
/// refused by the game rules (round closed, already answered) is answered
/// with its error and does not disturb the others, as those checks come
/// before any write; a driver error or a failed commit fails the whole
/// batch with `Unavailable`, so no caller is told a label is stored unless
/// the commit succeeded.
async fn label_writer(store: MongoStore, mut rx: mpsc::Receiver<PendingAnswer>, max_batch: usize) {
    let mut batch: Vec<PendingAnswer> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let n = batch.len();
        let mut attempt = 0;
        let results = loop {
            attempt += 1;
            let results = write_batch(&store, &batch).await;
            let retry = results.iter().any(|r| matches!(r, Err(e) if transient(e)));
            if !retry || attempt >= TRANSACTION_ATTEMPTS {
                break results;
            }
        };
        tracing::debug!(
            answers = n,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "label batch committed"
        );
        for (p, r) in batch.drain(..).zip(results) {
            let _ = p.reply.send(r);
        }
    }
}

async fn write_batch(
    store: &MongoStore,
    batch: &[PendingAnswer],
) -> Vec<Result<AnswerOutcome, StoreError>> {
    let fail_all = |e: StoreError| {
        batch
            .iter()
            .map(|_| Err(StoreError::Unavailable(e.to_string())))
            .collect()
    };
    let mut s = match store.session().await {
        Ok(s) => s,
        Err(e) => return fail_all(e),
    };
    if let Err(e) = s.start_transaction().await {
        return fail_all(err(e));
    }
    let mut results = Vec::with_capacity(batch.len());
    for p in batch {
        match answer_tx(store, &mut s, &p.answer, &p.rules).await {
            Err(e @ StoreError::Unavailable(_)) | Err(e @ StoreError::Corrupt(_)) => {
                let _ = s.abort_transaction().await;
                return fail_all(e);
            }
            other => results.push(other),
        }
    }
    if let Err(e) = s.commit_transaction().await {
        return fail_all(err(e));
    }
    results
}

/// The answer transaction: the same steps as the embedded store's, in one MongoDB transaction.
async fn answer_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<AnswerOutcome, StoreError> {
    let round_id = a.round.to_string();
    let player_id = a.player.to_string();
    let image_hex = a.image.to_hex();
    let round = store
        .coll("rounds")
        .find_one(doc! {"_id": &round_id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("round {}", a.round)))?;
    if get_str(&round, "player_id")? != player_id || get_str(&round, "image_id")? != image_hex {
        return Err(StoreError::NotFound(format!(
            "round {} for this player and image",
            a.round
        )));
    }
    if get_str(&round, "state")? != "offered" {
        return Err(StoreError::RoundClosed(a.round));
    }
    let image = store
        .coll("images")
        .find_one(doc! {"_id": &image_hex})
        .session(&mut *s)
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("image {}", a.image)))?;
    let status = status_of(&image)?;
    if status == ImageStatus::Removed {
        return Err(StoreError::RoundClosed(a.round));
    }
    let model_guess = emotion(opt_str(&image, "model_guess"))?.or(a.model_guess);
    let player = store
        .coll("players")
        .find_one(doc! {"_id": &player_id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("player {}", a.player)))?;
    let player = player_record(&player)?;
    let (earlier, mut also) =
        load_earlier(store, s, &image_hex, &[&player_id, truth::MODEL_KEY]).await?;
    let me = also.remove(&player_id);
    let model_r = also.remove(truth::MODEL_KEY);
    let step = truth::answer_step(
        truth::TruthInputs {
            status,
            votes: votes_of(&image)?,
            gold: emotion(opt_str(&image, "gold"))?,
            model_guess,
            model: model_r.as_ref().map(|r| r.matrix.clone()),
            earlier,
            me,
        },
        a,
        rules,
    );
    let award = rules.scoring.score_answer(&AnswerFacts {
        answer: a.emotion,
        prior: step.award_prior,
        response_ms: a.response_ms,
        time_limit_ms: a.time_limit_ms,
        streak: player.tally.streak,
    });
    let mut ptally = player.tally;
    ptally.apply_award(&award);
    let tally = ImageTally {
        votes: step.votes,
        status: step.judgement.status,
    };
    let transition = step.judgement.transition;
    let at = i64_of(a.at.0);
    store
        .coll("labels")
        .insert_one(doc! {
            "_id": &round_id, "image_id": &image_hex, "player_id": &player_id,
            "emotion": a.emotion.as_str(), "shown": a.shown.map(|e| e.as_str()),
            "response_ms": i64_of(a.response_ms), "created_ms": at, "points": i64::from(award.points),
            "decoy": a.decoy, "gold": step.gold.is_some(),
        })
        .session(&mut *s)
        .await
        .map_err(err)?;
    let updated = i64_of(crate::clock::now().0.max(a.at.0));
    store
        .coll("images")
        .update_one(
            doc! {"_id": &image_hex},
            doc! {"$set": {
                "votes": votes_bson(&tally.votes), "status": tally.status.name(),
                "consensus": consensus_bson(&tally.status), "updated_ms": updated,
                "posterior": truth::posterior_json(&step.judgement.posterior),
                "model_guess": model_guess.map(|e| e.as_str()),
            }},
        )
        .session(&mut *s)
        .await
        .map_err(err)?;
    save_reliability(store, s, &player_id, &step.me, at).await?;
    if let Some(m) = &step.model {
        let mut r = model_r.unwrap_or_default();
        r.matrix = m.clone();
        save_reliability(store, s, truth::MODEL_KEY, &r, at).await?;
    }
    let mut set = doc! {
        "score": i64_of(ptally.score), "streak": i64::from(ptally.streak),
        "best_streak": i64::from(ptally.best_streak), "answers": i64::from(ptally.answers),
    };
    if award.points > 0 {
        set.insert("score_at_ms", at);
    }
    store
        .coll("players")
        .update_one(doc! {"_id": &player_id}, doc! {"$set": set})
        .session(&mut *s)
        .await
        .map_err(err)?;
    store
        .coll("rounds")
        .update_one(
            doc! {"_id": &round_id},
            doc! {"$set": {"state": "answered", "answer": a.emotion.as_str(), "closed_ms": at}},
        )
        .session(&mut *s)
        .await
        .map_err(err)?;
    let mut changes = Vec::new();
    if award.points > 0 {
        changes.push(ScoreChange {
            player: a.player,
            name: player.name.clone(),
            delta: award.points,
            total: ptally.score,
            key: format!("answer:{}", a.round),
            at: a.at,
            reason: ScoreReason::Answer,
        });
    }
    if let Transition::Retired { label } = transition {
        let labels = &step.settlement;
        for (p, pts) in rules.scoring.settle(label, labels) {
            let updated = store
                .coll("players")
                .find_one_and_update(
                    doc! {"_id": p.to_string()},
                    doc! {"$inc": {"score": i64::from(pts)}, "$set": {"score_at_ms": at}},
                )
                .return_document(mongodb::options::ReturnDocument::After)
                .session(&mut *s)
                .await
                .map_err(err)?
                .ok_or_else(|| corrupt("settled player missing"))?;
            if p == a.player {
                ptally.add_points(pts);
            }
            changes.push(ScoreChange {
                player: p,
                name: get_str(&updated, "name")?.to_owned(),
                delta: pts,
                total: get_u64(&updated, "score")?,
                key: format!("settle:{}:{}", a.image, p),
                at: a.at,
                reason: ScoreReason::Consensus,
            });
        }
    }
    for ch in &changes {
        store
            .coll("score_events")
            .insert_one(doc! {
                "_id": &ch.key, "player_id": ch.player.to_string(), "name": &ch.name,
                "delta": i64::from(ch.delta), "total": i64_of(ch.total),
                "reason": ch.reason.as_str(), "at_ms": i64_of(ch.at.0),
            })
            .session(&mut *s)
            .await
            .map_err(err)?;
    }
    Ok(AnswerOutcome {
        award,
        tally: ptally,
        votes: tally.votes,
        status: tally.status,
        transition,
        posterior: step.judgement.posterior,
        gold: step.gold,
        counted: step.me.counts(),
        changes,
    })
}

fn upload_record(
    u: &Document,
    image: &Document,
    label: Option<Emotion>,
) -> Result<UploadRecord, StoreError> {
    let face = u
        .get_document("face")
        .map_err(|e| corrupt(format!("face: {e}")))?;
    Ok(UploadRecord {
        image: parse_id(get_str(u, "_id")?)?,
        player: parse_id(get_str(u, "player_id")?)?,
        created: Millis(get_u64(u, "created_ms")?),
        face: FaceRegion {
            x: get_u32(face, "x")?,
            y: get_u32(face, "y")?,
            w: get_u32(face, "w")?,
            h: get_u32(face, "h")?,
            score: face.get_f64("score").unwrap_or(0.0),
        },
        consent: Consent {
            show_to_players: get_bool(u, "show_to_players"),
            use_for_training: get_bool(u, "use_for_training"),
            include_in_exports: get_bool(u, "include_in_exports"),
            keep_original: get_bool(u, "keep_original"),
            text_version: get_str(u, "consent_version")?.to_owned(),
        },
        consent_at: Millis(get_u64(u, "consent_ms")?),
        has_original: matches!(u.get("original"), Some(Bson::Binary(_))),
        label,
        votes: votes_of(image)?,
        status: status_of(image)?,
    })
}

impl MongoStore {
    async fn upload_view(&self, u: &Document) -> Result<UploadRecord, StoreError> {
        let id = get_str(u, "_id")?;
        let image = self
            .coll("images")
            .find_one(doc! {"_id": id})
            .await
            .map_err(err)?
            .ok_or_else(|| corrupt("upload without image"))?;
        let label = self
            .coll("labels")
            .find_one(doc! {"image_id": id, "player_id": get_str(u, "player_id")?})
            .await
            .map_err(err)?
            .and_then(|l| opt_str(&l, "emotion"));
        upload_record(u, &image, emotion(label)?)
    }
}

fn label_of(d: &Document) -> Result<LabelRecord, StoreError> {
    Ok(LabelRecord {
        round: parse_id(get_str(d, "_id")?)?,
        image: parse_id(get_str(d, "image_id")?)?,
        player: parse_id(get_str(d, "player_id")?)?,
        emotion: emotion(opt_str(d, "emotion"))?.ok_or_else(|| corrupt("label emotion"))?,
        shown: emotion(opt_str(d, "shown"))?,
        decoy: get_bool(d, "decoy"),
        gold: get_bool(d, "gold"),
        response_ms: get_u64(d, "response_ms")?,
        points: get_u32(d, "points")?,
        at: Millis(get_u64(d, "created_ms")?),
    })
}

/// Every label on an image with its player's current reliability, and the
/// reliabilities of `also` (read in the same query).
async fn load_earlier(
    store: &MongoStore,
    s: &mut ClientSession,
    image_hex: &str,
    also: &[&str],
) -> Result<
    (
        Vec<truth::EarlierLabel>,
        std::collections::HashMap<String, Reliability>,
    ),
    StoreError,
> {
    let mut earlier_docs = Vec::new();
    {
        let mut cursor = store
            .coll("labels")
            .find(doc! {"image_id": image_hex})
            .session(&mut *s)
            .await
            .map_err(err)?;
        while let Some(d) = cursor.next(&mut *s).await {
            earlier_docs.push(d.map_err(err)?);
        }
    }
    let ids: Vec<String> = earlier_docs
        .iter()
        .filter_map(|d| opt_str(d, "player_id"))
        .chain(also.iter().map(|a| (*a).to_owned()))
        .collect();
    let mut reliabilities = std::collections::HashMap::new();
    {
        let mut cursor = store
            .coll("reliability")
            .find(doc! {"_id": {"$in": ids}})
            .session(&mut *s)
            .await
            .map_err(err)?;
        while let Some(d) = cursor.next(&mut *s).await {
            let d = d.map_err(err)?;
            reliabilities.insert(get_str(&d, "_id")?.to_owned(), reliability_of(&d)?);
        }
    }
    let mut earlier = Vec::new();
    for d in &earlier_docs {
        let p = get_str(d, "player_id")?;
        earlier.push(truth::EarlierLabel {
            player: parse_id(p)?,
            answer: emotion(opt_str(d, "emotion"))?.ok_or_else(|| corrupt("label"))?,
            shown: emotion(opt_str(d, "shown"))?,
            decoy: get_bool(d, "decoy"),
            reliability: reliabilities.get(p).cloned().unwrap_or_default(),
        });
    }
    Ok((earlier, reliabilities))
}

async fn audit(
    store: &MongoStore,
    s: &mut ClientSession,
    moderator: PlayerId,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    at: Millis,
) -> Result<(), StoreError> {
    store
        .coll("moderation_log")
        .insert_one(doc! {
            "_id": uuid::Uuid::new_v4().to_string(),
            "moderator": moderator.to_string(), "action": action, "target": target,
            "detail": detail.to_string(), "at_ms": i64_of(at.0),
        })
        .session(&mut *s)
        .await
        .map_err(err)?;
    Ok(())
}

async fn moderate_image_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    image: ImageId,
    action: &ImageAction,
    moderator: PlayerId,
    at: Millis,
    rules: &GameRules,
) -> Result<ModeratedImage, StoreError> {
    let hex = image.to_hex();
    let d = store
        .coll("images")
        .find_one(doc! {"_id": &hex})
        .session(&mut *s)
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("image {image}")))?;
    let before = status_of(&d)?;
    let (after, new_gold, detail) = truth::plan_moderation(
        action,
        before,
        truth::posterior_from(opt_str(&d, "posterior").as_deref()),
        emotion(opt_str(&d, "gold"))?,
    )?;
    store
        .coll("images")
        .update_one(
            doc! {"_id": &hex},
            doc! {"$set": {
                "status": after.name(), "consensus": consensus_bson(&after),
                "gold": new_gold.map(|e| e.as_str()),
                "updated_ms": i64_of(crate::clock::now().0.max(at.0)),
            }},
        )
        .session(&mut *s)
        .await
        .map_err(err)?;
    audit(store, s, moderator, action.name(), &hex, detail, at).await?;
    let mut changes = Vec::new();
    if let (ImageStatus::Retired { label }, false) =
        (after, matches!(before, ImageStatus::Retired { .. }))
    {
        let labels = truth::settlement_of(&load_earlier(store, s, &hex, &[]).await?.0);
        for (p, pts) in rules.scoring.settle(label, &labels) {
            let key = format!("settle:{image}:{p}");
            let exists = store
                .coll("score_events")
                .find_one(doc! {"_id": &key})
                .session(&mut *s)
                .await
                .map_err(err)?;
            if exists.is_some() {
                continue;
            }
            let updated = store
                .coll("players")
                .find_one_and_update(
                    doc! {"_id": p.to_string()},
                    doc! {"$inc": {"score": i64::from(pts)}, "$set": {"score_at_ms": i64_of(at.0)}},
                )
                .return_document(mongodb::options::ReturnDocument::After)
                .session(&mut *s)
                .await
                .map_err(err)?
                .ok_or_else(|| corrupt("settled player missing"))?;
            let change = ScoreChange {
                player: p,
                name: get_str(&updated, "name")?.to_owned(),
                delta: pts,
                total: get_u64(&updated, "score")?,
                key,
                at,
                reason: ScoreReason::Consensus,
            };
            store
                .coll("score_events")
                .insert_one(doc! {
                    "_id": &change.key, "player_id": p.to_string(), "name": &change.name,
                    "delta": i64::from(pts), "total": i64_of(change.total),
                    "reason": "consensus", "at_ms": i64_of(at.0),
                })
                .session(&mut *s)
                .await
                .map_err(err)?;
            changes.push(change);
        }
    }
    Ok(ModeratedImage {
        status: after,
        gold: new_gold,
        changes,
    })
}

async fn moderate_player_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    player: PlayerId,
    action: PlayerAction,
    moderator: PlayerId,
    at: Millis,
) -> Result<Reliability, StoreError> {
    let id = player.to_string();
    if store
        .coll("players")
        .find_one(doc! {"_id": &id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("player {player}")));
    }
    let mut r = load_reliability(store, s, &id).await?.unwrap_or_default();
    let before = r.moderation.as_str();
    r.moderation = action.moderation();
    save_reliability(store, s, &id, &r, i64_of(at.0)).await?;
    audit(
        store,
        s,
        moderator,
        action.name(),
        &id,
        serde_json::json!({"before": before, "flag": r.flag.map(|f| f.as_str())}),
        at,
    )
    .await?;
    Ok(r)
}

#[async_trait]
impl ReviewStore for MongoStore {
    async fn review_candidates(&self, limit: usize) -> Result<Vec<ReviewCandidate>, StoreError> {
        let docs = all(self
            .coll("images")
            .find(doc! {"$or": [
                {"status": "disputed"},
                {"status": "open", "votes": {"$ne": votes_bson(&VoteCounts::default())}},
            ]})
            .sort(doc! {"updated_ms": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let id: ImageId = parse_id(get_str(&d, "_id")?)?;
            if let Some(meta) = self.image_meta(id).await? {
                out.push(ReviewCandidate {
                    meta,
                    posterior: truth::posterior_from(opt_str(&d, "posterior").as_deref()),
                    model_guess: emotion(opt_str(&d, "model_guess"))?,
                    gold: emotion(opt_str(&d, "gold"))?,
                });
            }
        }
        Ok(out)
    }

    async fn moderate_image(
        &self,
        image: ImageId,
        action: ImageAction,
        moderator: PlayerId,
        at: Millis,
        rules: &GameRules,
    ) -> Result<ModeratedImage, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut s = self.session().await?;
            s.start_transaction().await.map_err(err)?;
            let result =
                match moderate_image_tx(self, &mut s, image, &action, moderator, at, rules).await {
                    Ok(v) => s.commit_transaction().await.map_err(err).map(|()| v),
                    Err(e) => {
                        let _ = s.abort_transaction().await;
                        Err(e)
                    }
                };
            match result {
                Err(e) if transient(&e) && attempt < TRANSACTION_ATTEMPTS => {}
                other => return other,
            }
        }
    }

    async fn moderate_player(
        &self,
        player: PlayerId,
        action: PlayerAction,
        moderator: PlayerId,
        at: Millis,
    ) -> Result<Reliability, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut s = self.session().await?;
            s.start_transaction().await.map_err(err)?;
            let result = match moderate_player_tx(self, &mut s, player, action, moderator, at).await
            {
                Ok(v) => s.commit_transaction().await.map_err(err).map(|()| v),
                Err(e) => {
                    let _ = s.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if transient(&e) && attempt < TRANSACTION_ATTEMPTS => {}
                other => return other,
            }
        }
    }

    async fn reliabilities(
        &self,
        flagged_only: bool,
        limit: usize,
    ) -> Result<Vec<PlayerReliability>, StoreError> {
        let filter = if flagged_only {
            doc! {"$or": [
                {"flag": {"$ne": Bson::Null}, "moderation": {"$ne": "cleared"}},
                {"moderation": "banned"},
            ]}
        } else {
            doc! {"_id": {"$ne": truth::MODEL_KEY}}
        };
        let docs = all(self
            .coll("reliability")
            .find(filter)
            .sort(doc! {"updated_ms": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::new();
        for d in docs {
            let id = get_str(&d, "_id")?;
            if id == truth::MODEL_KEY {
                continue;
            }
            let player: PlayerId = parse_id(id)?;
            let name = match self.player(player).await? {
                Some(p) => p.name,
                None => continue,
            };
            out.push(PlayerReliability {
                player,
                name,
                reliability: reliability_of(&d)?,
            });
        }
        Ok(out)
    }

    async fn reliabilities_of(
        &self,
        players: &[PlayerId],
    ) -> Result<Vec<(PlayerId, Reliability)>, StoreError> {
        let mut out = Vec::new();
        for chunk in players.chunks(1_000) {
            let ids: Vec<String> = chunk.iter().map(|p| p.to_string()).collect();
            for d in all(self.coll("reliability").find(doc! {"_id": {"$in": ids}})).await? {
                out.push((parse_id(get_str(&d, "_id")?)?, reliability_of(&d)?));
            }
        }
        Ok(out)
    }

    async fn dataset_stats(&self, since: Millis) -> Result<DatasetStats, StoreError> {
        let labels = all(self
            .coll("labels")
            .find(doc! {"created_ms": {"$gte": i64_of(since.0)}})
            .projection(doc! {"created_ms": 1}))
        .await?;
        let times = labels
            .iter()
            .map(|d| get_u64(d, "created_ms").map(Millis))
            .collect::<Result<Vec<_>, _>>()?;
        let mut retired = [0u64; emofy_game::EMOTION_COUNT];
        for d in all(self
            .coll("images")
            .find(doc! {"status": "retired"})
            .projection(doc! {"consensus": 1}))
        .await?
        {
            if let Some(e) = emotion(opt_str(&d, "consensus"))? {
                retired[e.index()] += 1;
            }
        }
        Ok(DatasetStats {
            labels_per_day: super::per_day(times),
            retired_per_class: retired,
        })
    }

    async fn truth_snapshot(&self, max_labels: usize) -> Result<TruthSnapshot, StoreError> {
        let docs = all(self
            .coll("labels")
            .find(doc! {})
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(max_labels).unwrap_or(i64::MAX)))
        .await?;
        let labels = docs.iter().map(label_of).collect::<Result<Vec<_>, _>>()?;
        let ids: std::collections::BTreeSet<String> =
            labels.iter().map(|l| l.image.to_hex()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let (mut gold, mut model_guesses) = (Vec::new(), Vec::new());
        for chunk in ids.chunks(1_000) {
            let images = all(self
                .coll("images")
                .find(doc! {"_id": {"$in": chunk.to_vec()}})
                .projection(doc! {"gold": 1, "model_guess": 1}))
            .await?;
            for d in images {
                let id: ImageId = parse_id(get_str(&d, "_id")?)?;
                if let Some(g) = emotion(opt_str(&d, "gold"))? {
                    gold.push((id, g));
                }
                if let Some(m) = emotion(opt_str(&d, "model_guess"))? {
                    model_guesses.push((id, m));
                }
            }
        }
        let mut reliabilities = Vec::new();
        for d in all(self
            .coll("reliability")
            .find(doc! {"_id": {"$ne": truth::MODEL_KEY}}))
        .await?
        {
            reliabilities.push((parse_id(get_str(&d, "_id")?)?, reliability_of(&d)?));
        }
        Ok(TruthSnapshot {
            labels,
            gold,
            model_guesses,
            reliabilities,
        })
    }

    async fn apply_truth_pass(&self, pass: TruthPass, at: Millis) -> Result<(), StoreError> {
        // Document by document (no transaction: each write is whole, and an
        // answer racing a write only loses one online matrix update).
        let at_i = i64_of(at.0);
        let mut matrices: Vec<(String, emofy_game::truth::Confusion)> = pass
            .matrices
            .into_iter()
            .map(|(p, m)| (p.to_string(), m))
            .collect();
        if let Some(m) = pass.model {
            matrices.push((truth::MODEL_KEY.to_owned(), m));
        }
        for (id, matrix) in matrices {
            let current = self
                .coll("reliability")
                .find_one(doc! {"_id": &id})
                .await
                .map_err(err)?;
            let mut r = match current {
                Some(d) => reliability_of(&d)?,
                None => Reliability::default(),
            };
            r.matrix = matrix;
            self.coll("reliability")
                .replace_one(doc! {"_id": &id}, reliability_doc(&id, &r, at_i)?)
                .upsert(true)
                .await
                .map_err(err)?;
        }
        let updated = i64_of(crate::clock::now().0.max(at.0));
        for (image, p) in pass.posteriors {
            self.coll("images")
                .update_one(
                    doc! {"_id": image.to_hex(), "status": "open"},
                    doc! {"$set": {"posterior": truth::posterior_json(&p), "updated_ms": updated}},
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let docs = all(self
            .coll("moderation_log")
            .find(doc! {})
            .sort(doc! {"at_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::new();
        for d in docs {
            out.push(AuditEntry {
                moderator: parse_id(get_str(&d, "moderator")?)?,
                action: get_str(&d, "action")?.to_owned(),
                target: get_str(&d, "target")?.to_owned(),
                detail: serde_json::from_str(get_str(&d, "detail")?)
                    .map_err(|e| corrupt(format!("audit detail: {e}")))?,
                at: Millis(get_u64(&d, "at_ms")?),
            });
        }
        Ok(out)
    }
}

fn reliability_of(d: &Document) -> Result<Reliability, StoreError> {
    serde_json::from_str(get_str(d, "data")?).map_err(|e| corrupt(format!("reliability: {e}")))
}

pub(crate) fn reliability_doc(id: &str, r: &Reliability, at: i64) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": id,
        "data": serde_json::to_string(r).map_err(|e| corrupt(e.to_string()))?,
        "flag": r.flag.map(|f| f.as_str()),
        "moderation": r.moderation.as_str(),
        "updated_ms": at,
    })
}

async fn load_reliability(
    store: &MongoStore,
    s: &mut ClientSession,
    id: &str,
) -> Result<Option<Reliability>, StoreError> {
    store
        .coll("reliability")
        .find_one(doc! {"_id": id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .map(|d| reliability_of(&d))
        .transpose()
}

async fn save_reliability(
    store: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    r: &Reliability,
    at: i64,
) -> Result<(), StoreError> {
    store
        .coll("reliability")
        .replace_one(doc! {"_id": id}, reliability_doc(id, r, at)?)
        .upsert(true)
        .session(&mut *s)
        .await
        .map_err(err)?;
    Ok(())
}

fn consent_event(image: &str, player: &str, event: &str, c: &Consent, at: i64) -> Document {
    doc! {
        "image_id": image, "player_id": player, "event": event,
        "show_to_players": c.show_to_players, "use_for_training": c.use_for_training,
        "include_in_exports": c.include_in_exports, "keep_original": c.keep_original,
        "consent_version": &c.text_version, "at_ms": at,
    }
}

#[async_trait]
impl UploadStore for MongoStore {
    async fn consent_log(&self, image: ImageId) -> Result<Vec<ConsentEvent>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("consent_log")
            .find(doc! {"image_id": image.to_hex()})
            .sort(doc! {"at_ms": 1, "_id": 1}))
        .await?;
        docs.iter()
            .map(|d| {
                Ok(ConsentEvent {
                    image,
                    player: parse_id(get_str(d, "player_id")?)?,
                    event: get_str(d, "event")?.to_owned(),
                    consent: Consent {
                        show_to_players: get_bool(d, "show_to_players"),
                        use_for_training: get_bool(d, "use_for_training"),
                        include_in_exports: get_bool(d, "include_in_exports"),
                        keep_original: get_bool(d, "keep_original"),
                        text_version: get_str(d, "consent_version")?.to_owned(),
                    },
                    at: Millis(get_u64(d, "at_ms")?),
                })
            })
            .collect()
    }

    async fn insert_upload(&self, u: NewUpload, at: Millis) -> Result<ImageId, StoreError> {
        let id = super::sqlite::content_id(&u.crop.bytes);
        let hex = id.to_hex();
        let ms = i64_of(at.0);
        let playable = u.consent.show_to_players;
        let mut s = self.session().await?;
        s.start_transaction().await.map_err(err)?;
        let result = async {
            let duplicate = self
                .coll("uploads")
                .find_one(doc! {"player_id": u.player.to_string(), "fingerprint": &u.fingerprint, "deleted_ms": Bson::Null})
                .session(&mut s)
                .await?;
            if duplicate.is_some() {
                return Ok(false);
            }
            let existing = self
                .coll("images")
                .find_one(doc! {"_id": &hex})
                .session(&mut s)
                .await?;
            match existing.as_ref().and_then(|d| opt_str(d, "status")).as_deref() {
                None => {
                    self.coll("image_bytes")
                        .replace_one(doc! {"_id": &hex}, doc! {"bytes": binary(u.crop.bytes.clone())})
                        .upsert(true)
                        .session(&mut s)
                        .await?;
                    self.coll("images")
                        .insert_one(image_doc(id, &u.crop, at, playable))
                        .session(&mut s)
                        .await?;
                }
                Some("removed") => {
                    self.coll("image_bytes")
                        .replace_one(doc! {"_id": &hex}, doc! {"bytes": binary(u.crop.bytes.clone())})
                        .upsert(true)
                        .session(&mut s)
                        .await?;
                    self.coll("images")
                        .update_one(
                            doc! {"_id": &hex},
                            doc! {"$set": {"status": "open", "consensus": Bson::Null,
                                "uploader": u.player.to_string(), "updated_ms": ms, "playable": playable}},
                        )
                        .session(&mut s)
                        .await?;
                    self.coll("uploads").delete_one(doc! {"_id": &hex}).session(&mut s).await?;
                }
                Some(_) => return Ok(false),
            }
            let f = &u.face;
            self.coll("uploads")
                .insert_one(doc! {
                    "_id": &hex, "player_id": u.player.to_string(), "created_ms": ms,
                    "face": {"x": i64::from(f.x), "y": i64::from(f.y), "w": i64::from(f.w), "h": i64::from(f.h), "score": f.score},
                    "show_to_players": u.consent.show_to_players,
                    "use_for_training": u.consent.use_for_training,
                    "include_in_exports": u.consent.include_in_exports,
                    "keep_original": u.consent.keep_original,
                    "consent_version": &u.consent.text_version,
                    "consent_ms": ms,
                    "original": u.original.clone().map(binary),
                    "deleted_ms": Bson::Null,
                    "fingerprint": &u.fingerprint,
                })
                .session(&mut s)
                .await?;
            self.coll("consent_log")
                .insert_one(consent_event(&hex, &u.player.to_string(), "given", &u.consent, ms))
                .session(&mut s)
                .await?;
            Ok::<_, mongodb::error::Error>(true)
        }
        .await;
        if finish(&mut s, result).await? {
            Ok(id)
        } else {
            Err(StoreError::Conflict(format!(
                "image {id} is already stored"
            )))
        }
    }

    async fn upload_access(&self, image: ImageId) -> Result<Option<UploadAccess>, StoreError> {
        let found = self
            .coll("uploads")
            .find_one(doc! {"_id": image.to_hex(), "deleted_ms": Bson::Null})
            .await
            .map_err(err)?;
        found
            .map(|d| {
                Ok(UploadAccess {
                    contributor: opt_str(&d, "player_id")
                        .ok_or_else(|| StoreError::Corrupt("upload without player_id".into()))?
                        .parse()
                        .map_err(|_| StoreError::Corrupt("bad player_id".into()))?,
                    show_to_players: get_bool(&d, "show_to_players"),
                })
            })
            .transpose()
    }

    async fn export_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        Ok(self
            .coll("uploads")
            .count_documents(
                doc! {"_id": image.to_hex(), "include_in_exports": true, "deleted_ms": Bson::Null},
            )
            .await
            .map_err(err)?
            > 0)
    }

    async fn uploads_since(&self, player: PlayerId, since: Millis) -> Result<u64, StoreError> {
        self.coll("uploads")
            .count_documents(
                doc! {"player_id": player.to_string(), "created_ms": {"$gte": i64_of(since.0)}},
            )
            .await
            .map_err(err)
    }

    async fn upload(
        &self,
        player: PlayerId,
        image: ImageId,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let Some(u) = self
            .coll("uploads")
            .find_one(doc! {"_id": image.to_hex(), "player_id": player.to_string(), "deleted_ms": Bson::Null})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        Ok(Some(self.upload_view(&u).await?))
    }

    async fn uploads(
        &self,
        player: PlayerId,
        cursor: Option<UploadCursor>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let mut filter = doc! {"player_id": player.to_string(), "deleted_ms": Bson::Null};
        if let Some(c) = cursor {
            older_than(&mut filter, i64_of(c.created.0), c.image.to_hex());
        }
        let docs: Vec<Document> = all(self
            .coll("uploads")
            .find(filter)
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for u in &docs {
            out.push(self.upload_view(u).await?);
        }
        Ok(out)
    }

    async fn delete_upload(
        &self,
        player: PlayerId,
        image: ImageId,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let hex = image.to_hex();
        let ms = i64_of(at.0);
        let mut s = self.session().await?;
        s.start_transaction().await.map_err(err)?;
        let result = async {
            let r = self
                .coll("uploads")
                .update_one(
                    doc! {"_id": &hex, "player_id": player.to_string(), "deleted_ms": Bson::Null},
                    doc! {"$set": {"original": Bson::Null, "fingerprint": Bson::Null, "deleted_ms": ms}},
                )
                .session(&mut s)
                .await?;
            if r.matched_count == 0 {
                return Ok(false);
            }
            if let Some(u) = self
                .coll("uploads")
                .find_one(doc! {"_id": &hex})
                .session(&mut s)
                .await?
            {
                let consent = Consent {
                    show_to_players: get_bool(&u, "show_to_players"),
                    use_for_training: get_bool(&u, "use_for_training"),
                    include_in_exports: get_bool(&u, "include_in_exports"),
                    keep_original: get_bool(&u, "keep_original"),
                    text_version: opt_str(&u, "consent_version").unwrap_or_default(),
                };
                self.coll("consent_log")
                    .insert_one(consent_event(&hex, &player.to_string(), "revoked", &consent, ms))
                    .session(&mut s)
                    .await?;
            }
            self.coll("image_bytes").delete_one(doc! {"_id": &hex}).session(&mut s).await?;
            self.coll("predictions").delete_many(doc! {"image_id": &hex}).session(&mut s).await?;
            self.coll("images")
                .update_one(
                    doc! {"_id": &hex},
                    doc! {"$set": {"status": "removed", "consensus": Bson::Null, "playable": false, "updated_ms": ms}},
                )
                .session(&mut s)
                .await?;
            Ok::<_, mongodb::error::Error>(true)
        }
        .await;
        finish(&mut s, result).await
    }
}
