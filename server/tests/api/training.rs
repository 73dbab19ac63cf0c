//! Retraining: `emofy train` fine-tunes the bundled mini-Xception on the
//! synthetic demo faces (their drawn emotions are the truth), the gate
//! promotes a candidate that is clearly better and refuses one trained on
//! shuffled labels or worse on the operator's reference set; consent
//! decides which faces train.

use std::path::Path;
use std::process::Command;

use emofy_game::plan::ImageAction;
use emofy_game::training::DataRules;
use emofy_game::{Emotion, Millis, PlayerId};
use emofy_server::app;
use emofy_server::training::data;
use serde_json::Value;
use uuid::Uuid;

use crate::common::test_config;
use crate::store_contract::upload_of;

/// Runs the `emofy` binary with `args` on `data_dir`; returns stdout.
fn emofy(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(args)
        .env("EMOFY_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "emofy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn seed_demo(dir: &Path, images: u32) {
    let mut config = test_config(dir);
    config.demo.images = images;
    let stores = app::open_stores(&config).await.unwrap();
    app::seed_demo_images(&config, stores.images.as_ref())
        .await
        .unwrap();
}

/// Writes `n` demo faces as an `<emotion>/<file>` folder: under their drawn
/// emotion, or under `relabel(i, drawn)`.
fn demo_folder(dir: &Path, n: u32, relabel: impl Fn(u32, Emotion) -> Emotion) {
    for i in 0..n {
        let face = emofy_server::dataset::demo_faces::generate(7, i).unwrap();
        let label = relabel(i, face.emotion);
        let sub = dir.join(label.as_str());
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{i}.png")), &face.png).unwrap();
    }
}

#[actix_rt::test]
async fn a_candidate_trained_on_the_demo_faces_beats_the_bundled_model_and_passes_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    seed_demo(dir.path(), 300).await;
    let out = emofy(
        dir.path(),
        &["train", "--epochs", "3"],
        &[("EMOFY_TRAINING__DATA__USE_KNOWN_LABELS", "true")],
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let candidate = v["test"]["candidate_accuracy"].as_f64().unwrap();
    let champion = v["test"]["champion_accuracy"].as_f64().unwrap();
    assert!(
        candidate >= champion + 0.25,
        "candidate {candidate} vs bundled {champion}: {out}"
    );
    assert_eq!(v["gate"]["promote"], true, "{out}");
    assert_eq!(v["parent"], "mini-xception-fer2013-7ddc075e901e");
    // The candidate's directory: the files a model swap loads, its card and
    // every number behind it.
    let model_dir = Path::new(v["dir"].as_str().unwrap());
    let version = v["version"].as_str().unwrap();
    assert_eq!(model_dir, dir.path().join("models").join(version));
    for f in [
        "config.json",
        "model.safetensors",
        "README.md",
        "training.json",
    ] {
        assert!(model_dir.join(f).is_file(), "{f}");
    }
    let card: Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("training.json")).unwrap()).unwrap();
    let counted: u64 = ["train", "val", "test"]
        .iter()
        .flat_map(|s| {
            card["data"]["counts"][s]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .sum();
    assert_eq!(counted, 300, "every demo face trains or tests");
    assert_eq!(card["parent"], "mini-xception-fer2013-7ddc075e901e");
    let readme = std::fs::read_to_string(model_dir.join("README.md")).unwrap();
    assert!(readme.contains(version) && readme.contains("Promotable"));
    // The served form of the candidate loads and is what it says it is.
    let config: Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["version"], version);
    // `emofy model list` shows it, with the gate's decision.
    let listed: Value =
        serde_json::from_str(&emofy(dir.path(), &["model", "list", "--json"], &[])).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["gate_passed"], true);
    // The gate passed it, so it serves (`training.auto_promote`); the
    // bundled model it replaced is retired.
    assert_eq!(v["promoted"], true, "{out}");
    assert_eq!(row["serving"], true);
    assert_eq!(row["state"], "champion");
    assert_eq!(row["replaced"], "mini-xception-fer2013-7ddc075e901e");
    assert_eq!(row["parent"], "mini-xception-fer2013-7ddc075e901e");
    // `emofy model evaluate` scores it on labelled faces from a folder.
    let faces = dir.path().join("faces");
    demo_folder(&faces, 300, |_, e| e);
    let eval: Value = serde_json::from_str(&emofy(
        dir.path(),
        &[
            "model",
            "evaluate",
            "--model",
            version,
            "--dataset",
            faces.to_str().unwrap(),
            "--json",
        ],
        &[],
    ))
    .unwrap();
    let bundled: Value = serde_json::from_str(&emofy(
        dir.path(),
        &[
            "model",
            "evaluate",
            "--model",
            "mini-xception-fer2013-7ddc075e901e",
            "--dataset",
            faces.to_str().unwrap(),
            "--json",
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(eval["model"], version);
    assert_eq!(eval["evaluation"]["images"], 300);
    let (a, b) = (
        eval["evaluation"]["accuracy"].as_f64().unwrap(),
        bundled["evaluation"]["accuracy"].as_f64().unwrap(),
    );
    assert!(a > b + 0.25, "trained {a} vs bundled {b}");
}

#[actix_rt::test]
async fn the_gate_refuses_a_candidate_trained_on_shuffled_labels_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // Imported faces whose labels are noise; the operator's reference set
    // has the same faces with their true emotions.
    let shuffled = dir.path().join("shuffled");
    demo_folder(&shuffled, 160, |i, _| {
        Emotion::ALL[(i as usize * 5 + i as usize / 7) % 7]
    });
    let reference = dir.path().join("reference");
    demo_folder(&reference, 160, |_, e| e);
    let env = [
        ("EMOFY_DEMO__IMAGES", "0"),
        ("EMOFY_TRAINING__DATA__USE_KNOWN_LABELS", "true"),
        ("EMOFY_TRAINING__GATE__MIN_TEST_IMAGES", "5"),
    ];
    emofy(
        dir.path(),
        &["import", "--folder", shuffled.to_str().unwrap()],
        &env,
    );
    let out = emofy(
        dir.path(),
        &[
            "train",
            "--epochs",
            "2",
            "--reference",
            reference.to_str().unwrap(),
        ],
        &env,
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["gate"]["promote"], false, "{out}");
    let reasons: Vec<&str> = v["gate"]["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"worse_on_reference"),
        "the reference set vetoes: {out}"
    );
    assert!(
        reasons.contains(&"not_better") || reasons.contains(&"not_significant"),
        "noise does not beat the model on its own test split: {out}"
    );
    let r = &v["gate"]["reference"];
    assert!(
        r["candidate_accuracy"].as_f64().unwrap() < r["champion_accuracy"].as_f64().unwrap(),
        "{out}"
    );
}

#[actix_rt::test]
async fn consent_decides_which_faces_train_and_erasure_takes_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 0;
    let stores = app::open_stores(&config).await.unwrap();
    let rules = config.rules().unwrap();
    let alice = PlayerId(Uuid::new_v4());
    let moderator = PlayerId(Uuid::new_v4());
    let consents = stores
        .uploads
        .insert_upload(upload_of(alice, 41, true), Millis(1_000))
        .await
        .unwrap();
    let declines = stores
        .uploads
        .insert_upload(
            emofy_server::store::NewUpload {
                consent: emofy_server::store::Consent {
                    use_for_training: false,
                    ..upload_of(alice, 42, true).consent
                },
                ..upload_of(alice, 42, true)
            },
            Millis(1_001),
        )
        .await
        .unwrap();
    // A moderator's label on both: a hard target, if consent allows.
    for image in [consents, declines] {
        stores
            .review
            .moderate_image(
                image,
                ImageAction::Override {
                    label: Emotion::Happy,
                },
                moderator,
                Millis(2_000),
                &rules,
            )
            .await
            .unwrap();
    }
    let ids = |d: &data::TrainingData| -> Vec<emofy_game::ImageId> {
        [&d.train, &d.val, &d.test]
            .iter()
            .flat_map(|s| s.ids.iter().copied())
            .collect()
    };
    let rules = DataRules::default();
    let before = data::load(
        stores.images.as_ref(),
        stores.uploads.as_ref(),
        &rules,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(ids(&before), vec![consents]);
    assert_eq!(before.snapshot.excluded.get("no_consent"), Some(&1));
    let happy: u32 = before
        .snapshot
        .counts
        .values()
        .filter_map(|c| c.get("happy"))
        .sum();
    assert_eq!(happy, 1);
    // Revoking (deleting the upload) takes the face out of the next run.
    assert!(
        stores
            .uploads
            .delete_upload(alice, consents, Millis(3_000))
            .await
            .unwrap()
    );
    let after = data::load(
        stores.images.as_ref(),
        stores.uploads.as_ref(),
        &rules,
        |_| {},
    )
    .await
    .unwrap();
    assert!(ids(&after).is_empty());
    assert_eq!(after.snapshot.excluded.get("removed"), Some(&1));
    assert_eq!(after.snapshot.excluded.get("no_consent"), Some(&1));
    assert!(after.snapshot.counts.is_empty());
    assert_ne!(
        before.snapshot.label_set_hash,
        after.snapshot.label_set_hash
    );
}

#[actix_rt::test]
async fn test_split_faces_are_played_blind_so_evaluation_labels_never_saw_a_model_guess() {
    use crate::common::{Bot, spawn_app};
    use emofy_game::training::{Split, split_of};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 60;
    config.truth.blind_test = true;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "Blind").await;
    let (mut blind, mut shown) = (0, 0);
    while let Some(round) = bot.next_round().await {
        let id: emofy_game::ImageId = round["image"]["id"].as_str().unwrap().parse().unwrap();
        if split_of(id) == Split::Test {
            assert!(round["suggestion"].is_null(), "{round}");
            assert!(
                round["prompt"]
                    .as_str()
                    .unwrap()
                    .starts_with("No model guess on this face"),
                "{round}"
            );
            blind += 1;
        } else {
            assert!(round["suggestion"].is_object(), "{round}");
            shown += 1;
        }
        let result = bot.answer(&round, "happy").await;
        assert_eq!(result["type"], "result");
    }
    assert!(blind > 0 && shown > 0, "blind {blind}, shown {shown}");
    app.stop().await;
}

#[test]
fn labelled_sets_are_read_within_their_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let pixels = vec!["128"; 48 * 48].join(" ");
    let csv = dir.path().join("faces.csv");
    let rows: String = (0..5)
        .map(|i| format!("{},{pixels},Training\n", i % 7))
        .collect();
    std::fs::write(
        &csv,
        format!("emotion,pixels,Usage\n{rows}3,1 2 3,Training\n"),
    )
    .unwrap();
    // Within the cap: every good row read, the short one skipped and counted.
    let (faces, skipped) = data::read_labelled(&csv, 10).unwrap();
    assert_eq!((faces.len(), skipped), (5, 1));
    assert!(faces.iter().all(|f| f.pixels.len() == 64 * 64));
    // Past the cap: an error that says so, after reading at most the cap.
    let e = data::read_labelled(&csv, 3).unwrap_err().to_string();
    assert!(e.contains("more than 3 faces"), "{e}");
    // A line past the line bound is refused without being held whole.
    let long = dir.path().join("long.csv");
    let huge = "9".repeat(data::MAX_LINE_BYTES * 4);
    std::fs::write(&long, format!("emotion,pixels\n1,{huge}\n")).unwrap();
    let e = data::read_labelled(&long, 10).unwrap_err().to_string();
    assert!(e.contains("row 1: longer than"), "{e}");
    // A folder with more files than the cap.
    let folder = dir.path().join("folder");
    demo_folder(&folder, 4, |_, e| e);
    assert!(data::read_labelled(&folder, 3).is_err());
    assert_eq!(data::read_labelled(&folder, 4).unwrap().0.len(), 4);
}
