//! The ViT directory path: a tiny, randomly initialised ViT written by the
//! test in Hugging Face layout loads through `load_model_dir`, classifies a
//! face crop, and maps its labels to our emotions explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::vit;
use emofy_game::Emotion;
use emofy_inference::vit::{VitClassifier, emotion_of_label};
use emofy_inference::{Classifier, load_model_dir};

const SIDE: usize = 32;

/// Labels in a model's own order and spelling (not ours).
const LABELS: [&str; 7] = [
    "happiness",
    "Sadness",
    "surprise",
    "neutral",
    "anger",
    "disgust",
    "fearful",
];

fn config(labels: &[&str]) -> serde_json::Value {
    let id2label: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), serde_json::Value::from(*l)))
        .collect();
    serde_json::json!({
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "image_size": SIDE,
        "patch_size": 8,
        "num_channels": 3,
        "qkv_bias": true,
        "id2label": id2label,
    })
}

/// Writes a random tiny ViT whose classifier bias favours logit `favour` by a wide margin.
fn write_tiny_vit(dir: &std::path::Path, labels: &[&str], favour: usize) {
    let cfg_json = config(labels);
    let cfg: vit::Config = serde_json::from_value(cfg_json.clone()).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    vit::Model::new(&cfg, labels.len(), vb).unwrap();
    // Parameters `get` created without an initialiser start at zero; make every one random.
    for var in varmap.data().lock().unwrap().values() {
        let t = Tensor::randn(0f32, 0.2, var.shape(), &Device::Cpu).unwrap();
        var.set(&t).unwrap();
    }
    let mut bias = vec![0f32; labels.len()];
    bias[favour] = 50.0;
    let mut vm = varmap;
    vm.set_one("classifier.bias", Tensor::new(bias, &Device::Cpu).unwrap())
        .unwrap();
    vm.save(dir.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg_json).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("preprocessor_config.json"),
        r#"{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "size": {"height": 32, "width": 32}}"#,
    )
    .unwrap();
}

#[test]
fn a_tiny_vit_directory_loads_and_classifies() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_vit(dir.path(), &LABELS, 1);
    let model = load_model_dir(dir.path()).unwrap();
    assert!(model.version().starts_with("vit-"), "{}", model.version());
    assert_eq!(model.input_side(), SIDE as u32);
    for k in [0u8, 90, 200] {
        let crop: Vec<u8> = (0..SIDE * SIDE).map(|i| k.wrapping_add(i as u8)).collect();
        let p = model.classify(&crop).unwrap();
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4);
        // Logit 1 is the model's "Sadness": it must come out as our `sad`.
        assert_eq!(p.top(), Emotion::Sad);
        assert_eq!(p.model, model.version());
    }
    // Same weights, same version; a wrong-sized crop is a clear error.
    assert_eq!(
        VitClassifier::load(dir.path()).unwrap().version(),
        model.version()
    );
    assert!(model.classify(&[0; 10]).is_err());
}

#[test]
fn labels_that_are_not_our_emotions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut labels = LABELS;
    labels[6] = "contempt";
    write_tiny_vit(dir.path(), &labels, 0);
    let err = load_model_dir(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("contempt"), "{err}");
}

#[test]
fn label_spellings() {
    assert_eq!(emotion_of_label("Happiness"), Some(Emotion::Happy));
    assert_eq!(emotion_of_label("surprised"), Some(Emotion::Surprise));
    assert_eq!(emotion_of_label("contempt"), None);
}
