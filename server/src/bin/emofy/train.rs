//! `emofy train` and `emofy model evaluate`: retrain the model on the
//! crowd's labels, and score any model on any labelled faces.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use emofy_game::Emotion;
use emofy_game::training::Evaluation;
use emofy_inference::train::{EpochReport, evaluate};
use emofy_server::training::{Champion, RunRequest, data};
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

pub async fn train(config: Config, request: TrainRequest) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let champion = Champion::configured(&config)?;
    let total = stores.images.image_count().await?;
    let reading = bar(
        total,
        "{spinner} reading [{elapsed_precise}] {wide_bar} {pos}/{len} images",
    );
    let training_data = data::load(
        stores.images.as_ref(),
        stores.uploads.as_ref(),
        &config.training.data,
        |n| reading.inc(n),
    )
    .await?;
    reading.finish_and_clear();
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
    let mut config = config;
    if let Some(e) = request.epochs {
        // The flag is one more layer of the configuration: the same bounds hold.
        config.training.fit.epochs = e;
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("--epochs: {e}"))?;
    }
    let fit = config.training.fit;
    eprintln!(
        "training on {} faces (val {}, test {}) from {}{}",
        training_data.train.len(),
        training_data.val.len(),
        training_data.test.len(),
        champion.version,
        if request.from_scratch {
            " (from scratch)"
        } else {
            ""
        }
    );
    let models_dir = request
        .out
        .clone()
        .unwrap_or_else(|| config.training.models_dir(&config.data_dir));
    let epochs = bar(
        fit.epochs as u64,
        "{spinner} training [{elapsed_precise}] {wide_bar} epoch {pos}/{len} {msg}",
    );
    let gate_rules = config.training.gate;
    let from_scratch = request.from_scratch;
    let progress = epochs.clone();
    // Training is CPU work: off the async runtime's threads.
    let outcome = tokio::task::spawn_blocking(move || {
        emofy_server::training::run(
            RunRequest {
                data: &training_data,
                champion: &champion,
                fit,
                gate: gate_rules,
                reference: reference.as_deref(),
                from_scratch,
            },
            &models_dir,
            |r: &EpochReport| {
                progress.set_message(format!(
                    "loss {:.4}, {:.0} img/s, val {}",
                    r.loss,
                    r.images_per_second,
                    r.val.as_ref().map_or("—".into(), |v| pct(v.accuracy))
                ));
                progress.inc(1);
            },
        )
    })
    .await
    .context("the training task failed")??;
    epochs.finish_and_clear();
    let card = &outcome.card;
    let g = &card.gate;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "version": card.version,
            "parent": card.parent,
            "dir": outcome.dir,
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

/// Which model `--model` names: a model directory, or a version under the
/// models directory; unset: the configured serving model.
fn model_dir(config: &Config, model: Option<&str>) -> Option<PathBuf> {
    let name = model?;
    let as_path = Path::new(name);
    if as_path.is_dir() {
        return Some(as_path.to_path_buf());
    }
    Some(config.training.models_dir(&config.data_dir).join(name))
}

pub fn evaluate_model(
    config: &Config,
    model: Option<&str>,
    dataset: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let classifier = match model_dir(config, model) {
        Some(dir) => emofy_inference::load_model_dir(&dir)
            .with_context(|| format!("loading the model {}", dir.display()))?,
        None => app::load_model(config)?
            .context("the model is disabled in the configuration (model.enabled = false)")?,
    };
    let (examples, skipped) = data::read_labelled(dataset, config.training.max_labelled_faces)?;
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

/// `emofy model list`: the trained models under the models directory, newest
/// first, from each one's `training.json`.
pub fn list_models(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = config.training.models_dir(&config.data_dir);
    let serving = app::load_model(config)?.map(|m| m.version().to_owned());
    let mut rows = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let card = entry.path().join("training.json");
            // A bounded read: a card is a few kilobytes.
            let Ok(meta) = std::fs::metadata(&card) else {
                continue;
            };
            if !meta.is_file() || meta.len() > 16 << 20 {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&card) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            rows.push(serde_json::json!({
                "version": v["version"],
                "parent": v["parent"],
                "created_ms": v["created_ms"],
                "test_images": v["candidate"]["test"]["images"],
                "test_accuracy": v["candidate"]["test"]["accuracy"],
                "parent_test_accuracy": v["champion"]["test"]["accuracy"],
                "gate_passed": v["gate"]["promote"],
                "refusals": v["gate"]["refusals"],
                "serving": serving.as_deref() == v["version"].as_str(),
            }));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r["created_ms"].as_u64().unwrap_or(0)));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no trained models under {}", dir.display());
        return Ok(());
    }
    println!(
        "{:<28} {:<36} {:>6} {:>9} {:>9}  gate",
        "version", "parent", "test", "accuracy", "parent's"
    );
    for r in &rows {
        let acc = |k: &str| r[k].as_f64().map_or("—".into(), pct);
        println!(
            "{:<28} {:<36} {:>6} {:>9} {:>9}  {}{}",
            r["version"].as_str().unwrap_or("?"),
            r["parent"].as_str().unwrap_or("?"),
            r["test_images"].as_u64().unwrap_or(0),
            acc("test_accuracy"),
            acc("parent_test_accuracy"),
            if r["gate_passed"] == true {
                "passed"
            } else {
                "refused"
            },
            if r["serving"] == true {
                " (serving)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
