//! The writer thread (group commit), the checkpointer thread (a bounded
//! WAL), and the private data dir.

use super::codec::*;
use super::prelude::*;
use std::sync::Mutex;

pub(super) type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
pub(super) type Job = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;

/// Creates `dir` (mode 0700) or tightens an existing one, and the database
/// file (mode 0600) before SQLite does, so its WAL and shared-memory files,
/// which SQLite creates with the database file's mode, are 0600 too. The data
/// dir holds faces, password hashes and the token key.
pub(super) fn private_files(dir: &Path, db: &Path) -> Result<(), StoreError> {
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
        // Created private if it is new; an existing file is never opened
        // here: closing any descriptor of it would drop every POSIX lock
        // this process holds on it (another store open on the same file in
        // this process, e.g. a second replica in one test), and another
        // process could then think itself the last user and delete the WAL
        // from under it.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable(format!("create {}: {e}", db.display()))),
        }
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

/// How the writer and the checkpointer wait for a busy lock: they poll
/// every `poll` until `timeout`, rather than sleeping SQLite's growing
/// steps while the other side is long done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Busy {
    pub(super) timeout: std::time::Duration,
    pub(super) poll: std::time::Duration,
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Busy {
    /// Runs `f` until it is not busy, or the timeout passed.
    fn retry<T>(
        &self,
        mut f: impl FnMut() -> Result<T, rusqlite::Error>,
    ) -> Result<T, rusqlite::Error> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match f() {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(self.poll);
                }
                other => return other,
            }
        }
    }
}

/// What one checkpoint attempt did.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checkpointed {
    /// Every WAL frame reached the database (and, for RESTART/TRUNCATE, the
    /// WAL was reset: the next write starts it over).
    pub(super) complete: bool,
    /// Frames in the WAL when it ran.
    pub(super) frames: u64,
}

fn checkpoint(conn: &Connection, mode: &str) -> Result<Checkpointed, rusqlite::Error> {
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(Checkpointed {
        complete: busy == 0 && log == done,
        frames: u64::try_from(log).unwrap_or(0),
    })
}

/// The WAL's checkpoints, shared by the writer and the checkpointer thread:
/// one at a time (two at once would make the second fail busy), and the
/// bounds they keep.
pub(super) struct Checkpoints {
    lock: Mutex<()>,
    busy: Busy,
    /// Checkpoints slower than this are logged.
    slow: std::time::Duration,
    /// Set by a write job that erased face bytes: the writer truncates the
    /// WAL before it answers that job; the checkpointer retries if it could not.
    pub(super) erase: AtomicBool,
    wal: PathBuf,
    /// Past this the checkpointer truncates the WAL (`store.wal_limit_mib`).
    soft_limit: u64,
    /// Past this the writer truncates it itself, however busy the machine.
    hard_limit: u64,
}

impl Checkpoints {
    pub(super) fn new(
        wal: PathBuf,
        limit: u64,
        busy: Busy,
        slow: std::time::Duration,
    ) -> Checkpoints {
        Checkpoints {
            lock: Mutex::new(()),
            busy,
            slow,
            erase: AtomicBool::new(false),
            wal,
            soft_limit: limit,
            hard_limit: limit.saturating_mul(2).max(1 << 20),
        }
    }

    /// One checkpoint in `mode`. PASSIVE runs once; TRUNCATE is attempted
    /// without waiting inside SQLite (no busy handler): an attempt that finds
    /// the writer mid-transaction, or a reader on an older snapshot, gives
    /// its locks back at once, and the next one follows after `busy.poll`,
    /// until the WAL is cut or `busy.timeout` passed. The writer is held back
    /// only while an attempt copies the frames the passive pass left.
    fn run(&self, conn: &Connection, mode: &str) -> Result<Checkpointed, rusqlite::Error> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let deadline = started + self.busy.timeout;
        let mut attempts = 0u32;
        let done = loop {
            attempts += 1;
            let done = match checkpoint(conn, mode) {
                Err(e) if is_busy(&e) => Ok(Checkpointed {
                    complete: false,
                    frames: 0,
                }),
                other => other,
            };
            if mode == "PASSIVE"
                || !matches!(
                    done,
                    Ok(Checkpointed {
                        complete: false,
                        ..
                    })
                )
                || std::time::Instant::now() >= deadline
            {
                break done;
            }
            std::thread::sleep(self.busy.poll);
        };
        let took = started.elapsed();
        if took > self.slow {
            tracing::warn!(
                mode,
                ms = took.as_millis() as u64,
                attempts,
                wal_kib = self.wal_size() >> 10,
                "slow sqlite checkpoint"
            );
        }
        done
    }

    fn wal_size(&self) -> u64 {
        std::fs::metadata(&self.wal).map(|m| m.len()).unwrap_or(0)
    }

    /// After the writer's commit: truncate for a pending erasure, or restart
    /// the WAL when its file grew past the hard limit (the checkpointer fell
    /// behind).
    fn after_commit(&self, conn: &Connection) {
        if self.erase.load(Ordering::Acquire) {
            // Face bytes were deleted in this commit: move the zeroed pages into
            // the database file and truncate the WAL before anyone hears "done",
            // so no copy of the erased bytes is left in any file.
            match self.run(conn, "TRUNCATE") {
                Ok(c) if c.complete => self.erase.store(false, Ordering::Release),
                // Readers held old snapshots: the checkpointer retries shortly.
                Ok(_) => tracing::warn!("sqlite: erasure checkpoint incomplete; retrying"),
                Err(e) => tracing::warn!(error = %e, "sqlite: erasure checkpoint failed; retrying"),
            }
        } else if self.wal_size() > self.hard_limit
            && let Err(e) = self.run(conn, "RESTART")
        {
            tracing::warn!(error = %e, "sqlite: bounding checkpoint failed");
        }
    }
}

/// Keeps the WAL bounded from its own connection, every `every`, until the
/// writer stops:
/// * a PASSIVE checkpoint copies what it can into the database file without
///   blocking the writer or readers;
/// * once the frames in the WAL are over the limit, a RESTART checkpoint
///   copies the rest and resets the WAL, so the next write starts it over
///   (a writer that never finds the WAL fully checkpointed when it begins
///   would otherwise append to it forever). It holds the writer back only
///   for the frames the passive pass left; the file is reused, not cut,
///   and `journal_size_limit` trims it back to the limit;
/// * while an erasure is pending (a deletion whose truncation right after its
///   commit could not finish), a TRUNCATE checkpoint cuts the file to zero.
pub(super) fn checkpointer_loop(
    conn: Connection,
    every: std::time::Duration,
    stop: std::sync::mpsc::Receiver<()>,
    checkpoints: Arc<Checkpoints>,
    page_size: u64,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let passive = match checkpoints.run(&conn, "PASSIVE") {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sqlite: checkpoint failed");
                continue;
            }
        };
        if checkpoints.erase.load(Ordering::Acquire) {
            match checkpoints.run(&conn, "TRUNCATE") {
                Ok(c) if c.complete => checkpoints.erase.store(false, Ordering::Release),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sqlite: truncating checkpoint failed"),
            }
        } else if passive.frames.saturating_mul(page_size) > checkpoints.soft_limit
            && let Err(e) = checkpoints.run(&conn, "RESTART")
        {
            tracing::warn!(error = %e, "sqlite: restarting checkpoint failed");
        }
    }
    tracing::debug!("sqlite checkpointer stopped");
}

pub(super) fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    checkpoints: &Checkpoints,
) {
    let busy = checkpoints.busy;
    let slow = checkpoints.slow;
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
        // Busy only while a checkpoint holds the write lock: polled, not slept on.
        if let Err(e) = busy.retry(|| conn.execute_batch("BEGIN IMMEDIATE")) {
            // Dropping the jobs drops their reply channels: each caller gets `Unavailable`.
            tracing::error!(error = %e, jobs = batch.len(), "sqlite: cannot begin a transaction");
            batch.clear();
            continue;
        }
        let began = t0.elapsed();
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
        let ran = t0.elapsed();
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if t0.elapsed() > slow {
            tracing::warn!(
                jobs = n,
                begin_ms = began.as_millis() as u64,
                exec_ms = (ran - began).as_millis() as u64,
                total_ms = t0.elapsed().as_millis() as u64,
                "slow sqlite group commit"
            );
        }
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        } else {
            checkpoints.after_commit(&conn);
        }
        for done in dones {
            done(commit.clone());
        }
    }
    tracing::debug!("sqlite writer stopped");
}
