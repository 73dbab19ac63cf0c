//! `emofy train` and `emofy model evaluate`: retrain the model on the
//! crowd's labels, and score any model on any labelled faces.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use emofy_game::Emotion;
use emofy_game::retrain::{TrainerDecision, should_train};
use emofy_game::training::Evaluation;
use emofy_inference::train::{EpochReport, evaluate};
use emofy_server::service::registry;
use emofy_server::service::trainer::{
    self, Job, LeaseHold, Progress, TrainingStores, Workers, holder_id,
};
use emofy_server::training::{BY_COMMAND, data};
use emofy_server::{Config, app};
use indicatif::{ProgressBar, ProgressStyle};

/// What `emofy train` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainRequest {
    /// Epochs (default: `training.fit.epochs`).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Start from fresh weights instead of the serving model's.
    #[arg(long)]
    pub from_scratch: bool,
    /// Labelled faces the operator trusts (an `<emotion>/<file>` folder or a
    /// FER2013 CSV): the candidate is refused if it is worse on them.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Where the candidate's directory goes (default: `training.models_dir`,
    /// else `<data_dir>/models`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Train only when the background trainer's trigger says so
    /// (`training.background.every_new_labels` new confident labels since
    /// the newest candidate, `min_interval_ms` since it); otherwise print
    /// why not and exit 0 (for a scheduled job).
    #[arg(long)]
    pub when_due: bool,
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// `emofy train`'s progress: a bar while reading, a bar per epoch.
struct Bars {
    reading: ProgressBar,
    epochs: ProgressBar,
    from_scratch: bool,
}

impl Progress for Bars {
    fn read(&mut self, images: u64) {
        self.reading.inc(images);
    }

    fn loaded(&mut self, data: &data::TrainingData, champion: &str) {
        self.reading.finish_and_clear();
        eprintln!(
            "training on {} faces (val {}, test {}) from {champion}{}",
            data.train.len(),
            data.val.len(),
            data.test.len(),
            if self.from_scratch {
                " (from scratch)"
            } else {
                ""
            }
        );
    }

    fn epoch(&mut self, r: &EpochReport) {
        self.epochs.set_message(format!(
            "loss {:.4}, {:.0} img/s, val {}",
            r.loss,
            r.images_per_second,
            r.val.as_ref().map_or("—".into(), |v| pct(v.accuracy))
        ));
        self.epochs.inc(1);
    }
}

pub async fn train(config: Config, request: TrainRequest) -> anyhow::Result<()> {
    let mut config = config;
    if let Some(e) = request.epochs {
        // The flag is one more layer of the configuration: the same bounds hold.
        config.training.fit.epochs = e;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("--epochs: {e}"))?;
    }
    let stores = app::open_stores(&config).await?;
    let stores = TrainingStores::of_stores(&stores);
    // One run at a time across every replica and process on this store.
    let hold = LeaseHold::take(
        stores.leases.clone(),
        &holder_id("emofy-train"),
        config.training.lease_ms,
    )
    .await?;
    let result = train_holding(&config, &request, &stores).await;
    hold.release().await;
    result
}

/// The run, once the lease is held.
async fn train_holding(
    config: &Config,
    request: &TrainRequest,
    stores: &TrainingStores,
) -> anyhow::Result<()> {
    // A fresh store's registry takes the configured model as its champion;
    // training starts from (and is judged against) the champion.
    registry::start_up(stores.models.as_ref(), config)
        .await
        .map_err(|e| anyhow::anyhow!("model registry: {e}"))?;
    if request.when_due {
        let facts = trainer::trainer_facts(stores, config, None).await?;
        if let TrainerDecision::Wait(wait) =
            should_train(&facts, &config.training.background.rules())
        {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({"trained": false, "wait": wait}))?
            );
            return Ok(());
        }
    }
    let reference = match &request.reference {
        Some(path) => {
            let (examples, skipped) =
                data::read_labelled(path, config.training.max_labelled_faces)?;
            if examples.is_empty() {
                bail!("{}: no readable labelled faces", path.display());
            }
            eprintln!(
                "reference set: {} faces ({skipped} skipped)",
                examples.len()
            );
            Some(examples)
        }
        None => None,
    };
    let models_dir = request
        .out
        .clone()
        .unwrap_or_else(|| config.training.models_dir(&config.data_dir));
    let bars = Bars {
        reading: bar(
            stores.images.image_count().await?,
            "{spinner} reading [{elapsed_precise}] {wide_bar} {pos}/{len} images",
        ),
        epochs: bar(
            config.training.fit.epochs as u64,
            "{spinner} training [{elapsed_precise}] {wide_bar} epoch {pos}/{len} {msg}",
        ),
        from_scratch: request.from_scratch,
    };
    let epochs = bars.epochs.clone();
    let trained = trainer::train(
        stores,
        config,
        Job {
            trained_by: BY_COMMAND,
            from_scratch: request.from_scratch,
            reference,
            models_dir,
            workers: Workers::Shared,
        },
        bars,
    )
    .await?;
    epochs.finish_and_clear();
    if let Some(why) = &trained.not_promoted {
        eprintln!("not promoted: {why}");
    }
    let (outcome, promoted) = (&trained.outcome, trained.promoted);
    let card = &outcome.card;
    let g = &card.gate;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "trained": true,
            "version": card.version,
            "parent": card.parent,
            "dir": outcome.dir,
            "promoted": promoted,
            "seconds": card.seconds,
            "test": {
                "images": card.candidate.test.images,
                "candidate_accuracy": card.candidate.test.accuracy,
                "champion_accuracy": card.champion.test.accuracy,
                "candidate_macro_f1": card.candidate.test.macro_f1,
                "champion_macro_f1": card.champion.test.macro_f1,
            },
            "gate": {
                "promote": g.promote,
                "p_value": g.p_value,
                "candidate_only": g.candidate_only,
                "champion_only": g.champion_only,
                "refusals": g.refusals,
                "reference": g.reference.as_ref().map(|(a, b)| serde_json::json!({
                    "champion_accuracy": a.accuracy, "candidate_accuracy": b.accuracy,
                })),
            },
        }))?
    );
    Ok(())
}

pub async fn evaluate_model(
    config: Config,
    model: Option<String>,
    dataset: PathBuf,
    json: bool,
) -> anyhow::Result<()> {
    // `--model`: a model directory, or a registry version (from the store,
    // else the models directory); unset: the registry's champion.
    let classifier = match model.as_deref().map(Path::new) {
        Some(dir) if dir.is_dir() => emofy_inference::load_model_dir(dir)
            .with_context(|| format!("loading the model {}", dir.display()))?,
        _ => {
            let stores = app::open_stores(&config).await?;
            let version = match model {
                Some(v) => v,
                None => {
                    registry::start_up(stores.models.as_ref(), &config)
                        .await
                        .map_err(|e| anyhow::anyhow!("model registry: {e}"))?;
                    stores
                        .models
                        .champion()
                        .await?
                        .context("the registry has no champion")?
                }
            };
            registry::load_version(stores.models.as_ref(), &config, &version)
                .await
                .map_err(|e| anyhow::anyhow!("loading the model {version}: {e}"))?
        }
    };
    let limit = config.training.max_labelled_faces;
    let (examples, skipped) = data::read_labelled(&dataset, limit)?;
    if examples.is_empty() {
        bail!("{}: no readable labelled faces", dataset.display());
    }
    let e = evaluate(classifier.as_ref(), &examples)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "model": classifier.version(),
                "dataset": dataset,
                "skipped": skipped,
                "evaluation": e,
            }))?
        );
    } else {
        print_evaluation(classifier.version(), &e, skipped);
    }
    Ok(())
}

fn print_evaluation(model: &str, e: &Evaluation, skipped: usize) {
    println!("model {model}: {} faces ({skipped} skipped)", e.images);
    println!("accuracy {}, macro-F1 {}", pct(e.accuracy), pct(e.macro_f1));
    println!("recall per class:");
    for c in Emotion::ALL {
        println!(
            "  {:<9} {}",
            c.as_str(),
            e.recall[c.index()].map_or("—".into(), pct)
        );
    }
    println!("confusion (rows: label, columns: predicted):");
    let names: Vec<String> = Emotion::ALL
        .iter()
        .map(|c| format!("{:>9}", c.as_str()))
        .collect();
    println!("  {:<9}{}", "", names.join(""));
    for c in Emotion::ALL {
        let row: Vec<String> = e.confusion[c.index()]
            .iter()
            .map(|n| format!("{n:>9}"))
            .collect();
        println!("  {:<9}{}", c.as_str(), row.join(""));
    }
}

/// `emofy model list`: the registry's versions, newest first.
pub async fn list_models(config: Config, json: bool) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let champion = stores.models.champion().await?;
    let rows: Vec<serde_json::Value> = stores
        .models
        .models(10_000)
        .await?
        .into_iter()
        .map(|m| {
            serde_json::json!({
                "version": m.version,
                "parent": m.parent,
                "state": m.state.as_str(),
                "created_ms": m.created.0,
                "state_ms": m.state_at.0,
                "replaced": m.replaced,
                "test_images": m.card["candidate"]["test"]["images"],
                "test_accuracy": m.test_accuracy,
                "parent_test_accuracy": m.card["champion"]["test"]["accuracy"],
                "gate_passed": m.gate_passed,
                "refusals": m.card["gate"]["refusals"],
                "serving": champion.as_deref() == Some(m.version.as_str()),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("the registry is empty: start the server or run `emofy train`");
        return Ok(());
    }
    println!(
        "{:<36} {:<12} {:<36} {:>6} {:>9} {:>9}  gate",
        "version", "state", "parent", "test", "accuracy", "parent's"
    );
    for r in &rows {
        let acc = |k: &str| r[k].as_f64().map_or("—".into(), pct);
        println!(
            "{:<36} {:<12} {:<36} {:>6} {:>9} {:>9}  {}",
            r["version"].as_str().unwrap_or("?"),
            r["state"].as_str().unwrap_or("?"),
            r["parent"].as_str().unwrap_or("—"),
            r["test_images"]
                .as_u64()
                .map_or("—".into(), |n| n.to_string()),
            acc("test_accuracy"),
            acc("parent_test_accuracy"),
            if r["gate_passed"] == true {
                "passed"
            } else {
                "refused"
            },
        );
    }
    Ok(())
}

/// `emofy model promote VERSION [--force]` and `emofy model rollback`:
/// change the registry's champion; every running replica follows at its
/// next poll.
pub async fn change_champion(
    config: Config,
    promote: Option<(String, bool)>,
) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let plan = match promote {
        Some((version, force)) => registry::promote(stores.models.as_ref(), &version, force).await,
        None => registry::rollback(stores.models.as_ref()).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "previous": plan.expected_champion,
            "champion": plan.champion,
        }))?
    );
    Ok(())
}
