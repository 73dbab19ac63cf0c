//! The writer thread (group commit), the checkpointer thread (a bounded
//! WAL), and the private data dir.

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

/// The WAL's checkpoints, shared by the writer and the checkpointer thread:
/// one at a time (two at once would make the second fail busy), and the
/// bounds they keep.
pub(super) struct Checkpoints {
    lock: Mutex<()>,
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
    pub(super) fn new(wal: PathBuf, limit: u64) -> Checkpoints {
        Checkpoints {
            lock: Mutex::new(()),
            erase: AtomicBool::new(false),
            wal,
            soft_limit: limit,
            hard_limit: limit.saturating_mul(2).max(1 << 20),
        }
    }

    fn run(&self, conn: &Connection, mode: &str) -> Result<bool, rusqlite::Error> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let done = checkpoint(conn, mode);
        let took = started.elapsed();
        if took > std::time::Duration::from_millis(20) {
            tracing::warn!(
                mode,
                ms = took.as_millis() as u64,
                wal_kib = self.wal_size() >> 10,
                "slow sqlite checkpoint"
            );
        }
        done
    }

    fn wal_size(&self) -> u64 {
        std::fs::metadata(&self.wal).map(|m| m.len()).unwrap_or(0)
    }

    /// After the writer's commit: truncate for a pending erasure, or when the
    /// WAL is past its hard limit.
    fn after_commit(&self, conn: &Connection) {
        if self.erase.load(Ordering::Acquire) {
            // Face bytes were deleted in this commit: move the zeroed pages into
            // the database file and truncate the WAL before anyone hears "done",
            // so no copy of the erased bytes is left in any file.
            match self.run(conn, "TRUNCATE") {
                Ok(true) => self.erase.store(false, Ordering::Release),
                // Readers held old snapshots: the checkpointer retries shortly.
                Ok(false) => tracing::warn!("sqlite: erasure checkpoint incomplete; retrying"),
                Err(e) => tracing::warn!(error = %e, "sqlite: erasure checkpoint failed; retrying"),
            }
        } else if self.wal_size() > self.hard_limit
            && let Err(e) = self.run(conn, "TRUNCATE")
        {
            tracing::warn!(error = %e, "sqlite: bounding checkpoint failed");
        }
    }
}

/// Keeps the WAL bounded from its own connection, every `every`, until the
/// writer stops:
/// * a PASSIVE checkpoint copies what it can into the database file without
///   blocking the writer or readers;
/// * once the WAL file is over the limit, or an erasure is pending (a deletion
///   whose truncation right after its commit could not finish), a TRUNCATE
///   checkpoint copies the rest and cuts the file to zero. It holds the writer
///   back only for the frames the passive pass left, and it is needed because
///   a writer that never finds the WAL fully checkpointed when it begins would
///   otherwise append to it forever.
pub(super) fn checkpointer_loop(
    conn: Connection,
    every: std::time::Duration,
    stop: std::sync::mpsc::Receiver<()>,
    checkpoints: Arc<Checkpoints>,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        if let Err(e) = checkpoints.run(&conn, "PASSIVE") {
            tracing::warn!(error = %e, "sqlite: checkpoint failed");
            continue;
        }
        let erasing = checkpoints.erase.load(Ordering::Acquire);
        if !(erasing || checkpoints.wal_size() > checkpoints.soft_limit) {
            continue;
        }
        match checkpoints.run(&conn, "TRUNCATE") {
            Ok(true) if erasing => checkpoints.erase.store(false, Ordering::Release),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sqlite: truncating checkpoint failed"),
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
        } else {
            checkpoints.after_commit(&conn);
        }
        for done in dones {
            done(commit.clone());
        }
    }
    tracing::debug!("sqlite writer stopped");
}
