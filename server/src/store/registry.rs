//! The model registry as stored: every model version, its state, the
//! numbers behind it, and its files — shared by every replica through the
//! store, so that one promotion serves everywhere.
//!
//! What a promotion or rollback changes is decided by
//! [`emofy_game::registry`]; the stores only apply a [`RegistryPlan`], all
//! or nothing, and refuse it (`Conflict`) when the champion moved since the
//! plan was made.

use async_trait::async_trait;
use emofy_game::Millis;
use emofy_game::registry::{ModelEntry, ModelState, RegistryPlan};
use emofy_inference::ModelFiles;
use serde::Serialize;

use crate::store::StoreError;

/// A model version as registered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelRecord {
    /// The version (for trained models: `mini-xception-` and the start of
    /// the weights' SHA-256).
    pub version: String,
    /// The version it was trained from (`None`: a base model an operator installed).
    pub parent: Option<String>,
    pub architecture: String,
    pub created: Millis,
    pub state: ModelState,
    /// When the state last changed.
    pub state_at: Millis,
    /// For a champion (or a version that was one): the champion it replaced.
    pub replaced: Option<String>,
    /// The promotion gate passed it (an installed base model counts as passed).
    pub gate_passed: bool,
    /// Accuracy on the frozen test split when it was judged, if it was.
    pub test_accuracy: Option<f64>,
    /// What its training run wrote as `training.json`: the data snapshot,
    /// hyperparameters, metrics per split and the gate's decision (`null`
    /// for a base model).
    pub card: serde_json::Value,
    /// Its files are in the store (replicas that share no disk load them from there).
    pub has_files: bool,
}

impl ModelRecord {
    /// What the registry's rules need of it.
    pub fn entry(&self) -> ModelEntry {
        ModelEntry {
            version: self.version.clone(),
            state: self.state,
            gate_passed: self.gate_passed,
            replaced: self.replaced.clone(),
        }
    }
}

/// A version to register.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub version: String,
    pub parent: Option<String>,
    pub architecture: String,
    pub gate_passed: bool,
    pub test_accuracy: Option<f64>,
    pub card: serde_json::Value,
    /// The files, to store with it (`None`: replicas load it from their own
    /// configuration, as for a large base model).
    pub files: Option<ModelFiles>,
}

/// The registry. Every version starts as a candidate.
#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Registers a version (state `candidate`) with its files, atomically.
    /// A version registered already is left as it is: returns `false`.
    async fn register_model(&self, model: NewModel, at: Millis) -> Result<bool, StoreError>;
    /// The registered versions, newest first, at most `limit`.
    async fn models(&self, limit: usize) -> Result<Vec<ModelRecord>, StoreError>;
    async fn model(&self, version: &str) -> Result<Option<ModelRecord>, StoreError>;
    /// What the registry's rules read: every version's state (small rows).
    async fn model_entries(&self) -> Result<Vec<ModelEntry>, StoreError>;
    /// The serving version: the cheap read replicas poll.
    async fn champion(&self) -> Result<Option<String>, StoreError>;
    /// A version's files, if stored; `Corrupt` past `max_bytes` in all
    /// (nothing larger is held in memory).
    async fn model_files(
        &self,
        version: &str,
        max_bytes: u64,
    ) -> Result<Option<ModelFiles>, StoreError>;
    /// Applies a promotion or rollback, all or nothing: `Conflict` when the
    /// champion is no longer `plan.expected_champion` or a version is no
    /// longer in the state the plan read.
    async fn apply_model_plan(&self, plan: &RegistryPlan, at: Millis) -> Result<(), StoreError>;
}

/// The files of a model, as stored: one row (or chunk series) per file name.
pub(crate) fn file_parts(files: &ModelFiles) -> Vec<(&'static str, &[u8])> {
    let mut parts: Vec<(&'static str, &[u8])> = vec![
        ("config.json", files.config_json.as_bytes()),
        ("model.safetensors", &files.safetensors),
    ];
    if let Some(p) = &files.preprocessor_json {
        parts.push(("preprocessor_config.json", p.as_bytes()));
    }
    parts
}

/// Reassembles stored files (name → bytes).
pub(crate) fn files_of(
    parts: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<ModelFiles, StoreError> {
    let mut config_json = None;
    let mut preprocessor_json = None;
    let mut safetensors = None;
    let text = |b: Vec<u8>| {
        String::from_utf8(b)
            .map_err(|_| StoreError::Corrupt("a model's JSON file is not UTF-8".into()))
    };
    for (name, bytes) in parts {
        match name.as_str() {
            "config.json" => config_json = Some(text(bytes)?),
            "preprocessor_config.json" => preprocessor_json = Some(text(bytes)?),
            "model.safetensors" => safetensors = Some(bytes),
            other => return Err(StoreError::Corrupt(format!("unknown model file {other}"))),
        }
    }
    match (config_json, safetensors) {
        (Some(config_json), Some(safetensors)) => Ok(ModelFiles {
            config_json,
            preprocessor_json,
            safetensors,
        }),
        _ => Err(StoreError::Corrupt("a stored model lacks a file".into())),
    }
}

/// The error for a model larger than a read may hold.
pub(crate) fn too_large(version: &str, max_bytes: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "model {version}'s files exceed {} MiB",
        max_bytes >> 20
    ))
}
