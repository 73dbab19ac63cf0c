//! Leaderboards across replicas and through a Redis outage, with the real
//! app: two `Application`s sharing one Redis (and one data dir) see each
//! other's scores live; a Redis that dies mid-play loses nothing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Bot, get_json, spawn_app, test_config};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_config(dir: &std::path::Path, url: &str, prefix: &str) -> emofy_server::Config {
    let mut c = test_config(dir);
    c.redis.url = Some(url.to_owned());
    c.redis.prefix = prefix.to_owned();
    c.redis.timeout_ms = 200;
    c
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn viewer(port: u16, sub: Value) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/leaderboard"))
            .await
            .unwrap();
    ws.send(Message::text(sub.to_string())).await.unwrap();
    ws
}

async fn next_board(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a board message within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["type"], "board", "{v}");
            return v;
        }
    }
}

#[actix_rt::test]
async fn a_score_on_replica_a_reaches_a_viewer_on_replica_b_within_250_ms() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("emofy-test-{}", Uuid::new_v4().simple());
    let mut config = redis_config(dir.path(), &redis_url(), &prefix);
    config.demo.images = 1;
    let a = spawn_app(config.clone()).await;
    let b = spawn_app(config).await;

    let mut watcher = viewer(
        b.port,
        json!({"type": "subscribe", "period": "all_time", "top": 5}),
    )
    .await;
    let snapshot = next_board(&mut watcher).await;
    assert_eq!(snapshot["top"], json!([]));
    assert_eq!(snapshot["stale"], false);

    // Two players on A label the one image alike: the second earns points at once.
    let mut first = Bot::join(&a.ws(), "first").await;
    let mut second = Bot::join(&a.ws(), "second").await;
    let r = first.next_round().await.unwrap();
    first.answer(&r, "happy").await;
    let r = second.next_round().await.unwrap();
    let result = second.answer(&r, "happy").await;
    let scored_at = Instant::now();
    assert!(result["points"]["total"].as_u64().unwrap() > 0, "{result}");

    let update = loop {
        let v = next_board(&mut watcher).await;
        if v["top"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["player"] == second.player.as_str())
        {
            break v;
        }
    };
    let latency = scored_at.elapsed();
    assert!(
        latency < Duration::from_millis(250),
        "seen on B after {latency:?}"
    );
    assert_eq!(update["top"][0]["name"], "second");
    assert!(
        update["changes"]["entered"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == second.player.as_str())
    );

    // Both replicas serve the same board over HTTP.
    let on_a = get_json(&a.http("/api/leaderboards/global?period=daily")).await;
    let on_b = get_json(&b.http("/api/leaderboards/global?period=daily")).await;
    assert_eq!(on_a["top"], on_b["top"]);
    assert_eq!(on_b["top"][0]["player"], second.player.as_str());
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn viewers_get_a_snapshot_and_their_own_rank_on_the_embedded_board() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 1;
    let app = spawn_app(config).await;
    let mut first = Bot::join(&app.ws(), "first").await;
    let mut second = Bot::join(&app.ws(), "second").await;
    let mut watcher = viewer(
        app.port,
        json!({"type": "subscribe", "period": "weekly", "top": 3, "token": second.token}),
    )
    .await;
    let snap = next_board(&mut watcher).await;
    assert_eq!(
        (snap["period"].as_str(), snap["you"].clone()),
        (Some("weekly"), Value::Null)
    );
    let r = first.next_round().await.unwrap();
    first.answer(&r, "sad").await;
    let r = second.next_round().await.unwrap();
    second.answer(&r, "sad").await;
    let update = loop {
        let v = next_board(&mut watcher).await;
        if !v["you"].is_null() {
            break v;
        }
    };
    assert_eq!(update["you"]["rank"], 1);
    assert_eq!(update["you"]["score"], second.score);
    // Bad subscriptions get clear errors.
    let mut bad = viewer(app.port, json!({"type": "subscribe", "period": "monthly"})).await;
    let err = loop {
        if let Message::Text(t) = bad.next().await.unwrap().unwrap() {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(err["code"], "invalid_message");
    let (status, body) =
        crate::common::http_get(&app.http("/api/leaderboards/rooms?period=daily")).await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

struct RedisProcess {
    child: Child,
}

impl RedisProcess {
    fn start(port: u16, dir: &std::path::Path) -> RedisProcess {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        RedisProcess { child }
    }

    async fn wait_up(port: u16) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on {port} did not start");
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn play(bots: &mut [Bot], rounds: usize) -> usize {
    let mut answered = 0;
    for _ in 0..rounds {
        for bot in bots.iter_mut() {
            if let Some(r) = bot.next_round().await {
                let res = bot.answer(&r, "happy").await;
                assert_eq!(res["type"], "result", "{res}");
                answered += 1;
            }
        }
    }
    answered
}

#[actix_rt::test]
async fn play_continues_through_a_redis_outage_and_no_score_is_lost() {
    outage(100_000).await;
}

/// A buffer too small for the outage: the board is rebuilt from the store's score ledger.
#[actix_rt::test]
async fn an_outage_longer_than_the_buffer_is_replayed_from_the_ledger() {
    outage(3).await;
}

async fn outage(buffer: usize) {
    let redis_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = RedisProcess::start(port, redis_dir.path());
    RedisProcess::wait_up(port).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = redis_config(dir.path(), &url, "emofy-fault");
    // Few images: truth routing gives every image a first (unscored) label before a second one.
    config.demo.images = 10;
    config.leaderboard.buffer = buffer;
    let app = spawn_app(config).await;
    let mut bots = Vec::new();
    for name in ["ana", "ben", "cy"] {
        bots.push(Bot::join(&app.ws(), name).await);
    }
    assert!(play(&mut bots, 4).await > 0);
    let board = get_json(&app.http("/api/leaderboards/global")).await;
    assert_eq!(board["stale"], false);

    // Redis dies mid-play: every answer is still accepted and scored.
    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    let during = play(&mut bots, 4).await;
    assert!(during > 0);
    let buffer = app.services.board_buffer.clone().unwrap();
    assert!(buffer.is_stale());
    let board = get_json(&app.http("/api/leaderboards/global")).await;
    assert_eq!(board["stale"], true, "{board}");

    // Redis comes back (with what it had on disk); the buffer drains.
    let _redis = RedisProcess::start(port, redis_dir.path());
    RedisProcess::wait_up(port).await;
    let started = Instant::now();
    while buffer.is_stale() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the buffer drains"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(play(&mut bots, 2).await > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Score pushes for settlements other players caused may still be on the way.
    for bot in bots.iter_mut() {
        while tokio::time::timeout(Duration::from_millis(300), bot.recv())
            .await
            .is_ok()
        {}
    }
    // Final scores: the board equals the store's totals equals what each player was told.
    let board = get_json(&app.http("/api/leaderboards/global?limit=10")).await;
    assert_eq!(board["stale"], false);
    for bot in &bots {
        let id: emofy_game::PlayerId = bot.player.parse().unwrap();
        let stored = app
            .services
            .players
            .player(id)
            .await
            .unwrap()
            .unwrap()
            .tally
            .score;
        let row = board["top"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["player"] == bot.player.as_str())
            .cloned()
            .unwrap_or(json!({"score": 0}));
        assert_eq!(
            row["score"].as_u64().unwrap(),
            stored,
            "{} on the board",
            bot.player
        );
        assert_eq!(bot.score, stored, "{} as told", bot.player);
    }

    // The score ledger alone rebuilds the same board (`emofy admin rebuild-leaderboard`).
    let rebuilt = emofy_server::leaderboard::redis::RedisLeaderboard::connect(
        &url,
        "emofy-rebuilt",
        Duration::from_secs(3600),
        Duration::from_secs(2),
    )
    .unwrap();
    emofy_server::leaderboard::replay_ledger(
        app.services.rounds.as_ref(),
        &rebuilt,
        emofy_game::Millis(0),
    )
    .await
    .unwrap();
    use emofy_server::store::Leaderboard;
    let all = emofy_game::Period::AllTime.bucket(emofy_server::clock::now());
    let rows = rebuilt.top(&all, 10).await.unwrap();
    for bot in &bots {
        let id: emofy_game::PlayerId = bot.player.parse().unwrap();
        let score = rows.iter().find(|r| r.player == id).map_or(0, |r| r.score);
        assert_eq!(score, bot.score, "{} rebuilt from the ledger", bot.player);
    }
    app.stop().await;
}
