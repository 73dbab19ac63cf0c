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

mod prelude;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

mod codec;
mod images;
mod leases;
mod models;
mod players;
mod review;
mod rounds;
mod schema;
mod uploads;
mod writer;

use codec::{db_err, unavailable};
pub use rounds::{AnswerCost, AnswerCostTotals};
use writer::{Checkpoints, Done, Job, checkpointer_loop, private_files, writer_loop};

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
    /// Page cache per connection.
    pub cache_bytes: u64,
    /// How long the writer and the checkpointer wait for a lock before they
    /// give up (SQLite's `busy_timeout`, which readers use as is).
    pub busy_timeout: std::time::Duration,
    /// How often the writer and the checkpointer retry a busy lock: SQLite's
    /// own busy handler sleeps 1, 2, 5, 10… ms, so a checkpoint that holds the
    /// lock for 2 ms would stall the writer for 8; they poll instead.
    pub busy_poll: std::time::Duration,
    /// Group commits and checkpoints slower than this are logged.
    pub slow_log: std::time::Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            queue: 4096,
            max_batch: 512,
            readers: 2,
            fsync_every_commit: true,
            checkpoint_every: std::time::Duration::from_millis(200),
            wal_limit_bytes: 16 << 20,
            cache_bytes: 16 << 20,
            busy_timeout: std::time::Duration::from_secs(5),
            busy_poll: std::time::Duration::from_micros(100),
            slow_log: std::time::Duration::from_millis(50),
        }
    }
}

/// The embedded SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// The WAL's checkpoints; a write job that erased face bytes sets
    /// `erase`, and the writer truncates the WAL before it answers that job.
    checkpoints: Arc<Checkpoints>,
    /// What answers cost, summed (statements, rows read and written).
    costs: Arc<rounds::AnswerCosts>,
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
        let busy_ms = opts.busy_timeout.as_millis();
        // A negative cache_size is in KiB.
        let cache_kib = (opts.cache_bytes >> 10).max(64);
        writer
            .execute_batch(&format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
                 PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY; \
                 PRAGMA journal_size_limit = {wal_limit}; PRAGMA cache_size = -{cache_kib};"
            ))
            .map_err(db_err)?;
        schema::migrate(&writer)?;
        // From here on the writer retries busy locks itself (`Busy`), briefly.
        writer
            .execute_batch("PRAGMA busy_timeout = 0;")
            .map_err(db_err)?;
        writer.set_prepared_statement_cache_capacity(64);
        // Checkpoints run from a separate connection (PASSIVE never blocks the writer),
        // so commits never stall behind an automatic checkpoint.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0;")
            .map_err(db_err)?;
        let checkpointer = Connection::open(&path).map_err(db_err)?;
        checkpointer
            .execute_batch(&format!(
                "PRAGMA busy_timeout = 0; PRAGMA secure_delete = ON; PRAGMA journal_size_limit = {wal_limit};"
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
            r.execute_batch(&format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};"
            ))
                .map_err(db_err)?;
            readers.push(Mutex::new(r));
        }
        // Counts the writer's VM instructions (the answer-cost meter).
        let costs = Arc::new(rounds::AnswerCosts::default());
        let ticker = costs.clone();
        writer.progress_handler(
            rounds::VM_TICK as std::os::raw::c_int,
            Some(move || {
                ticker.ticks.fetch_add(1, Ordering::Relaxed);
                false
            }),
        );
        let (tx, rx) = mpsc::channel::<Job>(opts.queue.max(1));
        let max_batch = opts.max_batch.max(1);
        let busy = writer::Busy {
            timeout: opts.busy_timeout,
            poll: opts.busy_poll.max(std::time::Duration::from_micros(1)),
        };
        let checkpoints = Arc::new(Checkpoints::new(
            dir.join("emofy.db-wal"),
            wal_limit,
            busy,
            opts.slow_log,
        ));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let every = opts
            .checkpoint_every
            .max(std::time::Duration::from_millis(1));
        let page_size: u64 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(db_err)?;
        let background = checkpoints.clone();
        std::thread::Builder::new()
            .name("emofy-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpointer, every, stop_rx, background, page_size))
            .map_err(unavailable)?;
        let shared = checkpoints.clone();
        std::thread::Builder::new()
            .name("emofy-sqlite-writer".into())
            .spawn(move || {
                writer_loop(writer, rx, max_batch, &shared);
                drop(stop_tx);
            })
            .map_err(unavailable)?;
        Ok(SqliteStore {
            jobs: tx,
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            checkpoints,
            costs,
        })
    }

    /// What the answers recorded so far cost this store.
    pub fn answer_costs(&self) -> AnswerCostTotals {
        self.costs.totals()
    }

    /// Reads served so far (each a hop to a reader connection): what a use
    /// case's round-trip bound is measured by.
    pub fn reads(&self) -> u64 {
        self.next_reader.load(Ordering::Relaxed) as u64
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
