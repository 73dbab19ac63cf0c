//! The candle port matches TensorFlow/Keras on the same weights within 1e-4 on
//! every logit (fixture made once by inference/tools/reference_logits.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use emofy_game::Emotion;
use emofy_inference::Classifier;
use emofy_inference::mini_xception::MiniXception;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> MiniXception {
    MiniXception::load(&root().join("models/mini-xception-fer2013")).expect("model loads")
}

#[test]
fn logits_match_tensorflow_within_1e_4() {
    let m = model();
    let fixture = candle_core::safetensors::load(
        root().join("tests/fixtures/parity.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let pixels = &fixture["pixels"];
    let want: Vec<Vec<f32>> = fixture["logits"].to_vec2().unwrap();
    let got: Vec<Vec<f32>> = m
        .logits(&m.normalize(pixels).unwrap())
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(got.len(), 16);
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("largest logit difference vs TensorFlow: {worst:e}");
    assert!(worst <= 1e-4, "largest logit difference {worst}");

    // Probabilities, mapped to Emofy's class order, match TensorFlow's (given in the model's order).
    let tf_probs: Vec<Vec<f32>> = fixture["probabilities"].to_vec2().unwrap();
    let model_order = [
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
    ];
    for (pred, tf) in m.predict_batch(pixels).unwrap().iter().zip(&tf_probs) {
        for (i, name) in model_order.iter().enumerate() {
            let e: Emotion = name.parse().unwrap();
            assert!((pred.probabilities[e.index()] - tf[i]).abs() <= 1e-5);
        }
    }
}

#[test]
fn classify_checks_its_input_and_names_its_version() {
    let m = model();
    assert!(m.version().starts_with("mini-xception-fer2013-"));
    assert_eq!(m.input_side(), 64);
    assert!(m.classify(&[0u8; 10]).is_err());
    let p = m.classify(&[128u8; 64 * 64]).unwrap();
    let sum: f32 = p.probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4);
    // Single and batched classification agree.
    let batch = Tensor::from_slice(&[128u8; 64 * 64], (1, 64, 64), &Device::Cpu).unwrap();
    assert_eq!(m.predict_batch(&batch).unwrap()[0], p);
}

#[test]
fn bad_model_directories_are_refused() {
    let dir = std::env::temp_dir().join(format!("emofy-badmodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(MiniXception::load(&dir).is_err(), "no config");
    std::fs::write(
        dir.join("config.json"),
        r#"{"architecture":"vit","version":"x","classes":[]}"#,
    )
    .unwrap();
    assert!(MiniXception::load(&dir).is_err(), "wrong architecture");
    std::fs::write(
        dir.join("config.json"),
        r#"{"architecture":"mini_xception","version":"x","classes":["angry","disgust","fear","happy","sad","surprise","neutral"]}"#,
    )
    .unwrap();
    assert!(MiniXception::load(&dir).is_err(), "no weights");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bundled_model_equals_the_model_directory() {
    let a = model();
    let b = MiniXception::bundled().unwrap();
    assert_eq!(a.version(), b.version());
    let x = [77u8; 64 * 64];
    assert_eq!(a.classify(&x).unwrap(), b.classify(&x).unwrap());
}

#[test]
fn grayscale_input_resizes_any_image() {
    let img = image::RgbImage::from_pixel(96, 80, image::Rgb([200, 100, 50]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let x = emofy_inference::grayscale_input(&png, 64, &emofy_inference::DecodeLimits::DEFAULT)
        .unwrap();
    assert_eq!(x.len(), 64 * 64);
    assert!(
        emofy_inference::grayscale_input(b"nope", 64, &emofy_inference::DecodeLimits::DEFAULT)
            .is_err()
    );
}

#[test]
fn one_thread_and_several_compute_the_same_logits() {
    let m = model();
    let fixture = candle_core::safetensors::load(
        root().join("tests/fixtures/parity.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let x = m.normalize(&fixture["pixels"]).unwrap();
    let on = |threads: usize| -> Vec<Vec<f32>> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| m.logits(&x).unwrap().to_vec2().unwrap())
    };
    // Sequential kernels on one thread; split layers and faces spread over
    // three: the same numbers, bit for bit, and the same as one face alone.
    let one = on(1);
    assert_eq!(one, on(3));
    let alone: Vec<Vec<f32>> = m
        .logits(&x.narrow(0, 5, 1).unwrap())
        .unwrap()
        .to_vec2()
        .unwrap();
    assert_eq!(alone[0], one[5]);
}
