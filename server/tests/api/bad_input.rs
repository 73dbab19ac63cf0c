//! Bad input over the socket gets documented error codes; the session survives where it should,
//! and no label is recorded for a rejected answer.

use std::time::Duration;

use crate::common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(bot: &mut Bot, code: &str) -> serde_json::Value {
    let v = bot.recv_type("error").await;
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    v
}

#[actix_rt::test]
async fn hello_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let mut ws = Bot::connect(&app.ws()).await;
    let cases = [
        (json!({"type": "next"}), "not_joined"),
        (
            json!({"type": "hello", "v": 2, "name": "Ann"}),
            "unsupported_version",
        ),
        (
            json!({"type": "hello", "v": 1, "name": "bell\u{7}"}),
            "invalid_name",
        ),
        (
            json!({"type": "hello", "v": 1, "name": {"$gt": ""}}),
            "invalid_message",
        ),
        (
            json!({"type": "hello", "v": 1, "token": "v1.abc.def"}),
            "invalid_token",
        ),
        (json!({"type": "hello", "v": 1}), "invalid_message"),
    ];
    for (msg, code) in cases {
        send(&mut ws, msg).await;
        let v = recv(&mut ws).await;
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["code"], code, "{v}");
    }
    // The same connection can still join, and only once.
    send(&mut ws, json!({"type": "hello", "v": 1, "name": "Ann"})).await;
    recv_type(&mut ws, "welcome").await;
    send(&mut ws, json!({"type": "hello", "v": 1, "name": "Ann"})).await;
    let v = recv_type(&mut ws, "error").await;
    assert_eq!(v["code"], "already_joined");
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["players"], 1, "refused hellos create nobody");
    app.stop().await;
}

#[actix_rt::test]
async fn bad_frames_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.game.round_seconds = 1;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "Tester").await;

    bot.ws
        .send(Message::text("this is not json"))
        .await
        .unwrap();
    expect_error(&mut bot, "bad_json").await;
    bot.send(json!({"type": "dance"})).await;
    expect_error(&mut bot, "unknown_type").await;
    bot.send(json!({"type": "answer", "round": "nope", "emotion": "happy"}))
        .await;
    expect_error(&mut bot, "invalid_message").await;
    bot.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    expect_error(&mut bot, "binary_not_supported").await;

    // An answer for a round never offered.
    bot.send(json!({"type": "answer", "round": uuid::Uuid::new_v4(), "emotion": "happy"}))
        .await;
    let v = expect_error(&mut bot, "round_not_offered").await;
    assert!(v["round"].is_string());

    // An invalid emotion for a real round.
    let round = bot.next_round().await.unwrap();
    bot.send(json!({"type": "answer", "round": round["round"], "emotion": "contempt"}))
        .await;
    expect_error(&mut bot, "invalid_message").await;
    // The round is still open: answer it, then answer again.
    let result = bot.answer(&round, "happy").await;
    assert_eq!(result["round"], round["round"]);
    bot.send(json!({"type": "answer", "round": round["round"], "emotion": "sad"}))
        .await;
    expect_error(&mut bot, "already_answered").await;

    // An answer after the deadline: the server times the round out first.
    let late = bot.next_round().await.unwrap();
    let timeout = bot.recv_type("round_timeout").await;
    assert_eq!(timeout["round"], late["round"]);
    bot.send(json!({"type": "answer", "round": late["round"], "emotion": "happy"}))
        .await;
    expect_error(&mut bot, "round_expired").await;

    // Only the one accepted answer became a label.
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["labels"], 1);

    // The session survived all of that.
    assert!(bot.next_round().await.is_some());

    // An oversized frame: error, then the connection is closed with a goodbye.
    bot.ws
        .send(Message::text("x".repeat(10_000)))
        .await
        .unwrap();
    expect_error(&mut bot, "frame_too_large").await;
    let bye = bot.recv().await;
    assert_eq!(bye["type"], "bye");
    assert_eq!(bye["reason"], "frame_too_large");
    app.stop().await;
}

#[actix_rt::test]
async fn flood_is_rate_limited_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.session.rate_per_sec = 10;
    config.session.rate_burst = 5;
    config.session.max_violations = 1000;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "Flooder").await;
    for _ in 0..40 {
        bot.ws
            .send(Message::text(r#"{"type":"leaderboard"}"#))
            .await
            .unwrap();
    }
    let mut boards = 0;
    let mut limited = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), bot.recv()).await {
            Ok(v) if v["type"] == "leaderboard" => boards += 1,
            Ok(v) if v["code"] == "rate_limited" => limited += 1,
            Ok(v) => panic!("unexpected {v}"),
            Err(_) => break,
        }
    }
    assert_eq!(limited, 1, "one notice per second, not one per message");
    // The welcome's board, plus the burst allowance left after `hello` (4), plus a token or two refilled meanwhile.
    assert!(
        (1 + 4..=1 + 6).contains(&boards),
        "boards answered: {boards}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        bot.next_round().await.is_some(),
        "the session works again once the flood stops"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_persistent_flood_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.session.rate_per_sec = 1;
    config.session.rate_burst = 1;
    config.session.max_violations = 20;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "Flooder").await;
    for _ in 0..40 {
        if bot
            .ws
            .send(Message::text(r#"{"type":"leaderboard"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut bye = None;
    for _ in 0..50 {
        let v = bot.recv().await;
        if v["type"] == "bye" {
            bye = Some(v);
            break;
        }
    }
    assert_eq!(bye.unwrap()["reason"], "rate_limited");
    app.stop().await;
}

#[actix_rt::test]
async fn silent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.session.heartbeat_secs = 1;
    config.session.client_timeout_secs = 5;
    config.session.hello_timeout_secs = 1;
    config.session.idle_timeout_secs = 2;
    let app = spawn_app(config).await;

    // Never says hello.
    let mut ws = Bot::connect(&app.ws()).await;
    let bye = recv_type(&mut ws, "bye").await;
    assert_eq!(bye["reason"], "hello_timeout");

    // Joins, then sends no game messages (pongs keep the connection alive, not the player).
    let mut bot = Bot::join(&app.ws(), "Sleepy").await;
    let bye = bot.recv_type("bye").await;
    assert_eq!(bye["reason"], "idle");
    app.stop().await;
}
