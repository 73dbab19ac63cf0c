//! `emofy predict`: face detection, the face crop, and the model's prediction as JSON.

use std::process::Command;

use emofy_inference::face::FaceDetector;
use emofy_server::dataset::demo_faces;

/// CRC-32 (IEEE), as PNG chunks use.
fn run(files: &[&std::path::Path]) -> (bool, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .arg("predict")
        .args(files)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.success(), v)
}

#[test]
fn predicts_on_a_detected_face_and_says_when_there_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let detector = FaceDetector::bundled(5.0).unwrap();
    // A synthetic demo face the detector finds.
    let face = (0..40)
        .map(|i| demo_faces::generate(2024, i).unwrap())
        .find(|f| {
            let img = image::load_from_memory(&f.png).unwrap().to_luma8();
            detector.largest_face(&img).is_some()
        })
        .expect("some demo faces are detectable");
    let face_path = dir.path().join("face.png");
    std::fs::write(&face_path, &face.png).unwrap();

    let (ok, v) = run(&[&face_path]);
    assert!(ok);
    assert_eq!(v["file"], face_path.display().to_string());
    let b = &v["face"];
    assert!(
        b["w"].as_u64().unwrap() > 20 && b["score"].as_f64().unwrap() >= 5.0,
        "{v}"
    );
    assert!(b["x"].as_u64().unwrap() + b["w"].as_u64().unwrap() <= 96);
    let probs = v["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 7);
    let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4);
    let top = probs
        .iter()
        .max_by(|a, b| a.1.as_f64().partial_cmp(&b.1.as_f64()).unwrap())
        .unwrap()
        .0;
    assert_eq!(v["emotion"], top.as_str());
    assert!(
        v["model"]
            .as_str()
            .unwrap()
            .starts_with("mini-xception-fer2013-")
    );

    // A blank image: no face, no prediction, not an error.
    let blank = dir.path().join("blank.png");
    image::GrayImage::from_pixel(120, 90, image::Luma([128]))
        .save(&blank)
        .unwrap();
    let (ok, v) = run(&[&blank, &face_path]);
    assert!(ok);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(v[0]["face"].is_null() && v[0]["emotion"].is_null());
    assert_eq!(v[0]["note"], "no face found");
    assert!(v[1]["face"].is_object());
}

#[test]
fn unreadable_files_are_reported_and_fail_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    // A PNG whose header claims 30000×30000 pixels.
    let png = crate::fixtures::png_claiming(30000, 30000);
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, &png).unwrap();
    let missing = dir.path().join("missing.png");
    let (ok, v) = run(&[&text, &empty, &bomb, &missing]);
    assert!(!ok);
    for doc in v.as_array().unwrap() {
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
    assert!(v[2]["error"].as_str().unwrap().contains("30000"));
}
