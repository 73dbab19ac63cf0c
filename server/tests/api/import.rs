//! `emofy import`: image folders and FER2013 CSV, with validation and a report.

use std::process::Command;

use emofy_game::Emotion;
use emofy_server::dataset::import::{import_fer_csv, import_folder};
use emofy_server::store::ImageStore;
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use image::{DynamicImage, ImageFormat, RgbImage};

fn write_image(path: &std::path::Path, seed: u8, format: ImageFormat) {
    let img = RgbImage::from_fn(32, 32, |x, y| image::Rgb([seed, x as u8 * 8, y as u8 * 8]));
    DynamicImage::ImageRgb8(img)
        .save_with_format(path, format)
        .unwrap();
}

#[actix_rt::test]
async fn folder_import_validates_and_deduplicates() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path();
    for d in ["happy", "sad", "bogus"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    write_image(&root.join("happy/a.png"), 1, ImageFormat::Png);
    write_image(&root.join("happy/b.jpg"), 2, ImageFormat::Jpeg);
    write_image(&root.join("sad/c.png"), 3, ImageFormat::Png);
    std::fs::copy(
        root.join("happy/a.png"),
        root.join("sad/same-bytes-as-a.png"),
    )
    .unwrap();
    std::fs::write(root.join("happy/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("sad/empty.png"), b"").unwrap();
    write_image(&root.join("bogus/d.png"), 4, ImageFormat::Png);
    std::fs::write(root.join("stray.png"), b"x").unwrap();

    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(data.path(), SqliteOptions::default()).unwrap();
    let mut calls = 0;
    let report = import_folder(root, &store, |_, _| calls += 1)
        .await
        .unwrap();
    assert_eq!(report.added, 3);
    assert_eq!(report.duplicates, 1, "identical bytes are stored once");
    assert_eq!(calls, 6);
    let why: Vec<_> = report
        .rejected
        .iter()
        .map(|(w, _)| w.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(report.rejected.len(), 4, "{:?}", report.rejected);
    for f in ["bogus", "stray.png", "notes.txt", "empty.png"] {
        assert!(why.iter().any(|w| w == f), "{f} not rejected: {why:?}");
    }
    let entries = store.pool_entries(emofy_game::Millis(0)).await.unwrap();
    assert_eq!(entries.len(), 3);
    let mut labels = Vec::new();
    for e in &entries {
        let meta = store.image_meta(e.image).await.unwrap().unwrap();
        assert_eq!(meta.votes.total(), 0, "a dataset label is not a vote");
        assert_eq!(meta.mime, "image/png", "re-encoded as PNG");
        labels.push(meta.source_label.unwrap());
    }
    labels.sort();
    assert_eq!(labels, vec![Emotion::Happy, Emotion::Happy, Emotion::Sad]);

    let again = import_folder(root, &store, |_, _| {}).await.unwrap();
    assert_eq!((again.added, again.duplicates), (0, 4));
}

#[actix_rt::test]
async fn fer_csv_import_maps_classes_and_reports_bad_rows() {
    let src = tempfile::tempdir().unwrap();
    let csv = src.path().join("fer.csv");
    let px = |v: u8| vec![v.to_string(); 2304].join(" ");
    let rows = [
        "emotion,pixels,Usage".to_owned(),
        format!("3,{},Training", px(10)),       // happy
        format!("6,{},PublicTest", px(20)),     // neutral in FER order
        format!("9,{},Training", px(30)),       // bad class
        "1,1 2 3,Training".to_owned(),          // too few pixels
        format!("4,{},Training,extra", px(40)), // wrong field count
        format!("4,{},PrivateTest", px(50)),    // sad
    ];
    std::fs::write(&csv, rows.join("\n")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(data.path(), SqliteOptions::default()).unwrap();
    let report = import_fer_csv(&csv, &store, |_, _| {}).await.unwrap();
    assert_eq!(report.added, 3);
    let lines: Vec<_> = report.rejected.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(lines, vec!["line 4", "line 5", "line 6"]);
    let mut labels = Vec::new();
    for e in store.pool_entries(emofy_game::Millis(0)).await.unwrap() {
        let meta = store.image_meta(e.image).await.unwrap().unwrap();
        assert_eq!((meta.width, meta.height), (48, 48));
        labels.push(meta.source_label.unwrap());
    }
    labels.sort();
    assert_eq!(labels, vec![Emotion::Happy, Emotion::Neutral, Emotion::Sad]);

    let bad = src.path().join("bad.csv");
    std::fs::write(&bad, "label,data\n1,2\n").unwrap();
    assert!(import_fer_csv(&bad, &store, |_, _| {}).await.is_err());
}

#[test]
fn import_command_prints_a_report() {
    let src = tempfile::tempdir().unwrap();
    let csv = src.path().join("fer.csv");
    std::fs::write(
        &csv,
        format!("emotion,pixels\n5,{}\n8,1\n", vec!["7"; 2304].join(" ")),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(["import", "--fer-csv"])
        .arg(&csv)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported 1 new image(s); 0 already present; 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("rejected line 3"), "{stdout}");
}
