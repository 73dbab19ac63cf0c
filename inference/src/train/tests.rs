use super::*;
use crate::mini_xception::MiniXception;

use crate::mini_xception::{BUNDLED_CONFIG, BUNDLED_WEIGHTS};

fn order() -> ClassOrder {
    let config: crate::mini_xception::ModelConfig =
        serde_json::from_str(BUNDLED_CONFIG).unwrap_or_else(|e| panic!("{e}"));
    ClassOrder::from_names(&config.classes).unwrap_or_else(|e| panic!("{e}"))
}

/// Faces of two kinds a network can tell apart: a bright band at the top
/// (happy) or at the bottom (sad), with noise.
fn toy(n: usize, seed: u64) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let top = i % 2 == 0;
            let pixels: Vec<u8> = (0..SIDE * SIDE)
                .map(|p| {
                    let y = p / SIDE;
                    let band = if top { y < 24 } else { y >= 40 };
                    let base = if band { 190.0 } else { 60.0 };
                    (base + rng.symmetric(40.0)).clamp(0.0, 255.0) as u8
                })
                .collect();
            let mut target = [0f32; EMOTION_COUNT];
            target[if top { Emotion::Happy } else { Emotion::Sad }.index()] = 1.0;
            Example {
                pixels,
                target,
                weight: 1.0,
            }
        })
        .collect()
}

/// Whether training changed `key` between two snapshots.
fn moved(
    before: &std::collections::BTreeMap<String, Tensor>,
    after: &std::collections::BTreeMap<String, Tensor>,
    key: &str,
) -> bool {
    (&before[key] - &after[key])
        .and_then(|d| d.abs()?.sum_all()?.to_scalar::<f32>())
        .unwrap_or_else(|e| panic!("{e}"))
        > 0.0
}

/// The bundled weights, trained for one epoch of `train` as `trainable` says;
/// returns the network and its weights before.
fn one_epoch(
    train: &[Example],
    trainable: Trainable,
) -> (TrainableNet, std::collections::BTreeMap<String, Tensor>) {
    let mut net =
        TrainableNet::from_safetensors(BUNDLED_WEIGHTS, 1e-3).unwrap_or_else(|e| panic!("{e}"));
    let before = net.tensors().unwrap_or_else(|e| panic!("{e}"));
    let config = TrainConfig {
        epochs: 1,
        batch_size: 4,
        trainable,
        ..TrainConfig::default()
    };
    fit(&mut net, order(), train, &[], &config, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    (net, before)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn logits_of_serving(model: &MiniXception, examples: &[Example]) -> Vec<Vec<f32>> {
    let pixels: Vec<u8> = examples.iter().flat_map(|e| e.pixels.clone()).collect();
    let t = Tensor::from_vec(
        pixels,
        (examples.len(), SIDE, SIDE),
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    model
        .logits(&model.normalize(&t).unwrap_or_else(|e| panic!("{e}")))
        .and_then(|l| l.to_vec2())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn logits_of_net(net: &mut TrainableNet, examples: &[Example]) -> Vec<Vec<f32>> {
    let refs: Vec<&Example> = examples.iter().collect();
    let x = batch_input(
        &refs,
        &Augment::NONE,
        &mut Rng::new(0),
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    net.forward(&x, false, Trainable::All)
        .and_then(|l| l.to_vec2())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_unfolded_network_computes_what_the_serving_model_does() {
    let examples = toy(6, 3);
    let mut net =
        TrainableNet::from_safetensors(BUNDLED_WEIGHTS, 1e-3).unwrap_or_else(|e| panic!("{e}"));
    let serving = MiniXception::bundled().unwrap_or_else(|e| panic!("{e}"));
    let d = max_diff(
        &logits_of_net(&mut net, &examples),
        &logits_of_serving(&serving, &examples),
    );
    assert!(d < 1e-4, "unfolded vs folded logits differ by {d}");
}

#[test]
fn a_trained_network_refolds_into_the_same_serving_model() {
    let (mut net, before) = one_epoch(&toy(8, 5), Trainable::All);
    // Training moved the weights and the batch-norm statistics.
    let after = net.tensors().unwrap_or_else(|e| panic!("{e}"));
    for key in [
        "conv2d_1.weight",
        "batch_normalization_1.moving_mean",
        "conv2d_7.bias",
    ] {
        assert!(moved(&before, &after, key), "{key} did not move");
    }
    let bytes = net.to_safetensors().unwrap_or_else(|e| panic!("{e}"));
    let serving =
        MiniXception::from_buffers(BUNDLED_CONFIG, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let probe = toy(4, 9);
    let d = max_diff(
        &logits_of_net(&mut net, &probe),
        &logits_of_serving(&serving, &probe),
    );
    assert!(
        d < 1e-4,
        "trained network vs its refolded serving model: {d}"
    );
}

#[test]
fn training_from_scratch_learns_a_separable_task() {
    let train = toy(48, 11);
    let val = toy(16, 12);
    let mut net = TrainableNet::init(7).unwrap_or_else(|e| panic!("{e}"));
    let config = TrainConfig {
        epochs: 4,
        batch_size: 16,
        learning_rate: 3e-3,
        augment: Augment {
            flip: true,
            ..Augment::NONE
        },
        ..TrainConfig::default()
    };
    let reports = fit(&mut net, order(), &train, &val, &config, |r| {
        eprintln!("{r:?}")
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let first = reports.first().map(|r| r.loss).unwrap_or(f64::NAN);
    let last = reports.last().map(|r| r.loss).unwrap_or(f64::NAN);
    assert!(last < first, "loss {first} → {last}");
    let acc = reports
        .last()
        .and_then(|r| r.val.as_ref())
        .map(|v| v.accuracy)
        .unwrap_or(0.0);
    assert!(acc >= 0.9, "validation accuracy {acc}");
}

#[test]
fn last_block_training_leaves_the_frozen_layers_alone() {
    let (net, before) = one_epoch(&toy(8, 21), Trainable::LastBlock);
    let after = net.tensors().unwrap_or_else(|e| panic!("{e}"));
    let moved = |key: &str| moved(&before, &after, key);
    assert!(!moved("conv2d_1.weight"));
    assert!(!moved("batch_normalization_1.moving_mean"));
    assert!(!moved("separable_conv2d_6.depthwise"));
    assert!(moved("separable_conv2d_8.depthwise"));
    assert!(moved("batch_normalization_14.moving_variance"));
    assert!(moved("conv2d_7.weight"));
}

#[test]
fn malformed_examples_are_refused() {
    let mut net = TrainableNet::init(1).unwrap_or_else(|e| panic!("{e}"));
    let bad = vec![Example {
        pixels: vec![0; 10],
        target: [0.0; EMOTION_COUNT],
        weight: 1.0,
    }];
    assert!(matches!(
        fit(
            &mut net,
            order(),
            &bad,
            &[],
            &TrainConfig::default(),
            |_| {}
        ),
        Err(TrainError::BadExample { index: 0, .. })
    ));
    assert!(matches!(
        fit(&mut net, order(), &[], &[], &TrainConfig::default(), |_| {}),
        Err(TrainError::NoExamples)
    ));
}
