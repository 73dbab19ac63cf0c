//! The model registry in use: the configured base model joins the registry
//! at start-up, the champion is what every replica serves, promotions and
//! rollbacks are planned by [`emofy_game::registry`] and applied by the
//! store, and each replica polls the champion and hot-swaps to a new one
//! through its [`InferencePool`] (requests in flight finish on the old
//! version; the new version's suggestions are computed in the background
//! and rounds use them as they arrive).

use std::sync::Arc;
use std::time::Duration;

use emofy_game::registry::{self, RegistryPlan, RegistryRefusal};
use emofy_inference::mini_xception::{BUNDLED_CONFIG, BUNDLED_WEIGHTS};
use emofy_inference::{Classifier, InferenceError, ModelFiles};

use crate::actors::coordinator::SuggestionsLoaded;
use crate::actors::inference::InferencePool;
use crate::config::Config;
use crate::service::Services;
use crate::service::model::{classify_missing, suggestions_of};
use crate::store::{ModelStore, NewModel, StoreError};

/// Why a registry action failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry's rules refused it (see the refusal).
    #[error("{0}")]
    Refused(RegistryRefusal),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("model: {0}")]
    Model(#[from] InferenceError),
    /// Neither the store nor this replica's disk holds the version's files.
    #[error("no files for model {0} in the store or the models directory")]
    NoFiles(String),
    #[error("loading model {0} timed out")]
    Timeout(String),
    #[error("background task failed: {0}")]
    Task(String),
}

/// The model the operator configured: `model.dir`, else the bundled mini-Xception.
pub fn configured_files(config: &Config) -> Result<ModelFiles, InferenceError> {
    match &config.model.dir {
        Some(dir) => ModelFiles::read(dir, config.model.max_file_mib.saturating_mul(1 << 20)),
        None => Ok(ModelFiles {
            config_json: BUNDLED_CONFIG.to_owned(),
            preprocessor_json: None,
            safetensors: BUNDLED_WEIGHTS.to_vec(),
        }),
    }
}

fn architecture_of(files: &ModelFiles) -> String {
    if files.is_vit() {
        return "vit".into();
    }
    serde_json::from_str::<serde_json::Value>(&files.config_json)
        .ok()
        .and_then(|v| v["architecture"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// A model an operator installed (the configured base, or a directory an
/// admin swapped in): registered as passed, with its files when they fit
/// `model.store_max_mib`.
pub fn installed(config: &Config, version: &str, files: ModelFiles) -> NewModel {
    let size = files.safetensors.len() as u64
        + files.config_json.len() as u64
        + files
            .preprocessor_json
            .as_ref()
            .map_or(0, |p| p.len() as u64);
    let fits = size <= config.model.store_max_mib.saturating_mul(1 << 20);
    NewModel {
        version: version.to_owned(),
        parent: None,
        architecture: architecture_of(&files),
        gate_passed: true,
        test_accuracy: None,
        card: serde_json::Value::Null,
        files: fits.then_some(files),
    }
}

/// Runs CPU-heavy model loading off the async threads, within `model.load_timeout_secs`.
async fn load_files(
    config: &Config,
    version: &str,
    files: ModelFiles,
) -> Result<Arc<dyn Classifier>, RegistryError> {
    let load = tokio::task::spawn_blocking(move || emofy_inference::load_model_files(&files));
    match tokio::time::timeout(Duration::from_secs(config.model.load_timeout_secs), load).await {
        Ok(Ok(r)) => Ok(r?),
        Ok(Err(e)) => Err(RegistryError::Task(e.to_string())),
        Err(_) => Err(RegistryError::Timeout(version.to_owned())),
    }
}

/// The files of `version` this replica can read without the configured
/// model: from the store, else `<models_dir>/<version>` on its disk.
async fn stored_files(
    models: &dyn ModelStore,
    config: &Config,
    version: &str,
) -> Result<Option<ModelFiles>, RegistryError> {
    let max = config.model.max_file_mib.saturating_mul(1 << 20);
    if let Some(files) = models.model_files(version, max).await? {
        return Ok(Some(files));
    }
    let dir = config.training.models_dir(&config.data_dir).join(version);
    if !dir.join("config.json").is_file() {
        return Ok(None);
    }
    let read = tokio::task::spawn_blocking(move || ModelFiles::read(&dir, max))
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?;
    Ok(Some(read?))
}

/// The files of `version`: from the store, else `<models_dir>/<version>` on
/// this replica's disk, else the configured base model if it is that version.
pub async fn files_of(
    models: &dyn ModelStore,
    config: &Config,
    version: &str,
) -> Result<ModelFiles, RegistryError> {
    if let Some(files) = stored_files(models, config, version).await? {
        return Ok(files);
    }
    let base = configured_files(config)?;
    let base_version = emofy_inference::load_model_files(&base)?
        .version()
        .to_owned();
    if base_version == version {
        return Ok(base);
    }
    Err(RegistryError::NoFiles(version.to_owned()))
}

/// Loads `version` for serving: its stored files, else the configured model
/// if that is the version (built once: its version is only known built).
pub async fn load_version(
    models: &dyn ModelStore,
    config: &Config,
    version: &str,
) -> Result<Arc<dyn Classifier>, RegistryError> {
    let Some(files) = stored_files(models, config, version).await? else {
        let base = load_files(config, version, configured_files(config)?).await?;
        if base.version() != version {
            return Err(RegistryError::NoFiles(version.to_owned()));
        }
        return Ok(base);
    };
    let model = load_files(config, version, files).await?;
    if model.version() != version {
        return Err(RegistryError::Model(InferenceError::Load(format!(
            "the files registered as {version} load as {}",
            model.version()
        ))));
    }
    Ok(model)
}

/// At start-up: registers the configured model, makes it the champion when
/// the registry has none (a fresh store), and loads the champion — the
/// configured model itself when it is the champion.
pub async fn start_up(
    models: &dyn ModelStore,
    config: &Config,
) -> Result<Arc<dyn Classifier>, RegistryError> {
    let files = configured_files(config)?;
    let base = load_files(config, "the configured model", files.clone()).await?;
    let version = base.version().to_owned();
    let now = crate::clock::now();
    models
        .register_model(installed(config, &version, files), now)
        .await?;
    // Two replicas starting on a fresh store both try: one adopts, the
    // other finds a champion (a conflict) and serves it.
    let entries = models.model_entries().await?;
    if let Some(plan) = registry::adopt_base(&entries, &version) {
        match models.apply_model_plan(&plan, now).await {
            Ok(()) => {
                tracing::info!(model = %version, "registry: the configured model is the champion")
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match models.champion().await? {
        Some(champion) if champion != version => {
            tracing::info!(model = %champion, configured = %version, "serving the registry's champion");
            load_version(models, config, &champion).await
        }
        _ => Ok(base),
    }
}

/// Plans and applies a promotion of `version`.
pub async fn promote(
    models: &dyn ModelStore,
    version: &str,
    force: bool,
) -> Result<RegistryPlan, RegistryError> {
    let entries = models.model_entries().await?;
    let plan = registry::promote(&entries, version, force).map_err(RegistryError::Refused)?;
    models.apply_model_plan(&plan, crate::clock::now()).await?;
    tracing::info!(from = ?plan.expected_champion, to = %plan.champion, force, "model promoted");
    Ok(plan)
}

/// Plans and applies a rollback of the champion.
pub async fn rollback(models: &dyn ModelStore) -> Result<RegistryPlan, RegistryError> {
    let entries = models.model_entries().await?;
    let plan = registry::rollback(&entries).map_err(RegistryError::Refused)?;
    models.apply_model_plan(&plan, crate::clock::now()).await?;
    tracing::info!(from = ?plan.expected_champion, to = %plan.champion, "model rolled back");
    Ok(plan)
}

/// Serves `version` on this replica if it does not already: loads it,
/// swaps the pool, then classifies the images it has not seen and hands
/// the rounds its suggestions, in the background. Returns the version
/// replaced, or `None` when `version` was serving already.
pub async fn serve(svc: &Arc<Services>, version: &str) -> Result<Option<String>, RegistryError> {
    let Some(pool) = svc.inference.clone() else {
        return Ok(None);
    };
    let _one_at_a_time = svc.model_swap.lock().await;
    if pool.version() == version {
        return Ok(None);
    }
    let model = load_version(svc.models.as_ref(), &svc.config, version).await?;
    Ok(Some(swap_in(svc, &pool, model)))
}

/// Makes `model` current in `pool` and starts its suggestions.
pub fn swap_in(svc: &Arc<Services>, pool: &InferencePool, model: Arc<dyn Classifier>) -> String {
    let version = model.version().to_owned();
    let previous = pool.swap(model);
    svc.metrics.model_swaps.inc();
    tracing::info!(from = %previous, to = %version, "model swapped");
    let svc = svc.clone();
    let pool = pool.clone();
    actix_web::rt::spawn(async move {
        match classify_missing(&pool, svc.images.as_ref()).await {
            Ok(n) => {
                tracing::info!(images = n, model = %pool.version(), "classified for the new model")
            }
            Err(e) => tracing::warn!(error = %e, "classifying for the new model failed"),
        }
        match suggestions_of(&pool.version(), svc.images.as_ref()).await {
            Ok(suggestions) => svc.coordinator.do_send(SuggestionsLoaded { suggestions }),
            Err(e) => tracing::warn!(error = %e, "loading the new model's suggestions failed"),
        }
    });
    previous
}

/// Polls the registry's champion every `every` and serves it when it
/// changes (a promotion or rollback made on any replica or by the CLI).
/// A version that fails to load is logged and tried again at the next poll.
pub async fn watch_champion(svc: Arc<Services>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let champion = match svc.models.champion().await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading the registry's champion failed");
                continue;
            }
        };
        if let Err(e) = serve(&svc, &champion).await {
            tracing::warn!(model = %champion, error = %e, "cannot serve the registry's champion");
        }
    }
}
