//! The schema of `emofy.db` and its migrations.

use super::codec::*;
use super::prelude::*;

pub(super) const SCHEMA_VERSION: i64 = 11;

pub(super) const SCHEMA: &str = r#"
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
    created_ms INTEGER NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    last_failed_ms INTEGER NOT NULL DEFAULT 0
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
    counted INTEGER NOT NULL DEFAULT 1,
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
CREATE INDEX IF NOT EXISTS reliability_banned ON reliability (updated_ms) WHERE moderation = 'banned';
CREATE TABLE IF NOT EXISTS moderation_log (
    id INTEGER PRIMARY KEY,
    moderator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    version TEXT PRIMARY KEY,
    parent TEXT,
    architecture TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    state_ms INTEGER NOT NULL,
    replaced TEXT,
    gate_passed INTEGER NOT NULL,
    test_accuracy REAL,
    card TEXT NOT NULL,
    has_files INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS models_one_champion ON models (state) WHERE state = 'champion';
CREATE INDEX IF NOT EXISTS models_created ON models (created_ms DESC, version DESC);
CREATE TABLE IF NOT EXISTS model_files (
    version TEXT NOT NULL REFERENCES models(version),
    name TEXT NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (version, name)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
"#;

pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
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
    if version > 0 && version < 8 && !has_column(conn, "labels", "counted")? {
        // v8: each label says whether it counts (its player is neither banned nor
        // flagged and uncleared), so an answer reads counted labels from an
        // index and never walks the others.
        conn.execute_batch(
            "ALTER TABLE labels ADD COLUMN counted INTEGER NOT NULL DEFAULT 1;
             UPDATE labels SET counted = 0 WHERE player_id IN (
               SELECT player_id FROM reliability
               WHERE moderation = 'banned' OR (moderation != 'cleared' AND flag IS NOT NULL));",
        )
        .map_err(db_err)?;
    }
    if version > 0 && version < 11 && !has_column(conn, "accounts", "failed_logins")? {
        // v11: failed sign-ins per account (the soft lockout).
        conn.execute_batch(
            "ALTER TABLE accounts ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE accounts ADD COLUMN last_failed_ms INTEGER NOT NULL DEFAULT 0;",
        )
        .map_err(db_err)?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS uploads_fingerprint ON uploads (player_id, fingerprint);
         CREATE INDEX IF NOT EXISTS labels_counted ON labels (image_id, created_ms, id) WHERE counted = 1;",
    )
    .map_err(db_err)?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
        .map_err(db_err)?;
    Ok(())
}

pub(super) fn has_column(conn: &Connection, table: &str, column: &str) -> Result<bool, StoreError> {
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
