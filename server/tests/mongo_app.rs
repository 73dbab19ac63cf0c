//! The real app on MongoDB (tests run against the MongoDB-wire-compatible
//! SecantusDB that `scripts/test.sh` starts; the code uses only the standard
//! driver API): play and resume across a restart, operator-shaped input
//! everywhere a string is expected, and a store outage that answers
//! `try_again` instead of a false acknowledgement.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Body, Bot, get_json, http_send, spawn_app, test_config};
use serde_json::{Value, json};
use uuid::Uuid;

fn mongo_uri() -> String {
    std::env::var("TEST_MONGODB_URI").unwrap_or_else(|_| {
        "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false".into()
    })
}

fn mongo_config(dir: &std::path::Path, uri: &str, db: &str) -> emofy_server::Config {
    let mut c = test_config(dir);
    c.mongodb_uri = Some(uri.to_owned());
    c.mongodb_database = db.to_owned();
    c
}

async fn drop_db(uri: &str, db: &str) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    client.database(db).drop().await.unwrap();
}

#[actix_rt::test]
async fn play_on_mongodb_and_resume_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("emofy_app_{}", Uuid::new_v4().simple());
    let config = mongo_config(dir.path(), &mongo_uri(), &db);
    let app = spawn_app(config.clone()).await;
    let mut ada = Bot::join(&app.ws(), "ada").await;
    let mut bo = Bot::join(&app.ws(), "bo").await;
    for _ in 0..5 {
        let r = ada.next_round().await.unwrap();
        ada.answer(&r, "happy").await;
        let r = bo.next_round().await.unwrap();
        bo.answer(&r, "happy").await;
    }
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["labels"], 10, "{stats}");
    assert_eq!(stats["images"], 14);
    let score = bo.score;
    let token = bo.token.clone();
    app.stop().await;

    // A new process on the same database: the player resumes with their score.
    let app = spawn_app(config).await;
    let (bo, welcome) = Bot::resume(&app.ws(), &token).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(bo.score, score);
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(
        (stats["labels"].clone(), stats["images"].clone()),
        (json!(10), json!(14))
    );
    app.stop().await;
    drop_db(&mongo_uri(), &db).await;
}

#[actix_rt::test]
async fn operator_shaped_input_is_only_ever_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("emofy_app_{}", Uuid::new_v4().simple());
    let app = spawn_app(mongo_config(dir.path(), &mongo_uri(), &db)).await;
    let mut bot = Bot::join(&app.ws(), "eve").await;
    // Where the protocol wants a string, an object is a clear error.
    for msg in [
        json!({"type": "hello", "v": 1, "name": {"$gt": ""}}),
        json!({"type": "answer", "round": {"$ne": null}, "emotion": "happy"}),
        json!({"type": "answer", "round": "x", "emotion": {"$in": ["happy"]}}),
    ] {
        bot.send(msg).await;
        let v = bot.recv_type("error").await;
        assert!(
            matches!(
                v["code"].as_str(),
                Some("invalid_message") | Some("already_joined")
            ),
            "{v}"
        );
    }
    let login = |body: Value| {
        let url = app.http("/api/login");
        async move {
            http_send(
                "POST",
                &url,
                &[("Content-Type", "application/json")],
                Body::Fixed(serde_json::to_vec(&body).unwrap()),
            )
            .await
        }
    };
    let (status, _) = login(json!({"username": {"$gt": ""}, "password": {"$gt": ""}})).await;
    assert_eq!(status, 400);
    let (status, body) = login(json!({"username": "{\"$gt\": \"\"}", "password": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    for path in [
        "/api/images/%7B%22$gt%22:%22%22%7D",
        "/images/$gt",
        "/api/leaderboard?player=%7B%22$gt%22:1%7D",
    ] {
        let (status, _) = common::http_get(&app.http(path)).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    // Nothing leaked or changed: one player, no labels.
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(
        (stats["players"].clone(), stats["labels"].clone()),
        (json!(1), json!(0))
    );
    app.stop().await;
    drop_db(&mongo_uri(), &db).await;
}

struct Secantus(Child);

impl Secantus {
    fn start(port: u16, storage: &std::path::Path) -> Secantus {
        let exe = std::env::var("TEST_SECANTUSD").unwrap_or_else(|_| {
            let cache = std::env::var("TEST_CACHE_DIR").unwrap_or_else(|_| {
                format!("{}/.cache/emofy", std::env::var("HOME").unwrap_or_default())
            });
            format!("{cache}/secantus-venv/bin/secantusd-py")
        });
        let child = Command::new(exe)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-level",
                "WARNING",
            ])
            .arg("--storage-path")
            .arg(storage)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("secantusd-py (scripts/test.sh installs it)");
        Secantus(child)
    }

    async fn wait_up(port: u16) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("secantusd on {port} did not start");
    }
}

impl Drop for Secantus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn a_store_outage_answers_try_again_and_play_resumes() {
    let storage = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!(
        "mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false&serverSelectionTimeoutMS=1500"
    );
    let mut server = Secantus::start(port, storage.path());
    Secantus::wait_up(port).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = mongo_config(dir.path(), &uri, "emofy_outage");
    config.game.round_seconds = 60;
    let app = spawn_app(config).await;
    let mut ada = Bot::join(&app.ws(), "ada").await;
    let r = ada.next_round().await.unwrap();
    ada.answer(&r, "sad").await;
    let round = ada.next_round().await.unwrap();

    // The store goes away: the answer is refused with try_again, never acknowledged.
    let _ = server.0.kill();
    let _ = server.0.wait();
    ada.send(json!({"type": "answer", "round": round["round"], "emotion": "sad"}))
        .await;
    let v = ada.recv_type("error").await;
    assert_eq!(v["code"], "try_again", "{v}");

    // It comes back with its data: the same answer now goes through.
    server = Secantus::start(port, storage.path());
    Secantus::wait_up(port).await;
    let mut result = Value::Null;
    for _ in 0..20 {
        ada.send(json!({"type": "answer", "round": round["round"], "emotion": "sad"}))
            .await;
        let v = loop {
            let v = ada.recv().await;
            if matches!(v["type"].as_str(), Some("result") | Some("error")) {
                break v;
            }
        };
        if v["type"] == "result" {
            result = v;
            break;
        }
        assert_eq!(v["code"], "try_again", "{v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(result["type"], "result", "play resumes");
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["labels"], 2, "{stats}");
    app.stop().await;
    drop(server);
}
