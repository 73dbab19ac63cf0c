//! A Vision Transformer image classifier in Hugging Face layout
//! (`candle_transformers::models::vit`), for operators with a stronger
//! fine-tuned FER model than the bundled mini-Xception.
//!
//! A model directory holds `config.json` (a `ViTForImageClassification`
//! config with `id2label`), `model.safetensors`, and optionally
//! `preprocessor_config.json` (`image_mean`, `image_std`; default 0.5 / 0.5).
//! The labels must name our seven emotions, in any order and with common
//! spellings (`anger`, `happiness`, `fearful`, …); the logits are mapped to
//! [`Emotion`] order explicitly. Faces arrive as grayscale crops and are
//! repeated over the three colour channels.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::vit;
use emofy_game::{EMOTION_COUNT, Emotion};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Classifier, InferenceError, Prediction};

/// A loaded ViT classifier.
pub struct VitClassifier {
    model: vit::Model,
    device: Device,
    version: String,
    side: u32,
    mean: [f32; 3],
    std: [f32; 3],
    /// For each emotion (in [`Emotion::ALL`] order), the index of its logit.
    logit_of: [usize; EMOTION_COUNT],
    labels: usize,
    /// Input channels (3: the gray crop repeated; 1: as is).
    channels: usize,
}

#[derive(Debug, Deserialize)]
struct Preprocessor {
    #[serde(default = "half")]
    image_mean: Vec<f32>,
    #[serde(default = "half")]
    image_std: Vec<f32>,
}

fn half() -> Vec<f32> {
    vec![0.5, 0.5, 0.5]
}

fn load_err(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Load(e.to_string())
}

/// Our emotion for a label name as fine-tuned FER models spell them.
pub fn emotion_of_label(label: &str) -> Option<Emotion> {
    let l = label.trim().to_ascii_lowercase();
    let e = match l.as_str() {
        "angry" | "anger" => Emotion::Angry,
        "disgust" | "disgusted" => Emotion::Disgust,
        "fear" | "fearful" | "afraid" => Emotion::Fear,
        "happy" | "happiness" | "joy" => Emotion::Happy,
        "neutral" => Emotion::Neutral,
        "sad" | "sadness" => Emotion::Sad,
        "surprise" | "surprised" => Emotion::Surprise,
        _ => return None,
    };
    Some(e)
}

/// Whether a `config.json` describes a ViT image classifier.
pub fn is_vit_config(config_json: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(config_json) else {
        return false;
    };
    v.get("model_type").and_then(|t| t.as_str()) == Some("vit")
        || v.get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str() == Some("ViTForImageClassification"))
            })
}

impl VitClassifier {
    /// Loads a model directory (see the module docs).
    pub fn load(dir: &Path) -> Result<VitClassifier, InferenceError> {
        let f = crate::ModelFiles::read(dir, crate::MAX_MODEL_FILE_BYTES)?;
        Self::from_buffers(
            &f.config_json,
            f.preprocessor_json.as_deref(),
            &f.safetensors,
        )
    }

    /// Loads from the files' contents.
    pub fn from_buffers(
        config_json: &str,
        preprocessor_json: Option<&str>,
        safetensors: &[u8],
    ) -> Result<VitClassifier, InferenceError> {
        let value: serde_json::Value =
            serde_json::from_str(config_json).map_err(|e| load_err(format!("config.json: {e}")))?;
        let cfg: vit::Config = serde_json::from_value(value.clone())
            .map_err(|e| load_err(format!("config.json is not a ViT config: {e}")))?;
        if cfg.num_channels != 3 && cfg.num_channels != 1 {
            return Err(load_err(format!(
                "num_channels {} (expected 1 or 3)",
                cfg.num_channels
            )));
        }
        let id2label = value
            .get("id2label")
            .and_then(|m| m.as_object())
            .ok_or_else(|| load_err("config.json has no id2label"))?;
        let labels = id2label.len();
        let mut logit_of = [usize::MAX; EMOTION_COUNT];
        for (k, v) in id2label {
            let i: usize = k
                .parse()
                .map_err(|_| load_err(format!("id2label key {k:?} is not an index")))?;
            let name = v.as_str().unwrap_or_default();
            let e = emotion_of_label(name)
                .ok_or_else(|| load_err(format!("label {name:?} is not one of our emotions")))?;
            if i >= labels || logit_of[e.index()] != usize::MAX {
                return Err(load_err(format!(
                    "label {name:?} at {i} is out of place or repeated"
                )));
            }
            logit_of[e.index()] = i;
        }
        if labels != EMOTION_COUNT || logit_of.contains(&usize::MAX) {
            return Err(load_err(format!(
                "id2label must name the {EMOTION_COUNT} emotions exactly once (has {labels} labels)"
            )));
        }
        let pre: Preprocessor = match preprocessor_json {
            Some(t) => serde_json::from_str(t)
                .map_err(|e| load_err(format!("preprocessor_config.json: {e}")))?,
            None => Preprocessor {
                image_mean: half(),
                image_std: half(),
            },
        };
        let triple = |v: &[f32], what: &str| -> Result<[f32; 3], InferenceError> {
            match v {
                [a] => Ok([*a; 3]),
                [a, b, c] => Ok([*a, *b, *c]),
                _ => Err(load_err(format!("{what} must have 1 or 3 values"))),
            }
        };
        let mean = triple(&pre.image_mean, "image_mean")?;
        let std = triple(&pre.image_std, "image_std")?;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(load_err("image_std must be positive"));
        }
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load_buffer(safetensors, &device).map_err(load_err)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let model = vit::Model::new(&cfg, labels, vb).map_err(load_err)?;
        let digest = Sha256::digest(safetensors);
        let side = u32::try_from(cfg.image_size).map_err(load_err)?;
        Ok(VitClassifier {
            model,
            device,
            version: format!("vit-{}", &hex::encode(digest)[..12]),
            side,
            mean,
            std,
            logit_of,
            labels,
            channels: cfg.num_channels,
        })
    }

    fn logits(&self, gray: &[u8]) -> candle_core::Result<Vec<f32>> {
        let n = (self.side * self.side) as usize;
        let mut input = Vec::with_capacity(n * self.channels);
        for c in 0..self.channels {
            input.extend(
                gray.iter()
                    .map(|p| (f32::from(*p) / 255.0 - self.mean[c]) / self.std[c]),
            );
        }
        let side = self.side as usize;
        let x = Tensor::from_vec(input, (1, self.channels, side, side), &self.device)?;
        self.model.forward(&x)?.flatten_all()?.to_vec1::<f32>()
    }
}

impl Classifier for VitClassifier {
    fn version(&self) -> &str {
        &self.version
    }

    fn input_side(&self) -> u32 {
        self.side
    }

    fn classify(&self, gray: &[u8]) -> Result<Prediction, InferenceError> {
        let want = (self.side * self.side) as usize;
        if gray.len() != want {
            return Err(InferenceError::BadInput(format!(
                "expected {want} grayscale pixels, got {}",
                gray.len()
            )));
        }
        let logits = self
            .logits(gray)
            .map_err(|e| InferenceError::BadOutput(e.to_string()))?;
        if logits.len() != self.labels {
            return Err(InferenceError::BadOutput(format!(
                "{} logits for {} labels",
                logits.len(),
                self.labels
            )));
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut probs = [0.0f32; EMOTION_COUNT];
        for (e, p) in probs.iter_mut().enumerate() {
            *p = exp[self.logit_of[e]] / sum;
        }
        Prediction::new(self.version.clone(), probs)
    }
}
