//! Training runs as a use case. `emofy train` and the background trainer
//! both hold the store's `training` lease while they run (one run at a
//! time across every replica and process), train from the champion on the
//! consented crowd labels ([`crate::training`]), register the candidate,
//! and promote it when the gate passed it and `training.auto_promote` is
//! on; every replica then swaps to it at its next registry poll.
//!
//! The background trainer ([`background`]) checks the trigger
//! ([`emofy_game::retrain::should_train`]) every
//! `training.background.check_every_ms`, and runs on a budget: its own
//! pool of `training.background.threads` worker threads at nice
//! `training.background.nice`, so the play path keeps the other cores and
//! wins the ones it shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use emofy_game::Millis;
use emofy_game::retrain::{TrainerDecision, TrainerFacts, should_train};
use emofy_inference::train::{EpochReport, Example};

use crate::config::Config;
use crate::service::Services;
use crate::service::registry::{self, RegistryError};
use crate::store::Stores;
use crate::store::{ImageStore, LeaseStore, ModelStore, StoreError, TRAINING_LEASE, UploadStore};
use crate::training::data::{self, TrainingData, TrainingDataError};
use crate::training::{BY_BACKGROUND, Champion, RunError, RunOutcome, RunRequest};

/// The stores a run reads and writes.
#[derive(Clone)]
pub struct TrainingStores {
    pub images: Arc<dyn ImageStore>,
    pub uploads: Arc<dyn UploadStore>,
    pub models: Arc<dyn ModelStore>,
    pub leases: Arc<dyn LeaseStore>,
}

impl TrainingStores {
    pub fn of_stores(s: &Stores) -> TrainingStores {
        TrainingStores {
            images: s.images.clone(),
            uploads: s.uploads.clone(),
            models: s.models.clone(),
            leases: s.leases.clone(),
        }
    }

    pub fn of_services(s: &Services) -> TrainingStores {
        TrainingStores {
            images: s.images.clone(),
            uploads: s.uploads.clone(),
            models: s.models.clone(),
            leases: s.leases.clone(),
        }
    }
}

/// Why a run did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("another training run holds the lease ({holder}, until {} ms)", until.0)]
    Busy { holder: String, until: Millis },
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("training data: {0}")]
    Data(#[from] TrainingDataError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("model registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("the training task failed: {0}")]
    Task(String),
}

/// A name for this process as a lease holder: the host (a pod's name on
/// Kubernetes), the process id and a random part.
pub fn holder_id(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "emofy".into());
    format!(
        "{host}/{role}/{}/{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The `training` lease, held: renewed every third of its length until
/// released (or dropped, when it expires on its own).
pub struct LeaseHold {
    leases: Arc<dyn LeaseStore>,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl LeaseHold {
    /// Takes the lease for `holder`, or says who holds it.
    pub async fn take(
        leases: Arc<dyn LeaseStore>,
        holder: &str,
        lease_ms: u64,
    ) -> Result<LeaseHold, TrainingError> {
        let now = crate::clock::now();
        if !leases
            .acquire_lease(TRAINING_LEASE, holder, now, now.plus(lease_ms))
            .await?
        {
            let current = leases.lease(TRAINING_LEASE).await?;
            return Err(TrainingError::Busy {
                holder: current.as_ref().map_or("?".into(), |l| l.holder.clone()),
                until: current.map_or(now, |l| l.expires),
            });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn({
            let (leases, holder, lost) = (leases.clone(), holder.to_owned(), lost.clone());
            async move {
                let every = Duration::from_millis((lease_ms / 3).max(1));
                loop {
                    tokio::time::sleep(every).await;
                    let now = crate::clock::now();
                    match leases
                        .acquire_lease(TRAINING_LEASE, &holder, now, now.plus(lease_ms))
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            // Someone took it after it expired: the registry's
                            // compare-and-set still keeps the champion right.
                            tracing::warn!(holder, "training lease lost to another holder");
                            lost.store(true, Ordering::Relaxed);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "training lease: renewal failed"),
                    }
                }
            }
        });
        Ok(LeaseHold {
            leases,
            holder: holder.to_owned(),
            renewer,
            lost,
        })
    }

    /// Whether another holder took the lease while this one ran.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self
            .leases
            .release_lease(TRAINING_LEASE, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "training lease: release failed (it expires on its own)");
        }
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Where a run's CPU work goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// The process's shared pool (every core): `emofy train`.
    Shared,
    /// A pool of its own, `threads` threads at nice `nice`: the background trainer.
    Budget { threads: usize, nice: i32 },
}

/// The name of the background trainer's worker threads.
pub const WORKER_THREAD_PREFIX: &str = "emofy-train";

/// What to run.
pub struct Job {
    pub trained_by: &'static str,
    pub from_scratch: bool,
    pub reference: Option<Vec<Example>>,
    pub models_dir: PathBuf,
    pub workers: Workers,
}

/// What a run reports as it goes.
pub trait Progress: Send + 'static {
    /// `images` more images were read.
    fn read(&mut self, _images: u64) {}
    /// The data is read; training starts from `champion`.
    fn loaded(&mut self, _data: &TrainingData, _champion: &str) {}
    fn epoch(&mut self, _report: &EpochReport) {}
}

/// Progress as log lines (the background trainer).
pub struct LogProgress;

impl Progress for LogProgress {
    fn loaded(&mut self, data: &TrainingData, champion: &str) {
        tracing::info!(
            train = data.train.len(),
            val = data.val.len(),
            test = data.test.len(),
            champion,
            "training: data read"
        );
    }

    fn epoch(&mut self, r: &EpochReport) {
        tracing::info!(
            epoch = r.epoch,
            loss = r.loss,
            images_per_second = r.images_per_second,
            val_accuracy = r.val.as_ref().map(|v| v.accuracy),
            "training: epoch"
        );
    }
}

/// A finished run.
pub struct Trained {
    pub outcome: RunOutcome,
    /// It serves now (on every replica at their next poll).
    pub promoted: bool,
    /// Why a promotable candidate was not promoted (the registry refused).
    pub not_promoted: Option<String>,
}

fn pool_of(workers: Workers) -> Result<Option<rayon::ThreadPool>, TrainingError> {
    let Workers::Budget { threads, nice } = workers else {
        return Ok(None);
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("{WORKER_THREAD_PREFIX}-{i}"))
        .start_handler(move |_| {
            // Linux: the nice value is per thread; `None` is this thread.
            if let Err(e) = rustix::process::setpriority_process(None, nice) {
                tracing::warn!(error = %e, "training: cannot lower the worker's priority");
            }
        })
        .build()
        .map(Some)
        .map_err(|e| TrainingError::Task(e.to_string()))
}

/// Trains, registers and (when the gate passed and `training.auto_promote`
/// is on) promotes a candidate. The caller holds the training lease.
pub async fn train(
    stores: &TrainingStores,
    config: &Config,
    job: Job,
    mut progress: impl Progress,
) -> Result<Trained, TrainingError> {
    let champion = Champion::serving(stores.models.as_ref(), config).await?;
    let training_data = data::load(
        stores.images.as_ref(),
        stores.uploads.as_ref(),
        &config.training.data,
        |n| progress.read(n),
    )
    .await?;
    progress.loaded(&training_data, &champion.version);
    let (fit, gate) = (config.training.fit, config.training.gate);
    let pool = pool_of(job.workers)?;
    let Job {
        trained_by,
        from_scratch,
        reference,
        models_dir,
        ..
    } = job;
    // Training is CPU work: off the async runtime's threads.
    let outcome = tokio::task::spawn_blocking(move || {
        let mut run = || {
            crate::training::run(
                RunRequest {
                    data: &training_data,
                    champion: &champion,
                    fit,
                    gate,
                    reference: reference.as_deref(),
                    from_scratch,
                    trained_by,
                },
                &models_dir,
                |r: &EpochReport| progress.epoch(r),
            )
        };
        match &pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    })
    .await
    .map_err(|e| TrainingError::Task(e.to_string()))??;
    // The registry keeps every candidate; one the gate passed serves at
    // once (every replica follows at its next poll) unless the operator
    // turned that off.
    stores
        .models
        .register_model(outcome.registration(), crate::clock::now())
        .await?;
    let (mut promoted, mut not_promoted) = (false, None);
    if outcome.card.gate.promote && config.training.auto_promote {
        match registry::promote(stores.models.as_ref(), &outcome.card.version, false).await {
            Ok(_) => promoted = true,
            Err(e) => not_promoted = Some(e.to_string()),
        }
    }
    Ok(Trained {
        outcome,
        promoted,
        not_promoted,
    })
}

/// The newest trained candidate: the images it learned from (0: none
/// trained yet) and when it was registered (any replica's last run).
async fn newest_trained(models: &dyn ModelStore) -> Result<(u32, Option<Millis>), StoreError> {
    let newest = models.models(50).await?;
    let Some(m) = newest.iter().find(|m| m.card["data"]["counts"].is_object()) else {
        return Ok((0, None));
    };
    let images = m.card["data"]["counts"].as_object().map_or(0, |splits| {
        splits
            .values()
            .filter_map(|per_class| per_class.as_object())
            .flat_map(|per_class| per_class.values())
            .filter_map(|n| n.as_u64())
            .sum::<u64>()
            .try_into()
            .unwrap_or(u32::MAX)
    });
    Ok((images, Some(m.created)))
}

/// What the trigger reads, from the store.
pub async fn trainer_facts(
    stores: &TrainingStores,
    config: &Config,
    last_started: Option<Millis>,
) -> Result<TrainerFacts, StoreError> {
    let (trainable_at_last, newest) = newest_trained(stores.models.as_ref()).await?;
    Ok(TrainerFacts {
        trainable_now: data::count_trainable(
            stores.images.as_ref(),
            stores.uploads.as_ref(),
            &config.training.data,
        )
        .await?,
        trainable_at_last,
        // The interval holds across replicas: a run another one finished counts.
        last_started: last_started.max(newest),
        now: crate::clock::now(),
    })
}

/// What one check of the background trainer did.
#[derive(Debug)]
pub enum Checked {
    /// The trigger said wait.
    Waited(emofy_game::retrain::Wait),
    /// Another holder is training.
    Busy,
    /// A run finished: the candidate's version, and whether it serves now.
    Trained { version: String, promoted: bool },
}

/// One check of the trigger, and the run it starts.
pub async fn check_once(
    svc: &Services,
    holder: &str,
    last_started: &mut Option<Millis>,
) -> Result<Checked, TrainingError> {
    let config = svc.config.as_ref();
    let stores = TrainingStores::of_services(svc);
    let rules = config.training.background.rules();
    let facts = trainer_facts(&stores, config, *last_started).await?;
    svc.metrics.training_new_labels.set(i64::from(
        facts.trainable_now.saturating_sub(facts.trainable_at_last),
    ));
    if let TrainerDecision::Wait(w) = should_train(&facts, &rules) {
        return Ok(Checked::Waited(w));
    }
    let hold = match LeaseHold::take(stores.leases.clone(), holder, config.training.lease_ms).await
    {
        Ok(hold) => hold,
        Err(TrainingError::Busy { .. }) => return Ok(Checked::Busy),
        Err(e) => return Err(e),
    };
    // Under the lease, ask again: another replica may have just finished a
    // run on these labels (its candidate is now the newest).
    let facts = trainer_facts(&stores, config, *last_started).await?;
    let new = match should_train(&facts, &rules) {
        TrainerDecision::Wait(w) => {
            hold.release().await;
            return Ok(Checked::Waited(w));
        }
        TrainerDecision::Train { new } => new,
    };
    *last_started = Some(facts.now);
    tracing::info!(
        new_labels = new,
        holder,
        "training: the background trainer starts a run"
    );
    svc.metrics.training_running.set(1);
    let b = &config.training.background;
    let result = train(
        &stores,
        config,
        Job {
            trained_by: BY_BACKGROUND,
            from_scratch: false,
            reference: None,
            models_dir: config.training.models_dir(&config.data_dir),
            workers: Workers::Budget {
                threads: b.threads,
                nice: b.nice,
            },
        },
        LogProgress,
    )
    .await;
    if hold.lost() {
        tracing::warn!("training: the lease expired during the run (raise training.lease_ms)");
    }
    hold.release().await;
    svc.metrics.training_running.set(0);
    match result {
        Ok(t) => {
            let g = &t.outcome.card.gate;
            svc.metrics
                .training_run(if t.promoted { "promoted" } else { "candidate" });
            tracing::info!(
                version = %t.outcome.card.version,
                promoted = t.promoted,
                gate_passed = g.promote,
                refusals = ?g.refusals,
                not_promoted = ?t.not_promoted,
                test_accuracy = t.outcome.card.candidate.test.accuracy,
                champion_test_accuracy = t.outcome.card.champion.test.accuracy,
                "training: candidate registered"
            );
            Ok(Checked::Trained {
                version: t.outcome.card.version,
                promoted: t.promoted,
            })
        }
        Err(e) => {
            svc.metrics.training_run("failed");
            Err(e)
        }
    }
}

/// The background trainer: checks the trigger every
/// `training.background.check_every_ms` until the process ends.
pub async fn background(svc: Arc<Services>) {
    let holder = holder_id("trainer");
    let every = Duration::from_millis(svc.config.training.background.check_every_ms);
    let mut last_started = None;
    loop {
        tokio::time::sleep(every).await;
        match check_once(&svc, &holder, &mut last_started).await {
            Ok(Checked::Waited(w)) => tracing::debug!(?w, "training: waiting"),
            Ok(Checked::Busy) => tracing::debug!("training: another replica is training"),
            Ok(Checked::Trained { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "training: the background run failed"),
        }
    }
}
