//! Opening the configured stores: MongoDB (`[storage.mongodb]`) or the
//! embedded SQLite store (`[storage.sqlite]`, in `data_dir`).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::{StoreError, Stores};

/// Opens the configured store: MongoDB (`storage.mongodb.uri`) or the
/// embedded store in `data_dir` (`storage.sqlite`).
pub async fn open_stores(config: &Config) -> Result<Stores, StoreError> {
    let Some(uri) = &config.storage.mongodb.uri else {
        return open_embedded(config);
    };
    let mongo = Arc::new(
        crate::store::mongo::MongoStore::connect_with(uri, mongo_options(&config.storage.mongodb))
            .await?,
    );
    tracing::info!(database = %config.storage.mongodb.database, "store: MongoDB");
    Ok(Stores {
        players: mongo.clone(),
        images: mongo.clone(),
        rounds: mongo.clone(),
        uploads: mongo.clone(),
        review: mongo.clone(),
        models: mongo.clone(),
        leases: mongo,
    })
}

/// The MongoDB store's options from `[storage.mongodb]`.
pub fn mongo_options(m: &crate::config::MongoConfig) -> crate::store::mongo::MongoOptions {
    use crate::store::mongo::{AnswerWrites, MongoOptions};
    MongoOptions {
        database: m.database.clone(),
        majority: m.majority,
        writes: if m.group_commit {
            AnswerWrites::GroupCommit {
                max_batch: m.max_batch,
            }
        } else {
            AnswerWrites::OnePerAnswer
        },
        write_queue: m.write_queue,
        connect_timeout: Duration::from_secs(m.connect_timeout_secs),
        server_selection_timeout: Duration::from_millis(m.server_selection_timeout_ms),
        answer_deadline: Duration::from_millis(m.answer_deadline_ms),
        transaction_deadline: Duration::from_millis(m.transaction_deadline_ms),
        transaction_attempts: m.transaction_attempts,
    }
}

/// The embedded store's options from `[storage.sqlite]`.
pub fn sqlite_options(c: &crate::config::SqliteConfig) -> SqliteOptions {
    SqliteOptions {
        queue: c.write_queue,
        max_batch: c.max_batch,
        readers: c.readers,
        fsync_every_commit: c.synchronous == crate::config::Synchronous::Full,
        checkpoint_every: Duration::from_millis(c.checkpoint_every_ms),
        wal_limit_bytes: c.wal_limit_mib.saturating_mul(1 << 20),
        cache_bytes: c.cache_mib.saturating_mul(1 << 20),
        busy_timeout: Duration::from_millis(c.busy_timeout_ms),
        busy_poll: Duration::from_micros(c.busy_poll_us),
        slow_log: Duration::from_millis(c.slow_log_ms),
    }
}

/// Opens the embedded store in `config.data_dir`.
pub fn open_embedded(config: &Config) -> Result<Stores, StoreError> {
    let sqlite = SqliteStore::open(&config.data_dir, sqlite_options(&config.storage.sqlite))?;
    let shared = Arc::new(sqlite);
    Ok(Stores {
        players: shared.clone(),
        images: shared.clone(),
        rounds: shared.clone(),
        uploads: shared.clone(),
        review: shared.clone(),
        models: shared.clone(),
        leases: shared,
    })
}
