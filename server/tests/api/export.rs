//! `emofy export` and its import: the same votes come back, uploads go out
//! only with export consent, and the three layouts are well-formed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::{Bot, spawn_app, test_config};
use emofy_game::{Emotion, ImageId, Millis, PlayerId};
use emofy_server::dataset::export::{DatasetRow, export, import_jsonl};
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use emofy_server::store::{
    Consent, FaceRegion, ImageSource, ImageStore, NewImage, NewUpload, UploadStore,
};
use uuid::Uuid;

use crate::fixtures::grey_png;

fn upload(seed: u8, exports: bool) -> NewUpload {
    let player = PlayerId(Uuid::new_v4());
    NewUpload {
        player,
        crop: NewImage {
            bytes: grey_png(40, seed.into()),
            mime: "image/png".into(),
            width: 40,
            height: 40,
            source: ImageSource::Upload,
            source_label: None,
            uploader: Some(player),
        },
        original: None,
        face: FaceRegion {
            x: 0,
            y: 0,
            w: 40,
            h: 40,
            score: 9.0,
        },
        consent: Consent {
            show_to_players: true,
            use_for_training: true,
            include_in_exports: exports,
            keep_original: false,
            text_version: "v".into(),
        },
        fingerprint: format!("fp-{}", seed),
    }
}

async fn tallies(images: &dyn ImageStore) -> HashMap<ImageId, (Vec<u32>, String)> {
    let mut out = HashMap::new();
    for m in images.all_images(None, 10_000).await.unwrap() {
        out.insert(m.id, (m.votes.0.to_vec(), m.status.name().to_owned()));
    }
    out
}

#[actix_rt::test]
async fn export_then_import_gives_the_same_votes() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // These bots press one button whatever the face, so truth inference
    // rightly trusts them little: a lower bar lets some images retire.
    config.game.confidence = 0.75;
    let app = spawn_app(config).await;
    let mut bots = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        bots.push(Bot::join(&app.ws(), name).await);
    }
    let emotions = ["happy", "happy", "sad", "happy"];
    for _ in 0..10 {
        for (bot, e) in bots.iter_mut().zip(emotions) {
            if let Some(r) = bot.next_round().await {
                bot.answer(&r, e).await;
            }
        }
    }
    app.stop().await;

    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let shared = store
        .insert_upload(upload(1, true), Millis(5))
        .await
        .unwrap();
    let private = store
        .insert_upload(upload(2, false), Millis(6))
        .await
        .unwrap();
    let before = tallies(store.as_ref()).await;
    assert!(
        before.values().any(|(_, s)| s == "retired"),
        "some images retired"
    );

    let out = tempfile::tempdir().unwrap();
    let report = export(store.as_ref(), store.as_ref(), out.path(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.withheld, 1);
    assert_eq!(report.images, 15, "14 demo faces and the consented upload");

    let rows: Vec<DatasetRow> = std::fs::read_to_string(out.path().join("dataset.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 15);
    assert!(rows.iter().any(|r| r.id == shared));
    assert!(
        !rows.iter().any(|r| r.id == private),
        "no export without consent"
    );
    for r in &rows {
        let soft: f64 = r.soft.values().map(|v| v.as_f64().unwrap()).sum();
        assert!(r.labels == 0 || (soft - 1.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.split, emofy_game::training::split_of(r.id).as_str());
        // Labelled images carry the truth posterior; a retired one's top class is its consensus.
        match &r.posterior {
            Some(p) => {
                let total: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
                assert!((total - 1.0).abs() < 1e-4, "{r:?}");
                if let Some(c) = r.consensus {
                    let top = p
                        .iter()
                        .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
                        .unwrap()
                        .0;
                    assert_eq!(top, c.as_str(), "{r:?}");
                }
            }
            None => assert_eq!(r.labels, 0, "{r:?}"),
        }
        assert_eq!(r.verified, None);
    }
    let csv = std::fs::read_to_string(out.path().join("fer2013.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("emotion,pixels,Usage"));
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), 3);
        assert!(Emotion::from_fer2013_index(cols[0].parse().unwrap()).is_some());
        assert_eq!(cols[1].split(' ').count(), 48 * 48);
        assert!(["Training", "PublicTest", "PrivateTest"].contains(&cols[2]));
    }
    let pngs = walk(&out.path().join("images"));
    assert_eq!(pngs, 15);

    // Into a fresh embedded store, and into MongoDB: the same votes and status.
    let fresh = tempfile::tempdir().unwrap();
    let target = SqliteStore::open(fresh.path(), SqliteOptions::default()).unwrap();
    assert_eq!(import_jsonl(&target, out.path()).await.unwrap(), 15);
    let after = tallies(&target).await;
    for r in &rows {
        assert_eq!(after.get(&r.id), before.get(&r.id), "votes of {}", r.id);
    }
    let uri = std::env::var("TEST_MONGODB_URI").unwrap_or_else(|_| {
        "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false".into()
    });
    let db = format!("emofy_export_{}", Uuid::new_v4().simple());
    let mongo = emofy_server::store::mongo::MongoStore::connect(&uri, &db, false)
        .await
        .unwrap();
    assert_eq!(import_jsonl(&mongo, out.path()).await.unwrap(), 15);
    let in_mongo = tallies(&mongo).await;
    for r in &rows {
        assert_eq!(
            in_mongo.get(&r.id),
            before.get(&r.id),
            "votes of {} in MongoDB",
            r.id
        );
    }
    mongo.database().drop().await.unwrap();
}

fn walk(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += walk(&p);
        } else if p.extension().is_some_and(|x| x == "png") {
            n += 1;
        }
    }
    n
}
