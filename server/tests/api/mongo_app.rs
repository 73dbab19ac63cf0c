//! The real app on MongoDB (tests run against the MongoDB-wire-compatible
//! SecantusDB that `scripts/test.sh` starts; the code uses only the standard
//! driver API): play and resume across a restart, operator-shaped input
//! everywhere a string is expected, and a store outage that answers
//! `try_again` instead of a false acknowledgement.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Body, Bot, get_json, http_send, mongo_uri, spawn_app, test_config};
use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

fn mongo_config(dir: &std::path::Path, uri: &str, db: &str) -> emofy_server::Config {
    let mut c = test_config(dir);
    c.storage.mongodb.uri = Some(uri.to_owned());
    c.storage.mongodb.database = db.to_owned();
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
        let (status, _) = crate::common::http_get(&app.http(path)).await;
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

/// `emofy serve` on MongoDB, as a process we can kill.
fn start_server(data: &std::path::Path, uri: &str, db: &str) -> (Child, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args([
            "serve",
            "--port",
            "0",
            "--demo-images",
            "40",
            "--log-filter",
            "warn",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("EMOFY_STORAGE__MONGODB__URI", uri)
        .env("EMOFY_STORAGE__MONGODB__DATABASE", db)
        .env("EMOFY_MODEL__ENABLED", "false")
        .env("EMOFY_SESSION__RATE_PER_SEC", "1000")
        .env("EMOFY_NET__EXEMPT_LOOPBACK", "true")
        .env("EMOFY_SESSION__RATE_BURST", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn emofy");
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    (child, port)
}

/// Bots answer as fast as they can; the server is SIGKILLed mid-stream; every
/// answer whose `result` a bot received is in MongoDB afterwards, as answered.
#[actix_rt::test]
async fn every_acknowledged_answer_survives_sigkill() {
    // Its own database server: the killed client leaves a transaction open
    // there, which must not disturb the other tests' server.
    let storage = tempfile::tempdir().unwrap();
    let db_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uri = format!("mongodb://127.0.0.1:{db_port}/?directConnection=true&retryWrites=false");
    let database = Secantus::start(db_port, storage.path());
    Secantus::wait_up(db_port).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("emofy_crash_{}", Uuid::new_v4().simple());
    let (mut server, port) = start_server(dir.path(), &uri, &db);
    let url = format!("ws://127.0.0.1:{port}/ws/play");
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String, String)>::new()));
    let mut bots = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        let acked = acked.clone();
        bots.push(actix_rt::spawn(async move {
            let mut bot = Bot::join(&url, &format!("bot{i}")).await;
            let emotions = ["happy", "sad", "angry", "fear"];
            let mut k = 0;
            loop {
                bot.send(json!({"type": "next"})).await;
                let round = loop {
                    let v = match tokio::time::timeout(Duration::from_secs(5), bot.ws.next()).await
                    {
                        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                            serde_json::from_str::<Value>(&t).unwrap()
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => return,
                    };
                    match v["type"].as_str() {
                        Some("round") => break v,
                        Some("no_round") => return,
                        _ => continue,
                    }
                };
                let emotion = emotions[k % 4];
                k += 1;
                bot.send(json!({"type": "answer", "round": round["round"], "emotion": emotion}))
                    .await;
                loop {
                    let v = match tokio::time::timeout(Duration::from_secs(5), bot.ws.next()).await
                    {
                        Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                            serde_json::from_str::<Value>(&t).unwrap()
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => return,
                    };
                    if v["type"] == "result" {
                        acked.lock().unwrap().push((
                            round["round"].as_str().unwrap().to_owned(),
                            bot.player.clone(),
                            emotion.to_owned(),
                        ));
                        break;
                    }
                    if v["type"] == "error" {
                        break;
                    }
                }
            }
        }));
    }
    // Let answers flow, then kill the server without warning.
    let started = std::time::Instant::now();
    while acked.lock().unwrap().len() < 30 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    for b in bots {
        let _ = b.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 30,
        "answers flowed before the kill ({})",
        acked.len()
    );

    let check = async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let labels = client
            .database(&db)
            .collection::<mongodb::bson::Document>("labels");
        for (round, player, emotion) in &acked {
            let label = labels
                .find_one(mongodb::bson::doc! {"_id": round})
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged answer {round} is missing"));
            assert_eq!(label.get_str("player_id").unwrap(), player);
            assert_eq!(label.get_str("emotion").unwrap(), emotion);
        }
        let stored = labels
            .count_documents(mongodb::bson::doc! {})
            .await
            .unwrap();
        assert!(stored as usize >= acked.len());
    };
    tokio::time::timeout(Duration::from_secs(60), check)
        .await
        .expect("the test database answers after the kill");
    drop(database);
}

/// `emofy migrate --from embedded --to mongodb`: a player who played on the
/// embedded store resumes on MongoDB with the same score; the counts match;
/// running it again changes nothing.
#[actix_rt::test]
async fn an_embedded_data_dir_migrates_into_mongodb() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let mut ada = Bot::join(&app.ws(), "ada").await;
    let mut bo = Bot::join(&app.ws(), "bo").await;
    for _ in 0..6 {
        let r = ada.next_round().await.unwrap();
        ada.answer(&r, "fear").await;
        let r = bo.next_round().await.unwrap();
        bo.answer(&r, "fear").await;
    }
    let before = get_json(&app.http("/api/stats")).await;
    let (score, token) = (bo.score, bo.token.clone());
    // Truth-inference state moves too: reliabilities and posteriors.
    let reliabilities = app.services.review.reliabilities(false, 100).await.unwrap();
    assert_eq!(reliabilities.len(), 2);
    let candidates = app.services.review.review_candidates(100).await.unwrap();
    app.stop().await;

    let db = format!("emofy_migrate_{}", Uuid::new_v4().simple());
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
            .args(["migrate", "--from", "embedded", "--to", "mongodb"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("EMOFY_STORAGE__MONGODB__URI", mongo_uri())
            .env("EMOFY_STORAGE__MONGODB__DATABASE", &db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("labels: 12"));
    }
    let app = spawn_app(mongo_config(dir.path(), &mongo_uri(), &db)).await;
    let after = get_json(&app.http("/api/stats")).await;
    assert_eq!(after, before);
    let moved = app.services.review.reliabilities(false, 100).await.unwrap();
    let key = |v: &Vec<emofy_server::store::PlayerReliability>| {
        let mut k: Vec<(String, u32)> = v
            .iter()
            .map(|r| (r.player.to_string(), r.reliability.answers))
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&moved), key(&reliabilities));
    let moved = app.services.review.review_candidates(100).await.unwrap();
    assert_eq!(moved.len(), candidates.len());
    for c in &candidates {
        let m = moved.iter().find(|m| m.meta.id == c.meta.id).unwrap();
        assert_eq!(m.posterior, c.posterior);
    }
    let (mut bo, welcome) = Bot::resume(&app.ws(), &token).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(bo.score, score);
    // Play goes on, and never repeats an image the player saw before the move.
    let seen_before = 6;
    let mut fresh = 0;
    while let Some(r) = bo.next_round().await {
        bo.answer(&r, "fear").await;
        fresh += 1;
    }
    assert_eq!(fresh, 14 - seen_before);
    app.stop().await;
    drop_db(&mongo_uri(), &db).await;
}
