//! Training the mini-Xception in Rust, with candle: real gradients through
//! every layer (custom backward passes for the two layers candle cannot
//! differentiate, [`ops`]), batch norm in training mode, AdamW, the original
//! augmentation recipe ([`augment`]), soft targets (the truth posteriors,
//! FER+ "probability" style) weighted by confidence.
//!
//! [`fit`] runs epochs over [`Example`]s and reports each; [`evaluate`]
//! scores any [`Classifier`]; [`TrainableNet::to_safetensors`] writes the
//! weights the serving [`MiniXception`] loads (batch norms refolded there).

pub mod augment;
pub mod net;
pub mod ops;

use std::time::Instant;

use candle_core::{D, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use emofy_game::training::Evaluation;
use emofy_game::{EMOTION_COUNT, Emotion};
use serde::{Deserialize, Serialize};

pub use augment::{Augment, Rng};
pub use net::{Trainable, TrainableNet};

pub use crate::mini_xception::ClassOrder;
use crate::mini_xception::MiniXception;
use crate::{Classifier, InferenceError};

/// The side of the model's square input.
pub const SIDE: usize = 64;

/// One training face: 64×64 grayscale pixels, a target distribution over
/// the emotions (in [`Emotion::ALL`] order) and its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub pixels: Vec<u8>,
    pub target: [f32; EMOTION_COUNT],
    pub weight: f32,
}

/// Hyperparameters of a training run (stored with every trained model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub trainable: Trainable,
    pub augment: Augment,
    /// Seeds shuffling and augmentation.
    pub seed: u64,
    /// After each epoch, the trained batch norms' statistics are
    /// re-estimated on up to this many training faces (unaugmented; 0: keep
    /// Keras' moving averages alone).
    pub recalibration_images: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 8,
            batch_size: 32,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            trainable: Trainable::All,
            augment: Augment::default(),
            seed: 1,
            recalibration_images: 256,
        }
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    /// Mean weighted cross-entropy over the epoch's batches.
    pub loss: f64,
    pub images_per_second: f64,
    /// On the validation examples' top classes, when there are any.
    pub val: Option<Evaluation>,
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("no training examples")]
    NoExamples,
    #[error("example {index}: {pixels} pixels; expected 64×64")]
    BadExample { index: usize, pixels: usize },
    #[error("the loss diverged at epoch {epoch}")]
    Diverged { epoch: usize },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// An Emofy-ordered target in the model's output order.
fn to_model(order: ClassOrder, target: &[f32; EMOTION_COUNT]) -> [f32; EMOTION_COUNT] {
    let mut out = [0f32; EMOTION_COUNT];
    for (i, e) in order.0.iter().enumerate() {
        out[i] = target[*e];
    }
    out
}

fn batch_input(
    examples: &[&Example],
    augment: &Augment,
    rng: &mut Rng,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let mut data = Vec::with_capacity(examples.len() * SIDE * SIDE);
    for e in examples {
        data.extend(augment::augmented(&e.pixels, SIDE, augment, rng));
    }
    Tensor::from_vec(data, (examples.len(), 1, SIDE, SIDE), device)
}

/// The weighted soft cross-entropy of `logits` (N, 7) against `targets`
/// (N, 7, in the model's order) with weights (N).
fn loss(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let per = (targets * logp)?.sum(D::Minus1)?.neg()?;
    let total = weights.sum_all()?;
    (per * weights)?.sum_all()?.broadcast_div(&total)
}

/// Trains `net` on `train` for `config.epochs`; after each epoch, evaluates
/// on `val` (their targets' top classes) and calls `on_epoch`.
pub fn fit(
    net: &mut TrainableNet,
    order: ClassOrder,
    train: &[Example],
    val: &[Example],
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochReport),
) -> Result<Vec<EpochReport>, TrainError> {
    if train.is_empty() {
        return Err(TrainError::NoExamples);
    }
    for (index, e) in train.iter().chain(val).enumerate() {
        if e.pixels.len() != SIDE * SIDE {
            return Err(TrainError::BadExample {
                index,
                pixels: e.pixels.len(),
            });
        }
    }
    let device = net.device().clone();
    let mut opt = AdamW::new(
        net.trainable(config.trainable),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = Rng::new(config.seed);
    let mut order_idx: Vec<usize> = (0..train.len()).collect();
    let batch = config.batch_size.max(2);
    let mut reports = Vec::with_capacity(config.epochs);
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order_idx);
        let started = Instant::now();
        let (mut sum, mut batches) = (0.0, 0usize);
        for chunk in order_idx.chunks(batch) {
            // A batch of one has no batch statistics worth the name.
            if chunk.len() < 2 {
                continue;
            }
            let examples: Vec<&Example> = chunk.iter().map(|i| &train[*i]).collect();
            let x = batch_input(&examples, &config.augment, &mut rng, &device)?;
            let targets: Vec<f32> = examples
                .iter()
                .flat_map(|e| to_model(order, &e.target))
                .collect();
            let targets = Tensor::from_vec(targets, (examples.len(), EMOTION_COUNT), &device)?;
            let weights: Vec<f32> = examples.iter().map(|e| e.weight.max(0.0)).collect();
            let weights = Tensor::from_vec(weights, examples.len(), &device)?;
            let logits = net.forward(&x, true, config.trainable)?;
            let l = loss(&logits, &targets, &weights)?;
            let value = f64::from(l.to_scalar::<f32>()?);
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch });
            }
            opt.backward_step(&l)?;
            sum += value;
            batches += 1;
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        if config.recalibration_images > 0 {
            let sample: Vec<&Example> = order_idx
                .iter()
                .take(config.recalibration_images)
                .map(|i| &train[*i])
                .collect();
            let mut plain = Rng::new(0);
            let batches = sample
                .chunks(batch)
                .filter(|c| c.len() >= 2)
                .map(|c| batch_input(c, &Augment::NONE, &mut plain, &device))
                .collect::<candle_core::Result<Vec<_>>>()?;
            net.recalibrate(&batches, config.trainable)?;
        }
        let val_eval = if val.is_empty() {
            None
        } else {
            Some(evaluate_net(net, order, val)?)
        };
        let report = EpochReport {
            epoch,
            loss: sum / batches.max(1) as f64,
            images_per_second: (batches * batch).min(train.len()) as f64 / seconds,
            val: val_eval,
        };
        on_epoch(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// The class an example is labelled with: its target's top class.
pub fn target_label(e: &Example) -> Emotion {
    emofy_game::emotion::top_of(&e.target)
}

/// The trainable network's answers (Emofy order) on `examples`, in
/// inference mode, 64 at a time.
pub fn predict_net(
    net: &mut TrainableNet,
    order: ClassOrder,
    examples: &[Example],
) -> Result<Vec<Emotion>, TrainError> {
    let device = net.device().clone();
    let mut out = Vec::with_capacity(examples.len());
    let mut rng = Rng::new(0);
    for chunk in examples.chunks(64) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let x = batch_input(&refs, &Augment::NONE, &mut rng, &device)?;
        let logits: Vec<Vec<f32>> = net.forward(&x, false, Trainable::All)?.to_vec2()?;
        out.extend(
            logits
                .iter()
                .map(|row| Emotion::ALL[order.0[emofy_game::emotion::top_index(row)]]),
        );
    }
    Ok(out)
}

fn evaluate_net(
    net: &mut TrainableNet,
    order: ClassOrder,
    examples: &[Example],
) -> Result<Evaluation, TrainError> {
    let predicted = predict_net(net, order, examples)?;
    let pairs: Vec<(Emotion, Emotion)> = examples.iter().map(target_label).zip(predicted).collect();
    Ok(Evaluation::of(&pairs))
}

/// A serving model's answers on `examples`, batched.
pub fn predict(model: &MiniXception, examples: &[Example]) -> Result<Vec<Emotion>, TrainError> {
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(64) {
        let pixels: Vec<u8> = chunk
            .iter()
            .flat_map(|e| e.pixels.iter().copied())
            .collect();
        let t = Tensor::from_vec(pixels, (chunk.len(), SIDE, SIDE), &candle_core::Device::Cpu)?;
        out.extend(model.predict_batch(&t)?.iter().map(|p| p.top()));
    }
    Ok(out)
}

/// Any classifier's metrics on `examples` (their targets' top classes).
pub fn evaluate(model: &dyn Classifier, examples: &[Example]) -> Result<Evaluation, TrainError> {
    let mut pairs = Vec::with_capacity(examples.len());
    for e in examples {
        pairs.push((target_label(e), model.classify(&e.pixels)?.top()));
    }
    Ok(Evaluation::of(&pairs))
}

#[cfg(test)]
mod tests;
