//! Newcomers in the real app, with the default trust rules and the demo
//! faces' drawn emotions as known labels: forty fresh guests voting a line
//! retire nothing and are flagged for moderators, honest newcomers still
//! score and earn full weight, and a bot on a fresh server gets feedback
//! from its first round.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{Bot, TestApp, http_send, moderator_token, spawn_app, test_config};
use emofy_game::{Emotion, ImageId, Role};
use emofy_server::config::Config;
use serde_json::Value;

/// The test config with the production trust rules and known labels.
fn config(dir: &std::path::Path) -> Config {
    let mut c = test_config(dir);
    c.truth.trust = emofy_game::TrustRules::default();
    c
}

/// Each image's drawn emotion (what an honest player sees on a demo face).
async fn drawn(app: &TestApp, image: &str) -> Option<Emotion> {
    let id: ImageId = image.parse().unwrap();
    app.services
        .images
        .image_meta(id)
        .await
        .unwrap()
        .and_then(|m| m.source_label)
}

fn wrong(e: Emotion) -> Emotion {
    Emotion::ALL[(e.index() + 1) % Emotion::ALL.len()]
}

/// Plays up to `rounds` rounds, answering `pick(drawn emotion)` after a
/// human-looking pause; returns the results.
async fn play(
    app: &TestApp,
    bot: &mut Bot,
    rounds: usize,
    pick: impl Fn(Option<Emotion>) -> Emotion,
) -> Vec<Value> {
    let mut results = Vec::new();
    for _ in 0..rounds {
        let Some(round) = bot.next_round().await else {
            break;
        };
        let truth = drawn(app, round["image"]["id"].as_str().unwrap()).await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        results.push(bot.answer(&round, pick(truth).as_str()).await);
    }
    results
}

/// A moderator's GET.
async fn staff_get(app: &TestApp, token: &str, path: &str) -> Value {
    let (s, v) = http_send(
        "GET",
        &app.http(path),
        &[("Authorization", &format!("Bearer {token}"))],
        crate::common::Body::None,
    )
    .await;
    assert_eq!(s, 200, "{path}: {v}");
    v
}

async fn status_counts(app: &TestApp, token: &str) -> Value {
    staff_get(app, token, "/api/moderation/stats").await["status"].clone()
}

#[actix_rt::test]
async fn forty_fresh_guests_voting_a_line_retire_nothing_and_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(dir.path())).await;
    let moderator = moderator_token(&app, Role::Moderator).await;

    // Forty guests, all at once, each answering ten rounds with the class
    // next to the face's drawn one: they agree with each other on every face.
    let mut bots = Vec::new();
    for i in 0..40 {
        bots.push(Bot::join(&app.ws(), &format!("Sock{i}")).await);
    }
    let app_ref = &app;
    let sybil_results: Vec<Vec<Value>> = futures_util::future::join_all(
        bots.iter_mut()
            .map(|b| play(app_ref, b, 10, |t| wrong(t.unwrap_or(Emotion::Happy)))),
    )
    .await;
    let answered: usize = sybil_results.iter().map(Vec::len).sum();
    assert_eq!(answered, 400, "every guest got ten rounds");

    // Not one image retired (or was pushed into the review queue) on their word.
    let status = status_counts(&app, &moderator).await;
    assert_eq!(status["retired"], 0, "{status}");
    assert_eq!(status["disputed"], 0, "{status}");

    // Every one of them is flagged, with a reason a moderator can read.
    let flagged = staff_get(
        &app,
        &moderator,
        "/api/moderation/players?flagged=true&limit=100",
    )
    .await;
    let flagged = flagged["players"].as_array().cloned().unwrap_or_default();
    let sybils: HashMap<&str, ()> = bots.iter().map(|b| (b.player.as_str(), ())).collect();
    let caught: Vec<&Value> = flagged
        .iter()
        .filter(|r| sybils.contains_key(r["player"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(caught.len(), 40, "{flagged:?}");
    for r in &caught {
        assert_eq!(r["flag"], "chance_on_gold", "{r}");
        assert!(
            r["why"].as_str().is_some_and(|w| w.contains("known")),
            "{r}"
        );
        assert_eq!(r["counts"], false, "{r}");
    }

    // Three honest newcomers: they score from their first rounds, are not
    // flagged, earn full weight, and their agreement retires faces.
    let mut honest = Vec::new();
    for name in ["Ada", "Bo", "Cy"] {
        honest.push(Bot::join(&app.ws(), name).await);
    }
    let mut scored = 0;
    for b in &mut honest {
        let results = play(&app, b, 12, |t| t.unwrap_or(Emotion::Happy)).await;
        assert!(results.len() >= 10);
        scored += results
            .iter()
            .filter(|r| r["points"]["total"].as_u64().unwrap_or(0) > 0)
            .count();
        assert!(b.score > 0, "{} scored nothing", b.player);
    }
    assert!(
        scored >= 30,
        "honest newcomers scored on {scored} of their rounds"
    );
    let players = staff_get(&app, &moderator, "/api/moderation/players?limit=100").await;
    for b in &honest {
        let row = players["players"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["player"] == b.player.as_str())
            .unwrap_or_else(|| panic!("{} listed: {players}", b.player));
        assert_eq!(row["counts"], true, "{row}");
        assert!(row["flag"].is_null(), "{row}");
        assert_eq!(row["established"], true, "{row}");
    }
    let status = status_counts(&app, &moderator).await;
    assert!(
        status["retired"].as_u64().unwrap() > 0,
        "honest agreement retires faces: {status}"
    );
    // The earlier labellers of a face that retired hear that their answer
    // was confirmed, and on which face.
    let mut notices = Vec::new();
    for b in honest.iter_mut().take(2) {
        while let Ok(v) = tokio::time::timeout(Duration::from_millis(300), b.recv()).await {
            if v["type"] == "score" {
                notices.push(v);
            }
        }
    }
    assert!(!notices.is_empty(), "no settlement notice");
    for n in &notices {
        assert_eq!(n["reason"], "consensus", "{n}");
        assert!(n["image"].as_str().is_some_and(|i| i.len() == 64), "{n}");
        assert!(n["delta"].as_u64().unwrap() > 0, "{n}");
    }
    app.stop().await;
}

#[actix_rt::test]
async fn a_bot_on_a_fresh_server_gets_feedback_from_its_first_round() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(config(dir.path())).await;
    let mut bot = Bot::join(&app.ws(), "Newbie").await;
    let results = play(&app, &mut bot, 10, |t| t.unwrap_or(Emotion::Happy)).await;
    assert_eq!(results.len(), 10);
    let with_feedback = results
        .iter()
        .filter(|r| {
            r["agreement"] != "first_opinion"
                || r["points"]["total"].as_u64().unwrap_or(0) > 0
                || r["settlement"].as_u64().unwrap_or(0) > 0
        })
        .count();
    assert!(
        with_feedback >= 8,
        "feedback on {with_feedback} of 10: {results:?}"
    );
    for r in &results {
        assert_eq!(r["known"]["source"], "demo", "{r}");
        assert!(r["known"]["label"].is_string(), "{r}");
        assert_eq!(r["pending"], false, "{r}");
    }
    assert!(bot.score > 0);
    app.stop().await;
}
