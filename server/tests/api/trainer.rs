//! The background trainer: two replicas on one store, each with the trainer
//! on. Bots label the demo faces; once enough faces are confidently
//! labelled, exactly one replica trains (the store's lease, and the
//! interval read from the registry), on a budget of one worker thread at a
//! lowered priority; the candidate is registered with the background as
//! its origin, the lease is given back, and `emofy train` is refused while
//! someone else holds it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use emofy_game::{Emotion, ImageId, Millis};
use emofy_server::service::trainer::WORKER_THREAD_PREFIX;
use emofy_server::store::TRAINING_LEASE;

use crate::common::{Bot, spawn_app, test_config};

const BUNDLED: &str = "mini-xception-fer2013-7ddc075e901e";

/// This process's training worker threads, with their nice values.
fn training_workers() -> Vec<i64> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(WORKER_THREAD_PREFIX) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis start at field 3; nice is field 19.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if let Some(nice) = after.split_whitespace().nth(16) {
            out.push(nice.parse().unwrap());
        }
    }
    out
}

#[actix_rt::test]
async fn one_replica_trains_in_the_background_on_a_budget_when_labels_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 150;
    config.game.min_labels = 4;
    config.truth.spam.min_human_ms = 0;
    config.training.fit.epochs = 1;
    let b = &mut config.training.background;
    b.enabled = true;
    b.check_every_ms = 100;
    b.every_new_labels = 60;
    b.min_interval_ms = 10 * 60 * 1000;
    b.threads = 1;
    b.nice = 10;
    let a = spawn_app(config.clone()).await;
    let other = spawn_app(config.clone()).await;

    // Nothing labelled: nothing trains.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.services.models.models(10).await.unwrap().len(), 1);
    assert!(training_workers().is_empty());

    let truth: HashMap<String, Emotion> = (0..config.demo.images)
        .map(|i| {
            let face = emofy_server::dataset::demo_faces::generate(config.demo.seed, i).unwrap();
            (ImageId::of_bytes(&face.png).to_hex(), face.emotion)
        })
        .collect();
    for k in 0..3usize {
        let mut bot = Bot::join(&a.ws(), &format!("bot{k}")).await;
        while let Some(round) = bot.next_round().await {
            let id = round["image"]["id"].as_str().unwrap();
            bot.answer(&round, truth[id].as_str()).await;
        }
    }
    a.services.rounds.flush().await.unwrap();

    // A run starts; while it runs, its work is on one worker thread at nice 10.
    let started = Instant::now();
    let (mut workers_seen, mut nices) = (0, Vec::new());
    let trained = loop {
        let running = a.services.metrics.training_running.get()
            + other.services.metrics.training_running.get();
        if running > 0 {
            let w = training_workers();
            workers_seen = workers_seen.max(w.len());
            nices.extend(w);
        }
        let models = a.services.models.models(10).await.unwrap();
        if let Some(m) = models.iter().find(|m| m.version != BUNDLED) {
            break m.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "no background run registered a candidate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(trained.parent.as_deref(), Some(BUNDLED));
    assert_eq!(trained.card["trained_by"], "background trainer");
    assert!(trained.has_files, "replicas that share no disk can load it");
    let learned: u64 = ["train", "val", "test"]
        .iter()
        .flat_map(|s| {
            trained.card["data"]["counts"][s]
                .as_object()
                .cloned()
                .unwrap_or_default()
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert!(
        learned >= 60,
        "it learned from at least the trigger's 60 faces ({learned})"
    );
    assert_eq!(
        workers_seen, 1,
        "training workers seen while a run ran (budget: 1)"
    );
    assert!(
        nices.iter().all(|n| *n == 10),
        "worker nice values {nices:?}"
    );

    // The lease is given back; the other replica does not train the same
    // labels again (the interval is read from the registry).
    let lease_free = Instant::now();
    while a
        .services
        .leases
        .lease(TRAINING_LEASE)
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            lease_free.elapsed() < Duration::from_secs(30),
            "the lease was not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let trained_models = a
        .services
        .models
        .models(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.version != BUNDLED)
        .count();
    assert_eq!(trained_models, 1, "one run across both replicas");
    let runs = |app: &crate::common::TestApp| {
        let text = app.services.metrics.render();
        text.lines()
            .filter(|l| l.starts_with("emofy_training_runs_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>()
    };
    assert_eq!(runs(&a) + runs(&other), 1.0);

    // While someone else holds the lease, `emofy train` refuses to start.
    let now = emofy_server::clock::now();
    assert!(
        a.services
            .leases
            .acquire_lease(TRAINING_LEASE, "someone-else", now, Millis(now.0 + 60_000))
            .await
            .unwrap()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(["train", "--epochs", "1"])
        .env("EMOFY_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("holds the lease") && err.contains("someone-else"),
        "{err}"
    );

    a.services
        .leases
        .release_lease(TRAINING_LEASE, "someone-else")
        .await
        .unwrap();

    // A scheduled `emofy train --when-due` right after the run: not due.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(["train", "--when-due"])
        .env("EMOFY_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["trained"], false, "{stdout}");
    assert!(v["wait"]["reason"].is_string(), "{stdout}");
    assert_eq!(a.services.leases.lease(TRAINING_LEASE).await.unwrap(), None);
}
