//! `emofy migrate --from embedded --to mongodb`: copies an embedded data
//! dir's SQLite database into MongoDB, table by table, in the documents
//! [`super::mongo::MongoStore`] uses. Safe to run again: documents already
//! there (same `_id`) are left as they are. Stop the server first.

use std::path::Path;

use mongodb::bson::{Bson, Document, doc, spec::BinarySubtype};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::mongo::MongoStore;

/// Documents copied per collection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub counts: Vec<(&'static str, u64)>,
}

fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

fn bson_of(v: Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Integer(i) => Bson::Int64(i),
        Value::Real(f) => Bson::Double(f),
        Value::Text(t) => Bson::String(t),
        Value::Blob(b) => Bson::Binary(mongodb::bson::Binary {
            subtype: BinarySubtype::Generic,
            bytes: b,
        }),
    }
}

/// Rows of `sql` as documents, the columns named as selected.
fn rows(conn: &Connection, sql: &str) -> Result<Vec<Document>, StoreError> {
    let mut st = conn.prepare(sql).map_err(sql_err)?;
    let names: Vec<String> = st.column_names().iter().map(|s| (*s).to_owned()).collect();
    let mapped = st
        .query_map([], |r| {
            let mut d = Document::new();
            for (i, n) in names.iter().enumerate() {
                d.insert(n.clone(), bson_of(r.get::<_, Value>(i)?));
            }
            Ok(d)
        })
        .map_err(sql_err)?;
    mapped.collect::<Result<Vec<_>, _>>().map_err(sql_err)
}

fn json_array(d: &mut Document, key: &str) -> Result<(), StoreError> {
    if let Some(Bson::String(s)) = d.get(key) {
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
        let b = Bson::try_from(v).map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
        d.insert(key, b);
    }
    Ok(())
}

/// The consent columns, integers in SQLite and booleans in MongoDB.
const CONSENT_FLAGS: [&str; 4] = [
    "show_to_players",
    "use_for_training",
    "include_in_exports",
    "keep_original",
];

fn as_bool(d: &mut Document, key: &str) {
    if let Some(Bson::Int64(v)) = d.get(key) {
        let b = *v != 0;
        d.insert(key, b);
    }
}

/// Copies `data_dir/emofy.db` into `mongo`.
pub async fn embedded_to_mongo(
    data_dir: &Path,
    mongo: &MongoStore,
) -> Result<MigrateReport, StoreError> {
    let path = data_dir.join("emofy.db");
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "{} has no database",
            data_dir.display()
        )));
    }
    let conn =
        Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sql_err)?;
    let plan: Vec<(&'static str, &str)> = vec![
        (
            "players",
            "SELECT id AS _id, name, role, created_ms, score, score_at_ms, streak, best_streak, answers FROM players",
        ),
        (
            "accounts",
            "SELECT username AS _id, player_id, password_hash, created_ms FROM accounts",
        ),
        (
            "images",
            "SELECT id AS _id, mime, width, height, source, source_label, uploader, created_ms, updated_ms, votes, status, consensus, playable, posterior, gold, model_guess FROM images",
        ),
        (
            "image_bytes",
            "SELECT id AS _id, bytes FROM image_blobs WHERE length(bytes) > 0",
        ),
        (
            "rounds",
            "SELECT id AS _id, player_id, image_id, shown, offered_ms, deadline_ms, state, answer, closed_ms FROM rounds",
        ),
        (
            "labels",
            "SELECT round_id AS _id, image_id, player_id, emotion, shown, response_ms, created_ms, points, decoy, gold, counted FROM labels",
        ),
        (
            "predictions",
            "SELECT image_id || ':' || model AS _id, image_id, model, probabilities, created_ms FROM predictions",
        ),
        (
            "uploads",
            "SELECT image_id AS _id, player_id, created_ms, face, show_to_players, use_for_training, include_in_exports, keep_original, consent_version, consent_ms, original, deleted_ms, fingerprint FROM uploads",
        ),
        (
            "reliability",
            "SELECT player_id AS _id, data, flag, moderation, updated_ms FROM reliability",
        ),
        (
            "moderation_log",
            "SELECT 'sqlite-' || id AS _id, moderator, action, target, detail, at_ms FROM moderation_log",
        ),
        (
            "score_events",
            "SELECT e.key AS _id, e.player_id, p.name, e.delta, e.total, e.reason, e.at_ms FROM score_events e JOIN players p ON p.id = e.player_id",
        ),
    ];
    let mut report = MigrateReport::default();
    for (coll, sql) in plan {
        let mut docs = rows(&conn, sql)?;
        for d in &mut docs {
            match coll {
                "images" => {
                    json_array(d, "votes")?;
                    as_bool(d, "playable");
                }
                "predictions" => json_array(d, "probabilities")?,
                "labels" => {
                    as_bool(d, "decoy");
                    as_bool(d, "gold");
                    as_bool(d, "counted");
                }
                "consent_log" => {
                    CONSENT_FLAGS.iter().for_each(|k| as_bool(d, k));
                }
                "uploads" => {
                    json_array(d, "face")?;
                    if let Some(Bson::Array(f)) = d.get("face").cloned() {
                        let n = |i: usize| f.get(i).and_then(Bson::as_f64).unwrap_or(0.0);
                        d.insert(
                            "face",
                            doc! {"x": n(0) as i64, "y": n(1) as i64, "w": n(2) as i64, "h": n(3) as i64, "score": n(4)},
                        );
                    }
                    CONSENT_FLAGS.iter().for_each(|k| as_bool(d, k));
                }
                _ => {}
            }
        }
        let n = docs.len() as u64;
        for chunk in docs.chunks(500) {
            mongo.insert_ignoring_existing(coll, chunk.to_vec()).await?;
        }
        report.counts.push((coll, n));
    }
    Ok(report)
}
