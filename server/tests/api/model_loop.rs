//! The whole loop, end to end: bots play the game on the synthetic demo
//! faces (their drawn emotion is the truth; each bot is right on nine faces
//! in ten), `emofy train` learns from the crowd's labels, the gate promotes
//! the candidate, a second replica notices the new champion and serves it,
//! rounds carry it, and a rollback puts the old model back everywhere.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use emofy_game::{Emotion, ImageId, Role};
use serde_json::{Value, json};

use crate::common::{Body, Bot, TestApp, http_send, moderator_token, spawn_app, test_config};

const BUNDLED: &str = "mini-xception-fer2013-7ddc075e901e";

/// The truth rules of [`test_config`] that the command-line tools must
/// share with the running replicas, and one more: bots answer faster than
/// any person, so the too-fast rule (tested on its own in `truth.rs`) is off.
const TRUTH_ENV: [(&str, &str); 4] = [
    ("EMOFY_TRUTH__SPAM__MIN_HUMAN_MS", "0"),
    ("EMOFY_TRUTH__TRUST__NEWCOMER_WEIGHT", "1.0"),
    ("EMOFY_TRUTH__TRUST__MIN_ESTABLISHED", "0"),
    // The demo faces' drawn emotions stay out: the crowd alone labels.
    ("EMOFY_TRUTH__TRUST__KNOWN_LABELS", "false"),
];

fn emofy(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(args)
        .env("EMOFY_DATA_DIR", data_dir)
        .envs(TRUTH_ENV)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn serving(app: &TestApp) -> String {
    app.services.inference.as_ref().unwrap().version()
}

async fn until_serving(app: &TestApp, version: &str) {
    let started = Instant::now();
    while serving(app) != version {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica still serves {} instead of {version}",
            serving(app)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin_post(app: &TestApp, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    let body = match body {
        Some(b) => {
            headers.push(("Content-Type", "application/json"));
            Body::Fixed(b.to_string().into_bytes())
        }
        None => Body::None,
    };
    http_send("POST", &app.http(path), &headers, body).await
}

#[actix_rt::test]
async fn crowd_labels_train_a_champion_that_every_replica_serves_until_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 300;
    // Three bots label every face; four labels would retire one, so every
    // face stays open for the player who comes after the promotion.
    config.game.min_labels = 4;
    config.model.registry_poll_ms = 100;
    config.truth.spam.min_human_ms = 0;
    let a = spawn_app(config.clone()).await;
    let b = spawn_app(config.clone()).await;
    assert_eq!(serving(&a), BUNDLED);
    assert_eq!(
        a.services.models.champion().await.unwrap().as_deref(),
        Some(BUNDLED),
        "a fresh registry adopts the configured model"
    );

    let truth: HashMap<String, Emotion> = (0..config.demo.images)
        .map(|i| {
            let face = emofy_server::dataset::demo_faces::generate(config.demo.seed, i).unwrap();
            (ImageId::of_bytes(&face.png).to_hex(), face.emotion)
        })
        .collect();
    for k in 0..3usize {
        let mut bot = Bot::join(&a.ws(), &format!("bot{k}")).await;
        let mut answered = 0;
        while let Some(round) = bot.next_round().await {
            let id = round["image"]["id"].as_str().unwrap();
            let drawn = truth[id];
            let byte = usize::from(u8::from_str_radix(&id[..2], 16).unwrap());
            let answer = if (byte + 3 * k) % 10 == 0 {
                Emotion::ALL[(drawn.index() + 1) % 7]
            } else {
                drawn
            };
            bot.answer(&round, answer.as_str()).await;
            answered += 1;
        }
        assert_eq!(answered, 300, "bot {k} labels every face once");
    }
    a.services.rounds.flush().await.unwrap();
    // The periodic truth pass (EM over every label) learns each bot's reliability.
    let (ok, _, err) = emofy(dir.path(), &["admin", "truth-pass"]);
    assert!(ok, "{err}");

    // Training on the crowd's labels, in its own process, on the shared store.
    let (ok, out, err) = emofy(dir.path(), &["train", "--epochs", "3"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let version = v["version"].as_str().unwrap().to_owned();
    assert_eq!(v["parent"], BUNDLED);
    assert_eq!(v["gate"]["promote"], true, "{out}");
    assert_eq!(v["promoted"], true, "{out}");

    // On held-out synthetic faces (another seed, never in the pool) the new
    // champion is far better than the bundled model.
    let held_out = dir.path().join("held-out");
    for i in 0..210 {
        let face = emofy_server::dataset::demo_faces::generate(99, i).unwrap();
        let sub = held_out.join(face.emotion.as_str());
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{i}.png")), &face.png).unwrap();
    }
    let accuracy = |model: &str| -> f64 {
        let (ok, out, err) = emofy(
            dir.path(),
            &[
                "model",
                "evaluate",
                "--model",
                model,
                "--dataset",
                held_out.to_str().unwrap(),
                "--json",
            ],
        );
        assert!(ok, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["evaluation"]["images"], 210);
        v["evaluation"]["accuracy"].as_f64().unwrap()
    };
    let (new, old) = (accuracy(&version), accuracy(BUNDLED));
    assert!(new > old + 0.25, "champion {new} vs bundled {old}");

    // Both replicas notice the new champion and serve it; the rounds of a
    // new player carry it as soon as its guesses are cached.
    until_serving(&b, &version).await;
    until_serving(&a, &version).await;
    let mut player = Bot::join(&b.ws(), "after").await;
    let started = Instant::now();
    loop {
        let round = player.next_round().await.expect("open faces remain");
        let model = round["suggestion"]["model"].clone();
        player.answer(&round, "happy").await;
        if model == version.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "rounds still carry {model}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The console's view, and a rollback through the admin API on B: A follows.
    let admin = moderator_token(&b, Role::Admin).await;
    let bearer = format!("Bearer {admin}");
    let (status, _, listed) = crate::common::http_request(
        "GET",
        &b.http("/api/admin/models"),
        &[("Authorization", bearer.as_str())],
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&listed));
    let page: Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(page["champion"], version.as_str());
    let rows = page["models"].as_array().unwrap();
    let row = |v: &str| rows.iter().find(|r| r["version"] == v).unwrap().clone();
    assert_eq!(row(&version)["state"], "champion");
    assert_eq!(row(&version)["replaced"], BUNDLED);
    assert_eq!(row(&version)["gate"]["promote"], true);
    assert!(row(&version)["test_accuracy"].as_f64().unwrap() > 0.5);
    assert_eq!(row(BUNDLED)["state"], "retired");

    let (status, body) = admin_post(&b, &admin, "/api/admin/models/rollback", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"previous": version, "champion": BUNDLED}));
    assert_eq!(
        serving(&b),
        BUNDLED,
        "the replica that rolled back serves at once"
    );
    until_serving(&a, BUNDLED).await;
    // A rolled-back version needs force to come back; nothing before the
    // bundled model to roll back to.
    let (status, body) = admin_post(
        &b,
        &admin,
        &format!("/api/admin/models/{version}/promote"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("promotion_refused")),
        "{body}"
    );
    let (status, body) = admin_post(&b, &admin, "/api/admin/models/rollback", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (409, json!("promotion_refused")),
        "{body}"
    );
    // The CLI sees the same registry; a forced promotion serves everywhere again.
    let (ok, out, err) = emofy(dir.path(), &["model", "promote", &version, "--force"]);
    assert!(ok, "{err}");
    assert!(out.contains(&version));
    until_serving(&a, &version).await;
    until_serving(&b, &version).await;
    let (ok, out, _) = emofy(dir.path(), &["model", "list", "--json"]);
    assert!(ok);
    let list: Value = serde_json::from_str(&out).unwrap();
    let states: HashMap<String, String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states[&version], "champion");
    assert_eq!(states[BUNDLED], "retired");
    a.stop().await;
    b.stop().await;
}
