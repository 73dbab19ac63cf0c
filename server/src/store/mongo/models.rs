//! The model registry: `models` (one document per version), `model_files`
//! (each file in chunks of at most [`CHUNK`] bytes, far under the 16 MB
//! document limit whatever the model's size), and `registry` (one document,
//! `_id: "champion"`, the serving version: the compare-and-set every
//! promotion and rollback goes through, and what replicas poll).

use super::MongoStore;
use super::codec::*;
use super::prelude::*;
use super::tx::*;
use crate::store::registry::{ModelRecord, ModelStore, NewModel, file_parts, files_of, too_large};
use emofy_game::registry::{ModelEntry, ModelState, RegistryPlan};

/// Bytes per file chunk.
const CHUNK: usize = 4 << 20;

fn state_of(d: &Document) -> Result<ModelState, StoreError> {
    let s = get_str(d, "state")?;
    ModelState::parse(s).ok_or_else(|| corrupt(format!("model state {s:?}")))
}

fn opt_f64(d: &Document, k: &str) -> Option<f64> {
    match d.get(k) {
        Some(Bson::Double(x)) => Some(*x),
        _ => None,
    }
}

fn model_record(d: &Document) -> Result<ModelRecord, StoreError> {
    Ok(ModelRecord {
        version: get_str(d, "_id")?.to_owned(),
        parent: opt_str(d, "parent"),
        architecture: get_str(d, "architecture")?.to_owned(),
        created: Millis(get_u64(d, "created_ms")?),
        state: state_of(d)?,
        state_at: Millis(get_u64(d, "state_ms")?),
        replaced: opt_str(d, "replaced"),
        gate_passed: get_bool(d, "gate_passed"),
        test_accuracy: opt_f64(d, "test_accuracy"),
        card: serde_json::from_str(get_str(d, "card")?)
            .map_err(|e| corrupt(format!("model card: {e}")))?,
        has_files: get_bool(d, "has_files"),
    })
}

fn conflict(what: impl std::fmt::Display) -> StoreError {
    StoreError::Conflict(what.to_string())
}

#[async_trait]
impl ModelStore for MongoStore {
    async fn register_model(&self, m: NewModel, at: Millis) -> Result<bool, StoreError> {
        let card =
            serde_json::to_string(&m.card).map_err(|e| corrupt(format!("model card: {e}")))?;
        let ms = i64_of(at.0);
        let mut chunks = Vec::new();
        if let Some(files) = &m.files {
            for (name, bytes) in file_parts(files) {
                // An empty file is one empty chunk.
                let pieces: Vec<&[u8]> = if bytes.is_empty() {
                    vec![&[]]
                } else {
                    bytes.chunks(CHUNK).collect()
                };
                for (seq, piece) in pieces.into_iter().enumerate() {
                    chunks.push(doc! {
                        "_id": format!("{}/{name}/{seq}", m.version),
                        "version": &m.version,
                        "name": name,
                        "seq": seq as i64,
                        "bytes": binary(piece.to_vec()),
                    });
                }
            }
        }
        let model = doc! {
            "_id": &m.version,
            "parent": m.parent.clone().map_or(Bson::Null, Bson::String),
            "architecture": &m.architecture,
            "created_ms": ms,
            "state": "candidate",
            "state_ms": ms,
            "replaced": Bson::Null,
            "gate_passed": m.gate_passed,
            "test_accuracy": m.test_accuracy.map_or(Bson::Null, Bson::Double),
            "card": card,
            "has_files": m.files.is_some(),
        };
        transaction!(self, self.limits.transaction_deadline, |s| {
            let exists = self
                .coll("models")
                .find_one(doc! {"_id": &m.version})
                .session(&mut *s)
                .await?;
            if exists.is_some() {
                return Ok(false);
            }
            if !chunks.is_empty() {
                self.coll("model_files")
                    .insert_many(chunks.clone())
                    .session(&mut *s)
                    .await?;
            }
            self.coll("models")
                .insert_one(model.clone())
                .session(&mut *s)
                .await?;
            Ok(true)
        })
    }

    async fn models(&self, limit: usize) -> Result<Vec<ModelRecord>, StoreError> {
        let docs = all(self
            .coll("models")
            .find(doc! {})
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter().map(model_record).collect()
    }

    async fn model(&self, version: &str) -> Result<Option<ModelRecord>, StoreError> {
        self.coll("models")
            .find_one(doc! {"_id": version})
            .await?
            .as_ref()
            .map(model_record)
            .transpose()
    }

    async fn model_entries(&self) -> Result<Vec<ModelEntry>, StoreError> {
        let docs = all(self
            .coll("models")
            .find(doc! {})
            .projection(doc! {"state": 1, "gate_passed": 1, "replaced": 1}))
        .await?;
        docs.iter()
            .map(|d| {
                Ok(ModelEntry {
                    version: get_str(d, "_id")?.to_owned(),
                    state: state_of(d)?,
                    gate_passed: get_bool(d, "gate_passed"),
                    replaced: opt_str(d, "replaced"),
                })
            })
            .collect()
    }

    async fn champion(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .coll("registry")
            .find_one(doc! {"_id": "champion"})
            .await?
            .and_then(|d| opt_str(&d, "version")))
    }

    async fn model_files(
        &self,
        version: &str,
        max_bytes: u64,
    ) -> Result<Option<emofy_inference::ModelFiles>, StoreError> {
        let mut cursor = self
            .coll("model_files")
            .find(doc! {"version": version})
            .sort(doc! {"name": 1, "seq": 1})
            .await?;
        let mut parts: Vec<(String, Vec<u8>)> = Vec::new();
        let mut total = 0u64;
        while let Some(d) = cursor.try_next().await? {
            let name = get_str(&d, "name")?.to_owned();
            let bytes = bytes_of(&d, "bytes").ok_or_else(|| corrupt("model file chunk"))?;
            total = total.saturating_add(bytes.len() as u64);
            if total > max_bytes {
                return Err(too_large(version, max_bytes));
            }
            match parts.last_mut() {
                Some((n, b)) if *n == name => b.extend_from_slice(&bytes),
                _ => parts.push((name, bytes)),
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        files_of(parts).map(Some)
    }

    async fn apply_model_plan(&self, plan: &RegistryPlan, at: Millis) -> Result<(), StoreError> {
        let ms = i64_of(at.0);
        transaction!(self, self.limits.transaction_deadline, |s| {
            // The compare-and-set: two plans made against the same champion
            // both write this document, so one of them fails.
            let moved = match &plan.expected_champion {
                Some(expected) => {
                    self.coll("registry")
                        .update_one(
                            doc! {"_id": "champion", "version": expected},
                            doc! {"$set": {"version": &plan.champion, "at_ms": ms}},
                        )
                        .session(&mut *s)
                        .await?
                        .matched_count
                        == 1
                }
                None => match self
                    .coll("registry")
                    .insert_one(doc! {"_id": "champion", "version": &plan.champion, "at_ms": ms})
                    .session(&mut *s)
                    .await
                {
                    Ok(_) => true,
                    Err(e) if is_duplicate(&e) => false,
                    Err(e) => return Err(e.into()),
                },
            };
            if !moved {
                return Err(conflict("the champion changed since the plan was made"));
            }
            for change in &plan.changes {
                let mut set = doc! {"state": change.to.as_str(), "state_ms": ms};
                if let Some(replaced) = &change.replaced {
                    set.insert(
                        "replaced",
                        replaced.clone().map_or(Bson::Null, Bson::String),
                    );
                }
                let matched = self
                    .coll("models")
                    .update_one(
                        doc! {"_id": &change.version, "state": change.from.as_str()},
                        doc! {"$set": set},
                    )
                    .session(&mut *s)
                    .await?
                    .matched_count;
                if matched != 1 {
                    return Err(conflict(format!(
                        "model {} is no longer {}",
                        change.version,
                        change.from.as_str()
                    )));
                }
            }
            Ok(())
        })
    }
}
