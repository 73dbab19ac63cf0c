//! Retraining the model on the crowd's labels: read the consented, labelled
//! images ([`data`]), fine-tune the serving model (or train from scratch),
//! judge the candidate against the champion on the frozen test split with
//! the promotion gate ([`emofy_game::training::gate`]), and write the
//! candidate as a model directory in Hugging Face layout (`config.json`,
//! `model.safetensors`, a model card `README.md`, and `training.json` with
//! every number behind it) that the admin model swap can load.
//!
//! What trains and whether a model may serve is decided in `game-logic`;
//! this module loads, runs and writes.

pub mod data;

use std::path::{Path, PathBuf};

use emofy_game::Emotion;
use emofy_game::training::{Evaluation, GateDecision, GateRules, Paired, gate};
use emofy_inference::mini_xception::{MiniXception, ModelConfig};
use emofy_inference::train::{
    ClassOrder, EpochReport, Example, TrainConfig, TrainError, TrainableNet, fit, predict,
    target_label,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Config;
use data::{DataSnapshot, TrainingData};

/// Why a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("only the mini_xception architecture trains (the serving model is {0})")]
    NotTrainable(String),
    #[error("model: {0}")]
    Model(#[from] emofy_inference::InferenceError),
    #[error("training: {0}")]
    Train(#[from] TrainError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(crate::store::StoreError),
    #[error("model registry: {0}")]
    Registry(String),
    #[error("no {0} examples: label more images first")]
    Empty(&'static str),
}

/// The serving model a run starts from and is judged against.
#[derive(Debug, Clone)]
pub struct Champion {
    pub version: String,
    /// `config.json`, as read and as parsed.
    pub config_json: String,
    pub config: ModelConfig,
    pub safetensors: Vec<u8>,
}

fn config_err(e: serde_json::Error) -> RunError {
    RunError::Model(emofy_inference::InferenceError::Load(format!(
        "config.json: {e}"
    )))
}

impl Champion {
    /// The configured model: `model.dir`, else the bundled mini-Xception.
    pub fn configured(config: &Config) -> Result<Champion, RunError> {
        let files = crate::service::registry::configured_files(config)?;
        Champion::of_files(files)
    }

    /// The registry's champion (what every replica serves), else the
    /// configured model when the registry is empty.
    pub async fn serving(
        models: &dyn crate::store::ModelStore,
        config: &Config,
    ) -> Result<Champion, RunError> {
        match models.champion().await.map_err(RunError::Store)? {
            Some(version) => Champion::of_files(
                crate::service::registry::files_of(models, config, &version)
                    .await
                    .map_err(|e| RunError::Registry(e.to_string()))?,
            ),
            None => Champion::configured(config),
        }
    }

    /// A model's files, if they are a trainable mini-Xception.
    pub fn of_files(files: emofy_inference::ModelFiles) -> Result<Champion, RunError> {
        if files.is_vit() {
            return Err(RunError::NotTrainable("a ViT".into()));
        }
        let (config_json, safetensors) = (files.config_json, files.safetensors);
        let parsed: ModelConfig = serde_json::from_str(&config_json).map_err(config_err)?;
        if parsed.architecture != "mini_xception" {
            return Err(RunError::NotTrainable(parsed.architecture));
        }
        Ok(Champion {
            version: parsed.version.clone(),
            config_json,
            config: parsed,
            safetensors,
        })
    }
}

/// One model's metrics on each split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitMetrics {
    pub train: Evaluation,
    pub val: Evaluation,
    pub test: Evaluation,
}

/// Everything about a trained model: written as `training.json` and
/// rendered as the model card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCard {
    pub version: String,
    pub parent: String,
    pub architecture: &'static str,
    /// What started the run: `emofy train` or `background trainer`.
    pub trained_by: &'static str,
    pub created_ms: u64,
    pub from_scratch: bool,
    pub data: DataSnapshot,
    pub hyperparameters: TrainConfig,
    pub epochs: Vec<EpochReport>,
    pub seconds: f64,
    pub candidate: SplitMetrics,
    pub champion: SplitMetrics,
    pub gate: GateDecision,
}

/// A finished run: the candidate's directory, card and files.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub card: ModelCard,
    /// `config.json` and `model.safetensors`, as written.
    pub files: emofy_inference::ModelFiles,
}

impl RunOutcome {
    /// The candidate as the registry keeps it: its files, card and the gate's verdict.
    pub fn registration(&self) -> crate::store::NewModel {
        crate::store::NewModel {
            version: self.card.version.clone(),
            parent: Some(self.card.parent.clone()),
            architecture: self.card.architecture.to_owned(),
            gate_passed: self.card.gate.promote,
            test_accuracy: Some(self.card.candidate.test.accuracy),
            card: serde_json::to_value(&self.card).unwrap_or_default(),
            files: Some(self.files.clone()),
        }
    }
}

/// `trained_by` of a run `emofy train` started.
pub const BY_COMMAND: &str = "emofy train";
/// `trained_by` of a run the background trainer started.
pub const BY_BACKGROUND: &str = "background trainer";

/// What to run.
pub struct RunRequest<'a> {
    pub data: &'a TrainingData,
    pub champion: &'a Champion,
    pub fit: TrainConfig,
    pub gate: GateRules,
    /// Labelled faces the operator trusts: the candidate must not be worse on them.
    pub reference: Option<&'a [Example]>,
    /// Start from fresh weights instead of the champion's.
    pub from_scratch: bool,
    /// What started the run (recorded in the card and `config.json`).
    pub trained_by: &'static str,
}

/// One model's answers on each split (and on the reference set), computed
/// once: the metrics and the gate's pairs both come from them.
struct Answers {
    train: Vec<Emotion>,
    val: Vec<Emotion>,
    test: Vec<Emotion>,
    reference: Option<Vec<Emotion>>,
}

impl Answers {
    fn of(
        model: &MiniXception,
        (train, val, test): (&[Example], &[Example], &[Example]),
        reference: Option<&[Example]>,
    ) -> Result<Answers, RunError> {
        Ok(Answers {
            train: predict(model, train)?,
            val: predict(model, val)?,
            test: predict(model, test)?,
            reference: reference.map(|r| predict(model, r)).transpose()?,
        })
    }

    fn metrics(&self, (train, val, test): (&[Example], &[Example], &[Example])) -> SplitMetrics {
        SplitMetrics {
            train: evaluation(train, &self.train),
            val: evaluation(val, &self.val),
            test: evaluation(test, &self.test),
        }
    }
}

fn evaluation(examples: &[Example], answers: &[Emotion]) -> Evaluation {
    let pairs: Vec<(Emotion, Emotion)> = examples
        .iter()
        .map(target_label)
        .zip(answers.iter().copied())
        .collect();
    Evaluation::of(&pairs)
}

fn paired(examples: &[Example], champion: &[Emotion], candidate: &[Emotion]) -> Vec<Paired> {
    examples
        .iter()
        .zip(champion.iter().zip(candidate))
        .map(|(e, (a, b))| Paired {
            label: target_label(e),
            champion: *a,
            candidate: *b,
        })
        .collect()
}

/// The version of a model: its architecture and the start of its weights' SHA-256.
pub fn version_of(safetensors: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(safetensors));
    format!("mini-xception-{}", &digest[..12])
}

/// Trains a candidate, judges it and writes it under `models_dir/<version>/`.
pub fn run(
    req: RunRequest<'_>,
    models_dir: &Path,
    on_epoch: impl FnMut(&EpochReport),
) -> Result<RunOutcome, RunError> {
    let (train, val, test) = (
        &req.data.train.examples[..],
        &req.data.val.examples[..],
        &req.data.test.examples[..],
    );
    if train.is_empty() {
        return Err(RunError::Empty("training"));
    }
    let champion_config = &req.champion.config;
    let order = ClassOrder::from_names(&champion_config.classes)?;
    let started = std::time::Instant::now();
    let mut net = if req.from_scratch {
        TrainableNet::init(req.fit.seed).map_err(TrainError::from)?
    } else {
        TrainableNet::from_safetensors(
            &req.champion.safetensors,
            champion_config.batch_norm_epsilon,
        )
        .map_err(TrainError::from)?
    };
    let epochs = fit(&mut net, order, train, val, &req.fit, on_epoch)?;
    let seconds = started.elapsed().as_secs_f64();
    let weights = net.to_safetensors().map_err(TrainError::from)?;
    let version = version_of(&weights);
    let mut config_value: serde_json::Value =
        serde_json::from_str(&req.champion.config_json).map_err(config_err)?;
    if let Some(obj) = config_value.as_object_mut() {
        obj.insert("version".into(), version.clone().into());
        obj.insert("parent".into(), req.champion.version.clone().into());
        obj.insert(
            "source".into(),
            serde_json::json!({"trained_by": req.trained_by, "label_set_hash": req.data.snapshot.label_set_hash}),
        );
    }
    let config_json = serde_json::to_string_pretty(&config_value).unwrap_or_default();
    let candidate = MiniXception::from_buffers(&config_json, &weights)?;
    let champion =
        MiniXception::from_buffers(&req.champion.config_json, &req.champion.safetensors)?;
    let splits = (train, val, test);
    let champion_answers = Answers::of(&champion, splits, req.reference)?;
    let candidate_answers = Answers::of(&candidate, splits, req.reference)?;
    let test_pairs = paired(test, &champion_answers.test, &candidate_answers.test);
    let reference_pairs = match (
        req.reference,
        &champion_answers.reference,
        &candidate_answers.reference,
    ) {
        (Some(r), Some(a), Some(b)) => Some(paired(r, a, b)),
        _ => None,
    };
    let decision = gate(&test_pairs, reference_pairs.as_deref(), &req.gate);
    let card = ModelCard {
        version: version.clone(),
        parent: req.champion.version.clone(),
        architecture: "mini_xception",
        trained_by: req.trained_by,
        created_ms: crate::clock::now().0,
        from_scratch: req.from_scratch,
        data: req.data.snapshot.clone(),
        hyperparameters: req.fit,
        epochs,
        seconds,
        candidate: candidate_answers.metrics(splits),
        champion: champion_answers.metrics(splits),
        gate: decision,
    };
    let dir = models_dir.join(&version);
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let files = emofy_inference::ModelFiles {
        config_json,
        preprocessor_json: None,
        safetensors: weights,
    };
    for (name, bytes) in [
        ("config.json", files.config_json.as_bytes()),
        ("model.safetensors", &files.safetensors),
        (
            "training.json",
            &serde_json::to_vec_pretty(&card).unwrap_or_default(),
        ),
        ("README.md", model_card_markdown(&card).as_bytes()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(RunOutcome { dir, card, files })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The model card: what the model is, what it learned from, how it scores
/// and what the gate decided.
pub fn model_card_markdown(card: &ModelCard) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "---\nlibrary_name: emofy\ntags: [facial-expression, mini-xception, candle]\n---\n\n# {}\n\n",
        card.version
    ));
    s.push_str(&format!(
        "A mini-Xception (64×64 grayscale faces, 7 emotions) trained {} `{}` on the labels \
         below, in {:.0} s (started by: {}).\n\n",
        if card.from_scratch {
            "from scratch, judged against"
        } else {
            "from"
        },
        card.parent,
        card.seconds,
        card.trained_by,
    ));
    s.push_str("## Data\n\n");
    s.push_str(&format!("Consent: {}.\n\n", card.data.consent_filter));
    s.push_str("| split | ");
    s.push_str(
        &Emotion::ALL
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    s.push_str(" | total |\n| --- |");
    s.push_str(&" ---: |".repeat(Emotion::ALL.len() + 1));
    s.push('\n');
    for split in ["train", "val", "test"] {
        let row = card.data.counts.get(split);
        let counts: Vec<u32> = Emotion::ALL
            .iter()
            .map(|e| row.and_then(|r| r.get(e.as_str())).copied().unwrap_or(0))
            .collect();
        s.push_str(&format!(
            "| {split} | {} | {} |\n",
            counts
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
            counts.iter().sum::<u32>()
        ));
    }
    if !card.data.excluded.is_empty() {
        s.push_str("\nLeft out: ");
        s.push_str(
            &card
                .data
                .excluded
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        s.push_str(".\n");
    }
    s.push_str(&format!(
        "\nLabel set hash: `{}`.\n\n## Metrics\n\n| model | split | images | accuracy | macro-F1 |\n| --- | --- | ---: | ---: | ---: |\n",
        card.data.label_set_hash
    ));
    for (name, m) in [("this model", &card.candidate), ("parent", &card.champion)] {
        for (split, e) in [("train", &m.train), ("val", &m.val), ("test", &m.test)] {
            s.push_str(&format!(
                "| {name} | {split} | {} | {} | {} |\n",
                e.images,
                pct(e.accuracy),
                pct(e.macro_f1)
            ));
        }
    }
    s.push_str("\nTest recall per class (this model / parent): ");
    s.push_str(
        &Emotion::ALL
            .iter()
            .map(|e| {
                let r = |ev: &Evaluation| ev.recall[e.index()].map_or("—".into(), pct);
                format!(
                    "{} {} / {}",
                    e.as_str(),
                    r(&card.candidate.test),
                    r(&card.champion.test)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    s.push_str(".\n\n## Gate\n\n");
    let g = &card.gate;
    s.push_str(&format!(
        "**{}.** On the test split this model alone was right on {} faces, the parent alone on {} \
         (one-sided exact McNemar p = {:.2e}).\n",
        if g.promote { "Promotable" } else { "Refused" },
        g.candidate_only,
        g.champion_only,
        g.p_value
    ));
    for r in &g.refusals {
        s.push_str(&format!(
            "- {}\n",
            serde_json::to_string(r).unwrap_or_default()
        ));
    }
    s.push_str(&format!(
        "\n## Training\n\n`{}`\n\n| epoch | loss | images/s | val accuracy |\n| ---: | ---: | ---: | ---: |\n",
        serde_json::to_string(&card.hyperparameters).unwrap_or_default()
    ));
    for e in &card.epochs {
        s.push_str(&format!(
            "| {} | {:.4} | {:.1} | {} |\n",
            e.epoch,
            e.loss,
            e.images_per_second,
            e.val.as_ref().map_or("—".into(), |v| pct(v.accuracy))
        ));
    }
    s
}
