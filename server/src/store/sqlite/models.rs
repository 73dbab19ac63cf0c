//! The model registry: versions, their states and their files.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;
use crate::store::registry::{ModelRecord, ModelStore, NewModel, file_parts, files_of, too_large};
use emofy_game::registry::{ModelEntry, ModelState, RegistryPlan};

const COLUMNS: &str = "version, parent, architecture, created_ms, state, state_ms, replaced, \
                       gate_passed, test_accuracy, card, has_files";

fn state_of(s: &str) -> Result<ModelState, StoreError> {
    ModelState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("model state {s:?}")))
}

type ModelRow = (
    String,
    Option<String>,
    String,
    i64,
    String,
    i64,
    Option<String>,
    bool,
    Option<f64>,
    String,
    bool,
);

fn model_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelRow> {
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
    ))
}

fn model_record(row: ModelRow) -> Result<ModelRecord, StoreError> {
    let (version, parent, architecture, created, state, state_at, replaced, gate, acc, card, files) =
        row;
    Ok(ModelRecord {
        version,
        parent,
        architecture,
        created: Millis(u64_of(created)),
        state: state_of(&state)?,
        state_at: Millis(u64_of(state_at)),
        replaced,
        gate_passed: gate,
        test_accuracy: acc,
        card: serde_json::from_str(&card)
            .map_err(|e| StoreError::Corrupt(format!("model card: {e}")))?,
        has_files: files,
    })
}

fn current_champion(c: &Connection) -> Result<Option<String>, StoreError> {
    qrow(
        c,
        "SELECT version FROM models WHERE state = 'champion'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)
}

#[async_trait]
impl ModelStore for SqliteStore {
    async fn register_model(&self, m: NewModel, at: Millis) -> Result<bool, StoreError> {
        let card = serde_json::to_string(&m.card)
            .map_err(|e| StoreError::Corrupt(format!("model card: {e}")))?;
        self.write(move |c| {
            let ms = i64_of(at.0);
            let inserted = exec(
                c,
                "INSERT INTO models (version, parent, architecture, created_ms, state, state_ms, \
                 gate_passed, test_accuracy, card, has_files) \
                 VALUES (?1, ?2, ?3, ?4, 'candidate', ?4, ?5, ?6, ?7, ?8) ON CONFLICT (version) DO NOTHING",
                params![
                    m.version,
                    m.parent,
                    m.architecture,
                    ms,
                    m.gate_passed,
                    m.test_accuracy,
                    card,
                    m.files.is_some()
                ],
            )
            .map_err(db_err)?;
            if inserted == 0 {
                return Ok(false);
            }
            if let Some(files) = &m.files {
                for (name, bytes) in file_parts(files) {
                    exec(
                        c,
                        "INSERT INTO model_files (version, name, bytes) VALUES (?1, ?2, ?3)",
                        params![m.version, name, bytes],
                    )
                    .map_err(db_err)?;
                }
            }
            Ok(true)
        })
        .await
    }

    async fn models(&self, limit: usize) -> Result<Vec<ModelRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM models ORDER BY created_ms DESC, version DESC LIMIT ?1"
                ))
                .map_err(db_err)?;
            let rows = st.query_map(params![limit], model_row).map_err(db_err)?;
            rows.map(|r| r.map_err(db_err).and_then(model_record))
                .collect()
        })
        .await
    }

    async fn model(&self, version: &str) -> Result<Option<ModelRecord>, StoreError> {
        let version = version.to_owned();
        self.read(move |c| {
            qrow(
                c,
                &format!("SELECT {COLUMNS} FROM models WHERE version = ?1"),
                params![version],
                model_row,
            )
            .optional()
            .map_err(db_err)?
            .map(model_record)
            .transpose()
        })
        .await
    }

    async fn model_entries(&self) -> Result<Vec<ModelEntry>, StoreError> {
        self.read(|c| {
            let mut st = c
                .prepare_cached("SELECT version, state, gate_passed, replaced FROM models")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                })
                .map_err(db_err)?;
            rows.map(|r| {
                let (version, state, gate_passed, replaced) = r.map_err(db_err)?;
                Ok(ModelEntry {
                    version,
                    state: state_of(&state)?,
                    gate_passed,
                    replaced,
                })
            })
            .collect()
        })
        .await
    }

    async fn champion(&self) -> Result<Option<String>, StoreError> {
        self.read(current_champion).await
    }

    async fn model_files(
        &self,
        version: &str,
        max_bytes: u64,
    ) -> Result<Option<emofy_inference::ModelFiles>, StoreError> {
        let version = version.to_owned();
        self.read(move |c| {
            let total: Option<i64> = qrow(
                c,
                "SELECT SUM(length(bytes)) FROM model_files WHERE version = ?1",
                params![version],
                |r| r.get(0),
            )
            .map_err(db_err)?;
            let Some(total) = total else {
                return Ok(None);
            };
            if u64_of(total) > max_bytes {
                return Err(too_large(&version, max_bytes));
            }
            let mut st = c
                .prepare_cached("SELECT name, bytes FROM model_files WHERE version = ?1")
                .map_err(db_err)?;
            let parts = st
                .query_map(params![version], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db_err)?
                .collect::<Result<Vec<(String, Vec<u8>)>, _>>()
                .map_err(db_err)?;
            files_of(parts).map(Some)
        })
        .await
    }

    async fn apply_model_plan(&self, plan: &RegistryPlan, at: Millis) -> Result<(), StoreError> {
        let plan = plan.clone();
        self.write(move |c| {
            if current_champion(c)? != plan.expected_champion {
                return Err(StoreError::Conflict(
                    "the champion changed since the plan was made".into(),
                ));
            }
            let ms = i64_of(at.0);
            // One champion at a time (the unique index holds it too): the
            // version stepping down is written first.
            for change in &plan.changes {
                let n = match &change.replaced {
                    Some(replaced) => exec(
                        c,
                        "UPDATE models SET state = ?1, state_ms = ?2, replaced = ?3 \
                         WHERE version = ?4 AND state = ?5",
                        params![
                            change.to.as_str(),
                            ms,
                            replaced,
                            change.version,
                            change.from.as_str()
                        ],
                    ),
                    None => exec(
                        c,
                        "UPDATE models SET state = ?1, state_ms = ?2 WHERE version = ?3 AND state = ?4",
                        params![change.to.as_str(), ms, change.version, change.from.as_str()],
                    ),
                }
                .map_err(db_err)?;
                if n != 1 {
                    return Err(StoreError::Conflict(format!(
                        "model {} is no longer {}",
                        change.version,
                        change.from.as_str()
                    )));
                }
            }
            Ok(())
        })
        .await
    }
}
