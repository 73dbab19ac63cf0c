//! The embedded store: SQLite (bundled) in `<data_dir>/emofy.db`.
//!
//! Why SQLite over redb: the data is relational (labels join images and
//! players, with uniqueness rules such as one label per image and player), SQL
//! makes those rules declarative, the file is inspectable with standard tools,
//! and WAL mode gives concurrent readers next to one writer.
//!
//! Writes go to one writer thread through a bounded queue. The thread drains
//! whatever is queued, runs each job in its own savepoint inside one
//! transaction, commits once (fsync, `synchronous=FULL`), and only then answers
//! every job: group commit, so an acknowledged write is on disk. Reads use a
//! small pool of read-only connections on the blocking thread pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use emofy_game::{
    AnswerFacts, Emotion, ImageId, ImageStatus, ImageTally, Millis, PlayerId, PlayerTally,
    PoolEntry, Reliability, Role, RoundId, Transition, VoteCounts,
};
use emofy_inference::Prediction;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};
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

const SCHEMA_VERSION: i64 = 7;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS players (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    score INTEGER NOT NULL DEFAULT 0,
    score_at_ms INTEGER NOT NULL DEFAULT 0,
    streak INTEGER NOT NULL DEFAULT 0,
    best_streak INTEGER NOT NULL DEFAULT 0,
    answers INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS players_score ON players (score DESC, score_at_ms ASC);
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    player_id TEXT NOT NULL UNIQUE REFERENCES players(id),
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_blobs (
    id TEXT PRIMARY KEY,
    bytes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY REFERENCES image_blobs(id),
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    source TEXT NOT NULL,
    source_label TEXT,
    uploader TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    votes TEXT NOT NULL DEFAULT '[0,0,0,0,0,0,0]',
    status TEXT NOT NULL DEFAULT 'open',
    consensus TEXT,
    playable INTEGER NOT NULL DEFAULT 1,
    posterior TEXT,
    gold TEXT,
    model_guess TEXT
);
CREATE INDEX IF NOT EXISTS images_updated ON images (updated_ms);
CREATE INDEX IF NOT EXISTS images_status ON images (status);
CREATE TABLE IF NOT EXISTS rounds (
    id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    shown TEXT,
    offered_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    answer TEXT,
    closed_ms INTEGER,
    UNIQUE (player_id, image_id)
);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    round_id TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    player_id TEXT NOT NULL,
    emotion TEXT NOT NULL,
    shown TEXT,
    response_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    points INTEGER NOT NULL,
    decoy INTEGER NOT NULL DEFAULT 0,
    gold INTEGER NOT NULL DEFAULT 0,
    UNIQUE (image_id, player_id)
);
CREATE INDEX IF NOT EXISTS labels_player ON labels (player_id, created_ms);
CREATE TABLE IF NOT EXISTS predictions (
    image_id TEXT NOT NULL,
    model TEXT NOT NULL,
    probabilities TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (image_id, model)
);
CREATE TABLE IF NOT EXISTS uploads (
    image_id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    face TEXT NOT NULL,
    show_to_players INTEGER NOT NULL,
    use_for_training INTEGER NOT NULL,
    include_in_exports INTEGER NOT NULL,
    keep_original INTEGER NOT NULL,
    consent_version TEXT NOT NULL,
    consent_ms INTEGER NOT NULL,
    original BLOB,
    deleted_ms INTEGER,
    fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS score_events (
    key TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    delta INTEGER NOT NULL,
    total INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS score_events_at ON score_events (at_ms);
CREATE TABLE IF NOT EXISTS consent_log (
    id INTEGER PRIMARY KEY,
    image_id TEXT NOT NULL,
    player_id TEXT NOT NULL,
    event TEXT NOT NULL,
    show_to_players INTEGER NOT NULL,
    use_for_training INTEGER NOT NULL,
    include_in_exports INTEGER NOT NULL,
    keep_original INTEGER NOT NULL,
    consent_version TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_log_image ON consent_log (image_id, id);
CREATE INDEX IF NOT EXISTS uploads_player ON uploads (player_id, created_ms DESC, image_id DESC);
CREATE TABLE IF NOT EXISTS reliability (
    player_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    flag TEXT,
    moderation TEXT NOT NULL DEFAULT 'none',
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reliability_flag ON reliability (flag);
CREATE TABLE IF NOT EXISTS moderation_log (
    id INTEGER PRIMARY KEY,
    moderator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"#;

type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;

/// Options for the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Queued writes before callers wait (backpressure).
    pub queue: usize,
    /// Most jobs in one transaction.
    pub max_batch: usize,
    /// Read-only connections.
    pub readers: usize,
    /// `synchronous = FULL` (fsync every commit) rather than `NORMAL`.
    pub fsync_every_commit: bool,
    /// Time between background WAL checkpoints.
    pub checkpoint_every: std::time::Duration,
    /// The WAL is cut back to this many bytes whenever a checkpoint has emptied it.
    pub wal_limit_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            queue: 4096,
            max_batch: 512,
            readers: 2,
            fsync_every_commit: true,
            checkpoint_every: std::time::Duration::from_secs(1),
            wal_limit_bytes: 16 << 20,
        }
    }
}

/// The embedded SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// Set by a write job that erased face bytes: the writer then truncates
    /// the WAL (a `TRUNCATE` checkpoint) before it answers that job.
    erase: Arc<AtomicBool>,
}

/// Creates `dir` (mode 0700) or tightens an existing one, and the database
/// file (mode 0600) before SQLite does, so its WAL and shared-memory files,
/// which SQLite creates with the database file's mode, are 0600 too. The data
/// dir holds faces, password hashes and the token key.
fn private_files(dir: &Path, db: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unavailable(format!("create {}: {e}", dir.display())))?;
        let tighten = |p: &Path, mode: u32| {
            if let Ok(meta) = std::fs::metadata(p)
                && meta.permissions().mode() & 0o777 != mode
                && let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            {
                tracing::warn!(path = %p.display(), error = %e, "cannot restrict permissions");
            }
        };
        tighten(dir, 0o700);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db)
            .map_err(|e| unavailable(format!("create {}: {e}", db.display())))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            tighten(Path::new(&name), 0o600);
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .map_err(|e| unavailable(format!("create {}: {e}", dir.display())))?;
    Ok(())
}

/// Runs a checkpoint; `true` when every WAL frame reached the database.
fn checkpoint(conn: &Connection, mode: &str) -> Result<bool, rusqlite::Error> {
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(busy == 0 && log == done)
}

/// Keeps the WAL bounded from its own connection, every `every`, until the
/// writer stops:
/// * a PASSIVE checkpoint copies what it can into the database file without
///   blocking the writer or readers;
/// * once the WAL file is over `limit`, or an erasure is pending (a deletion
///   whose truncation right after its commit could not finish), a TRUNCATE
///   checkpoint copies the rest and cuts the file to zero. It holds the writer
///   back only for the frames the passive pass left, and it is needed because
///   a writer that never finds the WAL fully checkpointed when it begins would
///   otherwise append to it forever.
fn checkpointer_loop(
    conn: Connection,
    wal: PathBuf,
    every: std::time::Duration,
    limit: u64,
    stop: std::sync::mpsc::Receiver<()>,
    erase: Arc<AtomicBool>,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        if let Err(e) = checkpoint(&conn, "PASSIVE") {
            tracing::warn!(error = %e, "sqlite: checkpoint failed");
            continue;
        }
        let erasing = erase.load(Ordering::Acquire);
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if !(erasing || size > limit) {
            continue;
        }
        match checkpoint(&conn, "TRUNCATE") {
            Ok(true) if erasing => erase.store(false, Ordering::Release),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sqlite: truncating checkpoint failed"),
        }
    }
    tracing::debug!("sqlite checkpointer stopped");
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn db_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Conflict(e.to_string());
    }
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = dir.join("emofy.db");
        private_files(dir, &path)?;
        let writer = Connection::open(&path).map_err(db_err)?;
        let sync = if opts.fsync_every_commit {
            "FULL"
        } else {
            "NORMAL"
        };
        // secure_delete: deleted content is overwritten with zeros in the
        // database file; temp_store: no temporary files at all; the journal
        // size limit cuts the WAL back once a checkpoint has emptied it.
        let wal_limit = opts.wal_limit_bytes;
        writer
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA busy_timeout = 5000; \
                 PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY; \
                 PRAGMA journal_size_limit = {wal_limit};"
            ))
            .map_err(db_err)?;
        migrate(&writer)?;
        writer.set_prepared_statement_cache_capacity(64);
        // Checkpoints run from a separate connection (PASSIVE never blocks the writer),
        // so commits never stall behind an automatic checkpoint.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(db_err)?;
        let checkpointer = Connection::open(&path).map_err(db_err)?;
        checkpointer
            .execute_batch(&format!(
                "PRAGMA busy_timeout = 5000; PRAGMA secure_delete = ON; PRAGMA journal_size_limit = {wal_limit};"
            ))
            .map_err(db_err)?;
        let mut readers = Vec::new();
        for _ in 0..opts.readers.max(1) {
            let r = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(db_err)?;
            r.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA temp_store = MEMORY;")
                .map_err(db_err)?;
            readers.push(Mutex::new(r));
        }
        let (tx, rx) = mpsc::channel::<Job>(opts.queue.max(1));
        let max_batch = opts.max_batch.max(1);
        let erase = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let every = opts
            .checkpoint_every
            .max(std::time::Duration::from_millis(1));
        let pending = erase.clone();
        let wal = dir.join("emofy.db-wal");
        std::thread::Builder::new()
            .name("emofy-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpointer, wal, every, wal_limit, stop_rx, pending))
            .map_err(unavailable)?;
        let erased = erase.clone();
        std::thread::Builder::new()
            .name("emofy-sqlite-writer".into())
            .spawn(move || {
                writer_loop(writer, rx, max_batch, &erased);
                drop(stop_tx);
            })
            .map_err(unavailable)?;
        Ok(SqliteStore {
            jobs: tx,
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            erase,
        })
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let done: Done = Box::new(move |commit| {
                let out = match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Unavailable(e)),
                };
                let _ = tx.send(out);
            });
            (ok, done)
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| unavailable("the writer has stopped"))?;
        rx.await
            .map_err(|_| unavailable("the writer dropped the request"))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len().max(1);
        tokio::task::spawn_blocking(move || {
            let conn = readers
                .get(i)
                .ok_or_else(|| unavailable("no reader"))?
                .lock()
                .map_err(|_| unavailable("reader poisoned"))?;
            f(&conn)
        })
        .await
        .map_err(unavailable)?
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "database schema version {version} is newer than this build supports ({SCHEMA_VERSION})"
        )));
    }
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    if version > 0 && version < 3 {
        // v3: images that must not be offered in rounds (uploads without consent to show them).
        conn.execute_batch("ALTER TABLE images ADD COLUMN playable INTEGER NOT NULL DEFAULT 1;")
            .map_err(db_err)?;
    }
    if version > 0 && version < 7 && !has_column(conn, "uploads", "fingerprint")? {
        // v7: uploads are deduplicated per contributor by a fingerprint, not by their bytes.
        conn.execute_batch("ALTER TABLE uploads ADD COLUMN fingerprint TEXT;")
            .map_err(db_err)?;
    }
    if version > 0 && version < 6 {
        // v6: truth inference (posteriors, gold labels, the model's guess, decoy rounds).
        conn.execute_batch(
            "ALTER TABLE images ADD COLUMN posterior TEXT;
             ALTER TABLE images ADD COLUMN gold TEXT;
             ALTER TABLE images ADD COLUMN model_guess TEXT;
             ALTER TABLE labels ADD COLUMN decoy INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE labels ADD COLUMN gold INTEGER NOT NULL DEFAULT 0;",
        )
        .map_err(db_err)?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS uploads_fingerprint ON uploads (player_id, fingerprint);",
    )
    .map_err(db_err)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
        .map_err(db_err)?;
    Ok(())
}

fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
    let mut st = conn
        .prepare(&format!("PRAGMA table_info({table})"))
        .map_err(db_err)?;
    let names = st
        .query_map([], |r| r.get::<_, String>(1))
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    Ok(names.iter().any(|n| n == column))
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    erase: &AtomicBool,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let t0 = std::time::Instant::now();
        let n = batch.len();
        let mut dones: Vec<Done> = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Dropping the jobs drops their reply channels: each caller gets `Unavailable`.
            tracing::error!(error = %e, jobs = batch.len(), "sqlite: cannot begin a transaction");
            batch.clear();
            continue;
        }
        for job in batch.drain(..) {
            let savepoint = conn.execute_batch("SAVEPOINT job");
            let (ok, done) = job(&conn);
            if savepoint.is_ok() {
                let end = if ok {
                    conn.execute_batch("RELEASE job")
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")
                };
                if let Err(e) = end {
                    tracing::error!(error = %e, "sqlite: savepoint failed");
                }
            }
            dones.push(done);
        }
        let t1 = t0.elapsed();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if t0.elapsed() > std::time::Duration::from_millis(100) {
            tracing::warn!(
                jobs = n,
                exec_ms = t1.as_millis() as u64,
                total_ms = t0.elapsed().as_millis() as u64,
                "slow sqlite group commit"
            );
        }
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        } else if erase.load(Ordering::Acquire) {
            // Face bytes were deleted in this commit: move the zeroed pages into
            // the database file and truncate the WAL before anyone hears "done",
            // so no copy of the erased bytes is left in any file.
            match checkpoint(&conn, "TRUNCATE") {
                Ok(true) => erase.store(false, Ordering::Release),
                // Readers held old snapshots: the checkpointer retries shortly.
                Ok(false) => tracing::warn!("sqlite: erasure checkpoint incomplete; retrying"),
                Err(e) => tracing::warn!(error = %e, "sqlite: erasure checkpoint failed; retrying"),
            }
        }
        for done in dones {
            done(commit.clone());
        }
    }
    tracing::debug!("sqlite writer stopped");
}

/// `execute` through the connection's prepared-statement cache.
fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// `query_row` through the connection's prepared-statement cache.
fn qrow<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

fn now_ms() -> Millis {
    crate::clock::now()
}

fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad id {s:?}")))
}

fn parse_emotion(s: Option<String>) -> Result<Option<Emotion>, StoreError> {
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("bad emotion {s:?}")))
    })
    .transpose()
}

fn votes_to_json(v: &VoteCounts) -> String {
    format!(
        "[{}]",
        v.0.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn votes_from_json(s: &str) -> Result<VoteCounts, StoreError> {
    let v: [u32; 7] =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("votes {s:?}: {e}")))?;
    Ok(VoteCounts(v))
}

fn status_from(status: &str, consensus: Option<Emotion>) -> Result<ImageStatus, StoreError> {
    Ok(match (status, consensus) {
        ("open", _) => ImageStatus::Open,
        ("retired", Some(label)) => ImageStatus::Retired { label },
        ("disputed", _) => ImageStatus::Disputed,
        ("removed", _) => ImageStatus::Removed,
        (s, c) => return Err(StoreError::Corrupt(format!("bad status {s:?} / {c:?}"))),
    })
}

fn consensus_of(status: &ImageStatus) -> Option<&'static str> {
    match status {
        ImageStatus::Retired { label } => Some(label.as_str()),
        _ => None,
    }
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

const PLAYER_COLS: &str =
    "id, name, role, created_ms, score, score_at_ms, streak, best_streak, answers";

fn player_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PlayerRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

type PlayerRow = (String, String, String, i64, i64, i64, i64, i64, i64);

fn player_record(row: PlayerRow) -> Result<PlayerRecord, StoreError> {
    let (id, name, role, created, score, score_at, streak, best, answers) = row;
    Ok(PlayerRecord {
        id: parse_id(&id)?,
        name,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        created: Millis(u64_of(created)),
        tally: PlayerTally {
            score: u64_of(score),
            streak: u32_of(streak),
            best_streak: u32_of(best),
            answers: u32_of(answers),
        },
        score_at: Millis(u64_of(score_at)),
    })
}

fn load_player(conn: &Connection, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {PLAYER_COLS} FROM players WHERE id = ?1"),
        params![id.to_string()],
        player_from_row,
    )
    .optional()
    .map_err(db_err)?
    .map(player_record)
    .transpose()
}

#[async_trait]
impl PlayerStore for SqliteStore {
    async fn create_player(
        &self,
        id: PlayerId,
        name: &str,
        role: Role,
        at: Millis,
    ) -> Result<PlayerRecord, StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO players (id, name, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), name, role.as_str(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(PlayerRecord {
                id,
                name,
                role,
                created: at,
                tally: PlayerTally::default(),
                score_at: Millis(0),
            })
        })
        .await
    }

    async fn player(&self, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError> {
        self.read(move |c| load_player(c, id)).await
    }

    async fn scored_players(&self) -> Result<Vec<PlayerRecord>, StoreError> {
        self.read(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {PLAYER_COLS} FROM players WHERE score > 0"
                ))
                .map_err(db_err)?;
            let rows = st.query_map([], player_from_row).map_err(db_err)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(player_record(r.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn create_account(
        &self,
        account: AccountRecord,
        name: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO players (id, name, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![account.player.to_string(), name, account.role.as_str(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            exec(
                c,
                "INSERT INTO accounts (username, player_id, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![account.username, account.player.to_string(), account.password_hash, i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let username = username.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT a.username, a.player_id, a.password_hash, p.role FROM accounts a JOIN players p ON p.id = a.player_id WHERE a.username = ?1",
                    params![username],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?)),
                )
                .optional()
                .map_err(db_err)?;
            row.map(|(username, player, password_hash, role)| {
                Ok(AccountRecord {
                    username,
                    player: parse_id(&player)?,
                    password_hash,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
                })
            })
            .transpose()
        })
        .await
    }
}

/// SHA-256 content address of image bytes.
pub fn content_id(bytes: &[u8]) -> ImageId {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    ImageId::from_digest(digest)
}

#[async_trait]
impl ImageStore for SqliteStore {
    async fn insert_image(
        &self,
        image: NewImage,
        at: Millis,
    ) -> Result<(ImageId, bool), StoreError> {
        let id = content_id(&image.bytes);
        self.write(move |c| {
            let hex = id.to_hex();
            let exists: Option<i64> = c
                .query_row("SELECT 1 FROM images WHERE id = ?1", params![hex], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            if exists.is_some() {
                return Ok((id, false));
            }
            exec(
                c,
                "INSERT OR IGNORE INTO image_blobs (id, bytes) VALUES (?1, ?2)",
                params![hex, image.bytes],
            )
            .map_err(db_err)?;
            exec(
                c,
                "INSERT INTO images (id, mime, width, height, source, source_label, uploader, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    hex,
                    image.mime,
                    image.width,
                    image.height,
                    image.source.as_str(),
                    image.source_label.map(|e| e.as_str()),
                    image.uploader.map(|p| p.to_string()),
                    i64_of(at.0)
                ],
            )
            .map_err(db_err)?;
            Ok((id, true))
        })
        .await
    }

    async fn image_bytes(&self, id: ImageId) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT b.bytes, i.mime FROM images i JOIN image_blobs b ON b.id = i.id WHERE i.id = ?1 AND i.status != 'removed'",
                params![id.to_hex()],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, StoreError> {
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT mime, width, height, source, source_label, uploader, votes, status, consensus, created_ms, posterior, gold FROM images WHERE id = ?1",
                    params![id.to_hex()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, u32>(1)?,
                            r.get::<_, u32>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, Option<String>>(8)?,
                            r.get::<_, i64>(9)?,
                            r.get::<_, Option<String>>(10)?,
                            r.get::<_, Option<String>>(11)?,
                        ))
                    },
                )
                .optional()
                .map_err(db_err)?;
            row.map(|(mime, width, height, source, source_label, uploader, votes, status, consensus, created, posterior, gold)| {
                Ok(ImageMeta {
                    id,
                    mime,
                    width,
                    height,
                    source: ImageSource::parse(&source)
                        .ok_or_else(|| StoreError::Corrupt(format!("bad source {source:?}")))?,
                    source_label: parse_emotion(source_label)?,
                    uploader: uploader.map(|u| parse_id(&u)).transpose()?,
                    votes: votes_from_json(&votes)?,
                    status: status_from(&status, parse_emotion(consensus)?)?,
                    created: Millis(u64_of(created)),
                    posterior: truth::posterior_from(posterior.as_deref()),
                    gold: parse_emotion(gold)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn pool_entries(&self, since: Millis) -> Result<Vec<PoolEntry>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT id, uploader, votes, status, consensus, posterior, model_guess FROM images WHERE updated_ms >= ?1 AND (playable = 1 OR status = 'removed')")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64_of(since.0)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, uploader, votes, status, consensus, posterior, guess) = row.map_err(db_err)?;
                out.push(PoolEntry {
                    image: parse_id(&id)?,
                    uploader: uploader.map(|u| parse_id(&u)).transpose()?,
                    votes: votes_from_json(&votes)?,
                    status: status_from(&status, parse_emotion(consensus)?)?,
                    leading: truth::leading(truth::posterior_from(posterior.as_deref())),
                    model_guess: parse_emotion(guess)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn image_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            qrow(c, "SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0))
                .map(u64_of)
                .map_err(db_err)
        })
        .await
    }

    async fn save_predictions(
        &self,
        predictions: Vec<(ImageId, Prediction)>,
    ) -> Result<(), StoreError> {
        let at = i64_of(now_ms().0);
        self.write(move |c| {
            for (id, p) in &predictions {
                let probs = serde_json::to_string(&p.probabilities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                exec(
                    c,
                    "INSERT OR REPLACE INTO predictions (image_id, model, probabilities, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![id.to_hex(), p.model, probs, at],
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn prediction(&self, id: ImageId, model: &str) -> Result<Option<Prediction>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| {
            let probs: Option<String> = qrow(
                c,
                "SELECT probabilities FROM predictions WHERE image_id = ?1 AND model = ?2",
                params![id.to_hex(), model],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
            probs
                .map(|probs| {
                    let probs: [f32; 7] = serde_json::from_str(&probs)
                        .map_err(|e| StoreError::Corrupt(format!("prediction: {e}")))?;
                    Prediction::new(model.clone(), probs)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .transpose()
        })
        .await
    }

    async fn predictions(&self, model: &str) -> Result<Vec<(ImageId, Prediction)>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT image_id, probabilities FROM predictions WHERE model = ?1")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![model], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, probs) = row.map_err(db_err)?;
                let probs: [f32; 7] = serde_json::from_str(&probs)
                    .map_err(|e| StoreError::Corrupt(format!("prediction: {e}")))?;
                let p = Prediction::new(model.clone(), probs)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((parse_id(&id)?, p));
            }
            Ok(out)
        })
        .await
    }

    async fn unpredicted_images(&self, model: &str) -> Result<Vec<ImageId>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare(
                    "SELECT i.id FROM images i LEFT JOIN predictions p ON p.image_id = i.id AND p.model = ?1 \
                     WHERE p.image_id IS NULL AND i.status != 'removed'",
                )
                .map_err(db_err)?;
            let rows = st.query_map(params![model], |r| r.get::<_, String>(0)).map_err(db_err)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(parse_id(&r.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn all_images(
        &self,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let ids: Vec<ImageId> = self
            .read(move |c| {
                let mut st = c
                    .prepare(
                        "SELECT id FROM images WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let rows = st
                    .query_map(
                        params![after.map(|a| a.to_hex()), i64_of(limit as u64)],
                        |r| r.get::<_, String>(0),
                    )
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(parse_id(&r.map_err(db_err)?)?);
                }
                Ok(out)
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.image_meta(id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn gold_images(&self) -> Result<Vec<ImageId>, StoreError> {
        self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT id FROM images WHERE gold IS NOT NULL AND status != 'removed' AND playable = 1")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(parse_id(&row.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn restore_tally(
        &self,
        id: ImageId,
        votes: VoteCounts,
        status: ImageStatus,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let n = exec(
                c,
                "UPDATE images SET votes = ?2, status = ?3, consensus = ?4, updated_ms = ?5 WHERE id = ?1",
                params![id.to_hex(), votes_to_json(&votes), status.name(), consensus_of(&status), i64_of(at.0)],
            )
            .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("image {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.read(|c| {
            let count = |sql: &str| -> Result<u64, StoreError> {
                qrow(c, sql, [], |r| r.get::<_, i64>(0))
                    .map(u64_of)
                    .map_err(db_err)
            };
            let mut s = Stats {
                players: count("SELECT COUNT(*) FROM players")?,
                images: count("SELECT COUNT(*) FROM images")?,
                labels: count("SELECT COUNT(*) FROM labels")?,
                rounds: count("SELECT COUNT(*) FROM rounds")?,
                ..Stats::default()
            };
            let mut st = c
                .prepare("SELECT status, COUNT(*) FROM images GROUP BY status")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            for row in rows {
                let (status, n) = row.map_err(db_err)?;
                let n = u64_of(n);
                match status.as_str() {
                    "open" => s.open = n,
                    "retired" => s.retired = n,
                    "disputed" => s.disputed = n,
                    "removed" => s.removed = n,
                    other => return Err(StoreError::Corrupt(format!("bad status {other:?}"))),
                }
            }
            Ok(s)
        })
        .await
    }
}

#[async_trait]
impl RoundStore for SqliteStore {
    async fn record_offer(&self, o: OfferRecord) -> Result<(), StoreError> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO rounds (id, player_id, image_id, shown, offered_ms, deadline_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'offered')",
                params![
                    o.round.to_string(),
                    o.player.to_string(),
                    o.image.to_hex(),
                    o.shown.map(|e| e.as_str()),
                    i64_of(o.offered.0),
                    i64_of(o.deadline.0)
                ],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn close_round(
        &self,
        round: RoundId,
        state: &'static str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            exec(
                c,
                "UPDATE rounds SET state = ?2, closed_ms = ?3 WHERE id = ?1 AND state = 'offered'",
                params![round.to_string(), state, i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn seen_images(&self, player: PlayerId) -> Result<Vec<ImageId>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT image_id FROM rounds WHERE player_id = ?1")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![player.to_string()], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(parse_id(&r.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn record_answer(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        let rules = *rules;
        self.write(move |c| answer_tx(c, &a, &rules)).await
    }

    async fn player_labels(
        &self,
        player: PlayerId,
        cursor: Option<LabelCursor>,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold FROM labels \
                     WHERE player_id = ?1 AND (?2 IS NULL OR created_ms < ?2 OR (created_ms = ?2 AND round_id < ?3)) \
                     ORDER BY created_ms DESC, round_id DESC LIMIT ?4",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(
                    params![
                        player.to_string(),
                        cursor.map(|k| i64_of(k.at.0)),
                        cursor.map(|k| k.round.to_string()),
                        i64_of(limit as u64)
                    ],
                    label_row,
                )
                .map_err(db_err)?;
            rows.map(|r| label_record(r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn image_labels(
        &self,
        image: ImageId,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold FROM labels \
                     WHERE image_id = ?1 ORDER BY created_ms, round_id LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![image.to_hex(), i64_of(limit as u64)], label_row)
                .map_err(db_err)?;
            rows.map(|r| label_record(r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn score_events_since(
        &self,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<ScoreChange>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT e.key, e.player_id, p.name, e.delta, e.total, e.reason, e.at_ms \
                     FROM score_events e JOIN players p ON p.id = e.player_id \
                     WHERE e.at_ms >= ?1 ORDER BY e.at_ms, e.key LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64_of(since.0), i64_of(limit as u64)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, player, name, delta, total, reason, at) = row.map_err(db_err)?;
                out.push(ScoreChange {
                    player: parse_id(&player)?,
                    name,
                    delta: u32::try_from(delta)
                        .map_err(|_| StoreError::Corrupt(format!("score delta {delta}")))?,
                    total: u64_of(total),
                    key,
                    at: Millis(u64_of(at)),
                    reason: match reason.as_str() {
                        "answer" => ScoreReason::Answer,
                        "consensus" => ScoreReason::Consensus,
                        other => {
                            return Err(StoreError::Corrupt(format!("score reason {other:?}")));
                        }
                    },
                });
            }
            Ok(out)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }
}

/// The answer transaction (runs inside the writer's savepoint).
fn answer_tx(
    c: &Connection,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<AnswerOutcome, StoreError> {
    let round_id = a.round.to_string();
    let player_id = a.player.to_string();
    let image_hex = a.image.to_hex();
    let round: Option<(String, String, String)> = c
        .query_row(
            "SELECT player_id, image_id, state FROM rounds WHERE id = ?1",
            params![round_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(db_err)?;
    let Some((r_player, r_image, r_state)) = round else {
        return Err(StoreError::NotFound(format!("round {}", a.round)));
    };
    if r_player != player_id || r_image != image_hex {
        return Err(StoreError::NotFound(format!(
            "round {} for this player and image",
            a.round
        )));
    }
    if r_state != "offered" {
        return Err(StoreError::RoundClosed(a.round));
    }
    let (votes, status, consensus, gold, stored_guess): (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = c
        .query_row(
            "SELECT votes, status, consensus, gold, model_guess FROM images WHERE id = ?1",
            params![image_hex],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("image {}", a.image)))?;
    let status = status_from(&status, parse_emotion(consensus)?)?;
    if status == ImageStatus::Removed {
        // Withdrawn (e.g. its contributor deleted it) while the round was open.
        return Err(StoreError::RoundClosed(a.round));
    }
    let stored_guess = parse_emotion(stored_guess)?;
    let model_guess = stored_guess.or(a.model_guess);
    let player = load_player(c, a.player)?
        .ok_or_else(|| StoreError::NotFound(format!("player {}", a.player)))?;
    let earlier = load_earlier(c, &image_hex)?;
    let me = load_reliability(c, &player_id)?;
    let model = load_reliability(c, truth::MODEL_KEY)?.map(|r| r.matrix);
    let step = truth::answer_step(
        truth::TruthInputs {
            status,
            votes: votes_from_json(&votes)?,
            gold: parse_emotion(gold)?,
            model_guess,
            model,
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
    let mut tally = player.tally;
    tally.apply_award(&award);
    let image = ImageTally {
        votes: step.votes,
        status: step.judgement.status,
    };
    let transition = step.judgement.transition;
    let at = i64_of(a.at.0);
    let is_gold = step.gold.is_some();
    exec(
        c,
        "INSERT INTO labels (round_id, image_id, player_id, emotion, shown, response_ms, created_ms, points, decoy, gold) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            round_id,
            image_hex,
            player_id,
            a.emotion.as_str(),
            a.shown.map(|e| e.as_str()),
            i64_of(a.response_ms),
            at,
            award.points,
            a.decoy,
            is_gold
        ],
    )
    .map_err(db_err)?;
    exec(
        c,
        "UPDATE images SET votes = ?2, status = ?3, consensus = ?4, updated_ms = ?5, posterior = ?6, model_guess = ?7 WHERE id = ?1",
        params![
            image_hex,
            votes_to_json(&image.votes),
            image.status.name(),
            consensus_of(&image.status),
            i64_of(now_ms().0.max(a.at.0)),
            truth::posterior_json(&step.judgement.posterior),
            model_guess.map(|e| e.as_str())
        ],
    )
    .map_err(db_err)?;
    save_reliability(c, &player_id, &step.me, at)?;
    if let Some(m) = &step.model {
        let mut r = load_reliability(c, truth::MODEL_KEY)?.unwrap_or_default();
        r.matrix = m.clone();
        save_reliability(c, truth::MODEL_KEY, &r, at)?;
    }
    exec(
        c,
        "UPDATE players SET score = ?2, streak = ?3, best_streak = ?4, answers = ?5, score_at_ms = CASE WHEN ?6 > 0 THEN ?7 ELSE score_at_ms END WHERE id = ?1",
        params![
            player_id,
            i64_of(tally.score),
            tally.streak,
            tally.best_streak,
            tally.answers,
            award.points,
            at
        ],
    )
    .map_err(db_err)?;
    exec(
        c,
        "UPDATE rounds SET state = 'answered', answer = ?2, closed_ms = ?3 WHERE id = ?1",
        params![round_id, a.emotion.as_str(), at],
    )
    .map_err(db_err)?;
    let mut changes = Vec::new();
    if award.points > 0 {
        changes.push(ScoreChange {
            player: a.player,
            name: player.name.clone(),
            delta: award.points,
            total: tally.score,
            key: format!("answer:{}", a.round),
            at: a.at,
            reason: ScoreReason::Answer,
        });
    }
    if let Transition::Retired { label } = transition {
        let labels = &step.settlement;
        for (p, pts) in rules.scoring.settle(label, labels) {
            exec(
                c,
                "UPDATE players SET score = score + ?2, score_at_ms = ?3 WHERE id = ?1",
                params![p.to_string(), pts, at],
            )
            .map_err(db_err)?;
            let (name, total): (String, i64) = c
                .query_row(
                    "SELECT name, score FROM players WHERE id = ?1",
                    params![p.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            if p == a.player {
                tally.add_points(pts);
            }
            changes.push(ScoreChange {
                player: p,
                name,
                delta: pts,
                total: u64_of(total),
                key: format!("settle:{}:{}", a.image, p),
                at: a.at,
                reason: ScoreReason::Consensus,
            });
        }
    }
    // The score ledger: leaderboards replay from it after an outage, periods seed from it.
    for ch in &changes {
        exec(
            c,
            "INSERT INTO score_events (key, player_id, delta, total, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                ch.key,
                ch.player.to_string(),
                ch.delta,
                i64_of(ch.total),
                ch.reason.as_str(),
                i64_of(ch.at.0)
            ],
        )
        .map_err(db_err)?;
    }
    Ok(AnswerOutcome {
        award,
        tally,
        votes: image.votes,
        status: image.status,
        transition,
        posterior: step.judgement.posterior,
        gold: step.gold,
        counted: step.me.counts(),
        changes,
    })
}

/// Every label on an image with its player's current reliability.
fn load_earlier(c: &Connection, image_hex: &str) -> Result<Vec<truth::EarlierLabel>, StoreError> {
    let mut earlier = Vec::new();
    {
        let mut st = c
            .prepare_cached(
                "SELECT l.player_id, l.emotion, l.shown, l.decoy, r.data FROM labels l \
                 LEFT JOIN reliability r ON r.player_id = l.player_id WHERE l.image_id = ?1",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(params![image_hex], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(db_err)?;
        for row in rows {
            let (p, e, sh, decoy, data) = row.map_err(db_err)?;
            earlier.push(truth::EarlierLabel {
                player: parse_id(&p)?,
                answer: parse_emotion(Some(e))?
                    .ok_or_else(|| StoreError::Corrupt("label".into()))?,
                shown: parse_emotion(sh)?,
                decoy,
                reliability: reliability_from(data.as_deref())?.unwrap_or_default(),
            });
        }
    }
    Ok(earlier)
}

fn reliability_from(data: Option<&str>) -> Result<Option<Reliability>, StoreError> {
    data.map(|d| {
        serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("reliability: {e}")))
    })
    .transpose()
}

fn load_reliability(c: &Connection, id: &str) -> Result<Option<Reliability>, StoreError> {
    let data: Option<String> = c
        .query_row(
            "SELECT data FROM reliability WHERE player_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    reliability_from(data.as_deref())
}

fn save_reliability(c: &Connection, id: &str, r: &Reliability, at: i64) -> Result<(), StoreError> {
    let data = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    exec(
        c,
        "INSERT INTO reliability (player_id, data, flag, moderation, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (player_id) DO UPDATE SET data = excluded.data, flag = excluded.flag, moderation = excluded.moderation, updated_ms = excluded.updated_ms",
        params![
            id,
            data,
            r.flag.map(|f| f.as_str()),
            r.moderation.as_str(),
            at
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

const UPLOAD_COLUMNS: &str = "u.image_id, u.player_id, u.created_ms, u.face, u.show_to_players, \
     u.use_for_training, u.include_in_exports, u.keep_original, u.consent_version, u.consent_ms, \
     u.original IS NOT NULL, i.votes, i.status, i.consensus, \
     (SELECT l.emotion FROM labels l WHERE l.image_id = u.image_id AND l.player_id = u.player_id)";

type UploadRow = (
    String,
    String,
    i64,
    String,
    bool,
    bool,
    bool,
    bool,
    String,
    i64,
    bool,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn upload_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
        r.get(14)?,
    ))
}

fn upload_record(row: UploadRow) -> Result<UploadRecord, StoreError> {
    let (
        image,
        player,
        created,
        face,
        show,
        train,
        export,
        keep,
        version,
        consent_ms,
        has_original,
        votes,
        status,
        consensus,
        label,
    ) = row;
    let face: [f64; 5] = serde_json::from_str(&face)
        .map_err(|e| StoreError::Corrupt(format!("upload face box: {e}")))?;
    Ok(UploadRecord {
        image: parse_id(&image)?,
        player: parse_id(&player)?,
        created: Millis(u64_of(created)),
        face: FaceRegion {
            x: face[0] as u32,
            y: face[1] as u32,
            w: face[2] as u32,
            h: face[3] as u32,
            score: face[4],
        },
        consent: Consent {
            show_to_players: show,
            use_for_training: train,
            include_in_exports: export,
            keep_original: keep,
            text_version: version,
        },
        consent_at: Millis(u64_of(consent_ms)),
        has_original,
        label: parse_emotion(label)?,
        votes: votes_from_json(&votes)?,
        status: status_from(&status, parse_emotion(consensus)?)?,
    })
}

type LabelRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    bool,
    bool,
);

fn label_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LabelRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn label_record(row: LabelRow) -> Result<LabelRecord, StoreError> {
    let (round, image, player, emotion, shown, response_ms, points, at, decoy, gold) = row;
    Ok(LabelRecord {
        round: parse_id(&round)?,
        image: parse_id(&image)?,
        player: parse_id(&player)?,
        emotion: parse_emotion(Some(emotion))?
            .ok_or_else(|| StoreError::Corrupt("label".into()))?,
        shown: parse_emotion(shown)?,
        decoy,
        gold,
        response_ms: u64_of(response_ms),
        points: u32_of(points),
        at: Millis(u64_of(at)),
    })
}

fn log_consent(
    c: &Connection,
    image: &str,
    player: &str,
    event: &str,
    consent: &Consent,
    at: i64,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO consent_log (image_id, player_id, event, show_to_players, use_for_training, \
         include_in_exports, keep_original, consent_version, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            image,
            player,
            event,
            consent.show_to_players,
            consent.use_for_training,
            consent.include_in_exports,
            consent.keep_original,
            consent.text_version,
            at
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl UploadStore for SqliteStore {
    async fn consent_log(&self, image: ImageId) -> Result<Vec<ConsentEvent>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT player_id, event, show_to_players, use_for_training, include_in_exports, \
                     keep_original, consent_version, at_ms FROM consent_log WHERE image_id = ?1 ORDER BY id",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![image.to_hex()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (player, event, show, train, export, keep, version, at) = row.map_err(db_err)?;
                out.push(ConsentEvent {
                    image,
                    player: parse_id(&player)?,
                    event,
                    consent: Consent {
                        show_to_players: show,
                        use_for_training: train,
                        include_in_exports: export,
                        keep_original: keep,
                        text_version: version,
                    },
                    at: Millis(u64_of(at)),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn insert_upload(&self, u: NewUpload, at: Millis) -> Result<ImageId, StoreError> {
        let id = content_id(&u.crop.bytes);
        self.write(move |c| {
            let hex = id.to_hex();
            let duplicate: Option<i64> = qrow(
                c,
                "SELECT 1 FROM uploads WHERE player_id = ?1 AND fingerprint = ?2 AND deleted_ms IS NULL",
                params![u.player.to_string(), u.fingerprint],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
            if duplicate.is_some() {
                return Err(StoreError::Conflict("this contributor stored this face already".into()));
            }
            let existing: Option<String> = c
                .query_row("SELECT status FROM images WHERE id = ?1", params![hex], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            let ms = i64_of(at.0);
            let playable = u.consent.show_to_players;
            match existing.as_deref() {
                None => {
                    exec(c, "INSERT INTO image_blobs (id, bytes) VALUES (?1, ?2)", params![hex, u.crop.bytes])
                        .map_err(db_err)?;
                    exec(
                        c,
                        "INSERT INTO images (id, mime, width, height, source, uploader, created_ms, updated_ms, playable) \
                         VALUES (?1, ?2, ?3, ?4, 'upload', ?5, ?6, ?6, ?7)",
                        params![hex, u.crop.mime, u.crop.width, u.crop.height, u.player.to_string(), ms, playable],
                    )
                    .map_err(db_err)?;
                }
                // The same face crop, deleted before: stored again under the new consent.
                Some("removed") => {
                    exec(c, "UPDATE image_blobs SET bytes = ?2 WHERE id = ?1", params![hex, u.crop.bytes])
                        .map_err(db_err)?;
                    exec(
                        c,
                        "UPDATE images SET status = 'open', consensus = NULL, uploader = ?2, updated_ms = ?3, playable = ?4 WHERE id = ?1",
                        params![hex, u.player.to_string(), ms, playable],
                    )
                    .map_err(db_err)?;
                    exec(c, "DELETE FROM uploads WHERE image_id = ?1", params![hex]).map_err(db_err)?;
                }
                Some(_) => {
                    return Err(StoreError::Conflict(format!("image {id} is already stored")));
                }
            }
            let f = &u.face;
            let face = serde_json::to_string(&[f64::from(f.x), f64::from(f.y), f64::from(f.w), f64::from(f.h), f.score])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            exec(
                c,
                "INSERT INTO uploads (image_id, player_id, created_ms, face, show_to_players, use_for_training, \
                 include_in_exports, keep_original, consent_version, consent_ms, original, fingerprint) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?3, ?10, ?11)",
                params![
                    hex,
                    u.player.to_string(),
                    ms,
                    face,
                    u.consent.show_to_players,
                    u.consent.use_for_training,
                    u.consent.include_in_exports,
                    u.consent.keep_original,
                    u.consent.text_version,
                    u.original,
                    u.fingerprint
                ],
            )
            .map_err(db_err)?;
            log_consent(c, &hex, &u.player.to_string(), "given", &u.consent, ms)?;
            Ok(id)
        })
        .await
    }

    async fn upload_access(&self, image: ImageId) -> Result<Option<UploadAccess>, StoreError> {
        let row: Option<(String, bool)> = self
            .read(move |c| {
                qrow(
                    c,
                    "SELECT player_id, show_to_players FROM uploads WHERE image_id = ?1 AND deleted_ms IS NULL",
                    params![image.to_hex()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_err)
            })
            .await?;
        row.map(|(p, show)| {
            Ok(UploadAccess {
                contributor: parse_id(&p)?,
                show_to_players: show,
            })
        })
        .transpose()
    }

    async fn export_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT COUNT(*) FROM uploads WHERE image_id = ?1 AND include_in_exports = 1 AND deleted_ms IS NULL",
                params![image.to_hex()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn uploads_since(&self, player: PlayerId, since: Millis) -> Result<u64, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT COUNT(*) FROM uploads WHERE player_id = ?1 AND created_ms >= ?2",
                params![player.to_string(), i64_of(since.0)],
                |r| r.get::<_, i64>(0),
            )
            .map(u64_of)
            .map_err(db_err)
        })
        .await
    }

    async fn upload(
        &self,
        player: PlayerId,
        image: ImageId,
    ) -> Result<Option<UploadRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads u JOIN images i ON i.id = u.image_id \
                 WHERE u.image_id = ?1 AND u.player_id = ?2 AND u.deleted_ms IS NULL"
            );
            qrow(
                c,
                &sql,
                params![image.to_hex(), player.to_string()],
                upload_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(upload_record)
            .transpose()
        })
        .await
    }

    async fn uploads(
        &self,
        player: PlayerId,
        cursor: Option<UploadCursor>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads u JOIN images i ON i.id = u.image_id \
                 WHERE u.player_id = ?1 AND u.deleted_ms IS NULL \
                 AND (?2 IS NULL OR u.created_ms < ?2 OR (u.created_ms = ?2 AND u.image_id < ?3)) \
                 ORDER BY u.created_ms DESC, u.image_id DESC LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql).map_err(db_err)?;
            let rows = st
                .query_map(
                    params![
                        player.to_string(),
                        cursor.map(|k| i64_of(k.created.0)),
                        cursor.map(|k| k.image.to_hex()),
                        i64_of(limit as u64)
                    ],
                    upload_from_row,
                )
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(upload_record(row.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_upload(
        &self,
        player: PlayerId,
        image: ImageId,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let erase = self.erase.clone();
        self.write(move |c| {
            let hex = image.to_hex();
            let n = exec(
                c,
                "UPDATE uploads SET original = NULL, fingerprint = NULL, deleted_ms = ?3 WHERE image_id = ?1 AND player_id = ?2 AND deleted_ms IS NULL",
                params![hex, player.to_string(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            if n == 0 {
                return Ok(false);
            }
            exec(
                c,
                "INSERT INTO consent_log (image_id, player_id, event, show_to_players, use_for_training, \
                 include_in_exports, keep_original, consent_version, at_ms) \
                 SELECT image_id, player_id, 'revoked', show_to_players, use_for_training, include_in_exports, \
                 keep_original, consent_version, ?2 FROM uploads WHERE image_id = ?1",
                params![hex, i64_of(at.0)],
            )
            .map_err(db_err)?;
            // `secure_delete` overwrites the freed content in the database file.
            exec(c, "UPDATE image_blobs SET bytes = zeroblob(0) WHERE id = ?1", params![hex])
                .map_err(db_err)?;
            exec(c, "DELETE FROM predictions WHERE image_id = ?1", params![hex]).map_err(db_err)?;
            exec(
                c,
                "UPDATE images SET status = 'removed', consensus = NULL, playable = 0, updated_ms = ?2 WHERE id = ?1",
                params![hex, i64_of(at.0)],
            )
            .map_err(db_err)?;
            erase.store(true, Ordering::Release);
            Ok(true)
        })
        .await
    }
}

fn audit(
    c: &Connection,
    moderator: PlayerId,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    at: Millis,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO moderation_log (moderator, action, target, detail, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![moderator.to_string(), action, target, detail.to_string(), i64_of(at.0)],
    )
    .map_err(db_err)?;
    Ok(())
}

fn moderate_image_tx(
    c: &Connection,
    image: ImageId,
    action: &ImageAction,
    moderator: PlayerId,
    at: Millis,
    rules: &GameRules,
) -> Result<ModeratedImage, StoreError> {
    let hex = image.to_hex();
    let (status, consensus, posterior, gold): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = c
        .query_row(
            "SELECT status, consensus, posterior, gold FROM images WHERE id = ?1",
            params![hex],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("image {image}")))?;
    let before = status_from(&status, parse_emotion(consensus)?)?;
    let (after, new_gold, detail) = truth::plan_moderation(
        action,
        before,
        truth::posterior_from(posterior.as_deref()),
        parse_emotion(gold)?,
    )?;
    exec(
        c,
        "UPDATE images SET status = ?2, consensus = ?3, gold = ?4, updated_ms = ?5 WHERE id = ?1",
        params![
            hex,
            after.name(),
            consensus_of(&after),
            new_gold.map(|e| e.as_str()),
            i64_of(now_ms().0.max(at.0))
        ],
    )
    .map_err(db_err)?;
    audit(c, moderator, action.name(), &hex, detail, at)?;
    let mut changes = Vec::new();
    if let (ImageStatus::Retired { label }, false) =
        (after, matches!(before, ImageStatus::Retired { .. }))
    {
        // The image retires now: its labellers settle as if the crowd had decided.
        let labels = truth::settlement_of(&load_earlier(c, &hex)?);
        let at_i = i64_of(at.0);
        for (p, pts) in rules.scoring.settle(label, &labels) {
            let key = format!("settle:{image}:{p}");
            let fresh = exec(
                c,
                "INSERT OR IGNORE INTO score_events (key, player_id, delta, total, reason, at_ms) VALUES (?1, ?2, ?3, 0, 'consensus', ?4)",
                params![key, p.to_string(), pts, at_i],
            )
            .map_err(db_err)?;
            if fresh == 0 {
                continue;
            }
            exec(
                c,
                "UPDATE players SET score = score + ?2, score_at_ms = ?3 WHERE id = ?1",
                params![p.to_string(), pts, at_i],
            )
            .map_err(db_err)?;
            let (name, total): (String, i64) = c
                .query_row(
                    "SELECT name, score FROM players WHERE id = ?1",
                    params![p.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db_err)?;
            exec(
                c,
                "UPDATE score_events SET total = ?2 WHERE key = ?1",
                params![key, total],
            )
            .map_err(db_err)?;
            changes.push(ScoreChange {
                player: p,
                name,
                delta: pts,
                total: u64_of(total),
                key,
                at,
                reason: ScoreReason::Consensus,
            });
        }
    }
    Ok(ModeratedImage {
        status: after,
        gold: new_gold,
        changes,
    })
}

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn review_candidates(&self, limit: usize) -> Result<Vec<ReviewCandidate>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>, Option<String>)> = self
            .read(move |c| {
                let mut st = c
                    .prepare_cached(
                        "SELECT id, posterior, model_guess, gold FROM images \
                         WHERE status = 'disputed' OR (status = 'open' AND votes != '[0,0,0,0,0,0,0]') \
                         ORDER BY updated_ms DESC LIMIT ?1",
                    )
                    .map_err(db_err)?;
                let rows = st
                    .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, posterior, guess, gold) in rows {
            let id: ImageId = parse_id(&id)?;
            if let Some(meta) = self.image_meta(id).await? {
                out.push(ReviewCandidate {
                    meta,
                    posterior: truth::posterior_from(posterior.as_deref()),
                    model_guess: parse_emotion(guess)?,
                    gold: parse_emotion(gold)?,
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
        let rules = *rules;
        self.write(move |c| moderate_image_tx(c, image, &action, moderator, at, &rules))
            .await
    }

    async fn moderate_player(
        &self,
        player: PlayerId,
        action: PlayerAction,
        moderator: PlayerId,
        at: Millis,
    ) -> Result<Reliability, StoreError> {
        self.write(move |c| {
            if load_player(c, player)?.is_none() {
                return Err(StoreError::NotFound(format!("player {player}")));
            }
            let id = player.to_string();
            let mut r = load_reliability(c, &id)?.unwrap_or_default();
            let before = r.moderation.as_str();
            r.moderation = action.moderation();
            save_reliability(c, &id, &r, i64_of(at.0))?;
            audit(
                c,
                moderator,
                action.name(),
                &id,
                serde_json::json!({"before": before, "flag": r.flag.map(|f| f.as_str())}),
                at,
            )?;
            Ok(r)
        })
        .await
    }

    async fn reliabilities(
        &self,
        flagged_only: bool,
        limit: usize,
    ) -> Result<Vec<PlayerReliability>, StoreError> {
        self.read(move |c| {
            let sql = if flagged_only {
                "SELECT r.player_id, p.name, r.data FROM reliability r JOIN players p ON p.id = r.player_id \
                 WHERE (r.flag IS NOT NULL AND r.moderation != 'cleared') OR r.moderation = 'banned' ORDER BY r.updated_ms DESC LIMIT ?1"
            } else {
                "SELECT r.player_id, p.name, r.data FROM reliability r JOIN players p ON p.id = r.player_id \
                 ORDER BY r.updated_ms DESC LIMIT ?1"
            };
            let mut st = c.prepare_cached(sql).map_err(db_err)?;
            let rows = st
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, name, data) = row.map_err(db_err)?;
                out.push(PlayerReliability {
                    player: parse_id(&id)?,
                    name,
                    reliability: reliability_from(Some(&data))?.unwrap_or_default(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn reliabilities_of(
        &self,
        players: &[PlayerId],
    ) -> Result<Vec<(PlayerId, Reliability)>, StoreError> {
        let ids: Vec<String> = players.iter().map(|p| p.to_string()).collect();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT data FROM reliability WHERE player_id = ?1")
                .map_err(db_err)?;
            let mut out = Vec::new();
            for id in ids {
                let data: Option<String> = st
                    .query_row(params![id], |r| r.get(0))
                    .optional()
                    .map_err(db_err)?;
                if let Some(r) = reliability_from(data.as_deref())? {
                    out.push((parse_id(&id)?, r));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn dataset_stats(&self, since: Millis) -> Result<DatasetStats, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT created_ms FROM labels WHERE created_ms >= ?1")
                .map_err(db_err)?;
            let times = st
                .query_map(params![i64_of(since.0)], |r| r.get::<_, i64>(0))
                .map_err(db_err)?
                .map(|t| t.map(|t| Millis(u64_of(t))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            let mut retired = [0u64; emofy_game::EMOTION_COUNT];
            let mut st = c
                .prepare_cached("SELECT consensus, COUNT(*) FROM images WHERE status = 'retired' GROUP BY consensus")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            for row in rows {
                let (e, n) = row.map_err(db_err)?;
                if let Some(e) = parse_emotion(e)? {
                    retired[e.index()] = u64_of(n);
                }
            }
            Ok(DatasetStats {
                labels_per_day: super::per_day(times),
                retired_per_class: retired,
            })
        })
        .await
    }

    async fn truth_snapshot(&self, max_labels: usize) -> Result<TruthSnapshot, StoreError> {
        self.read(move |c| {
            let n = i64::try_from(max_labels).unwrap_or(i64::MAX);
            let mut st = c
                .prepare_cached(
                    "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold \
                     FROM labels ORDER BY id DESC LIMIT ?1",
                )
                .map_err(db_err)?;
            let rows = st.query_map(params![n], label_row).map_err(db_err)?;
            let mut labels = Vec::new();
            for row in rows {
                labels.push(label_record(row.map_err(db_err)?)?);
            }
            let mut st = c
                .prepare_cached(
                    "SELECT id, gold, model_guess FROM images WHERE id IN \
                     (SELECT image_id FROM (SELECT image_id FROM labels ORDER BY id DESC LIMIT ?1))",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![n], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .map_err(db_err)?;
            let (mut gold, mut model_guesses) = (Vec::new(), Vec::new());
            for row in rows {
                let (id, g, m) = row.map_err(db_err)?;
                let id: ImageId = parse_id(&id)?;
                if let Some(g) = parse_emotion(g)? {
                    gold.push((id, g));
                }
                if let Some(m) = parse_emotion(m)? {
                    model_guesses.push((id, m));
                }
            }
            let mut st = c
                .prepare_cached("SELECT player_id, data FROM reliability WHERE player_id != ?1")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![truth::MODEL_KEY], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db_err)?;
            let mut reliabilities = Vec::new();
            for row in rows {
                let (id, data) = row.map_err(db_err)?;
                if let Some(r) = reliability_from(Some(&data))? {
                    reliabilities.push((parse_id(&id)?, r));
                }
            }
            Ok(TruthSnapshot {
                labels,
                gold,
                model_guesses,
                reliabilities,
            })
        })
        .await
    }

    async fn apply_truth_pass(&self, pass: TruthPass, at: Millis) -> Result<(), StoreError> {
        self.write(move |c| {
            let at_i = i64_of(at.0);
            for (player, matrix) in &pass.matrices {
                let id = player.to_string();
                let mut r = load_reliability(c, &id)?.unwrap_or_default();
                r.matrix = matrix.clone();
                save_reliability(c, &id, &r, at_i)?;
            }
            if let Some(m) = &pass.model {
                let mut r = load_reliability(c, truth::MODEL_KEY)?.unwrap_or_default();
                r.matrix = m.clone();
                save_reliability(c, truth::MODEL_KEY, &r, at_i)?;
            }
            let updated = i64_of(now_ms().0.max(at.0));
            for (image, p) in &pass.posteriors {
                exec(
                    c,
                    "UPDATE images SET posterior = ?2, updated_ms = ?3 WHERE id = ?1 AND status = 'open'",
                    params![image.to_hex(), truth::posterior_json(p), updated],
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT moderator, action, target, detail, at_ms FROM moderation_log ORDER BY id DESC LIMIT ?1",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (m, action, target, detail, at) = row.map_err(db_err)?;
                out.push(AuditEntry {
                    moderator: parse_id(&m)?,
                    action,
                    target,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                    at: Millis(u64_of(at)),
                });
            }
            Ok(out)
        })
        .await
    }
}
