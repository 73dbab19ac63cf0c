//! End-to-end: three bots play every round of a small pool on the real app.

use std::collections::HashMap;

use crate::common::*;
use emofy_game::Emotion;
use serde_json::Value;

/// All bots agree on images whose hash starts with an even digit; otherwise each bot names a different emotion.
fn choose(bot: usize, image: &str) -> Emotion {
    let first = u8::from_str_radix(&image[..1], 16).unwrap();
    if first.is_multiple_of(2) {
        Emotion::ALL[usize::from(first) % 7]
    } else {
        Emotion::ALL[bot]
    }
}

fn agreed(image: &str) -> bool {
    u8::from_str_radix(&image[..1], 16)
        .unwrap()
        .is_multiple_of(2)
}

#[actix_rt::test]
async fn three_bots_play_retire_dispute_resume_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.game.min_labels = 3;
    config.game.max_labels = 3;
    config.game.confidence = 0.9;
    let app = spawn_app(config.clone()).await;

    let mut bots = Vec::new();
    for name in ["Ada", "Bea", "Cy"] {
        bots.push(Bot::join(&app.ws(), name).await);
    }

    // Play until nobody has a round left; bots take turns so every image gets its three labels.
    let mut rounds = 0;
    let mut answers: HashMap<String, Vec<Emotion>> = HashMap::new();
    let mut active = [true; 3];
    while active.iter().any(|a| *a) {
        for (i, bot) in bots.iter_mut().enumerate() {
            if !active[i] {
                continue;
            }
            let Some(round) = bot.next_round().await else {
                active[i] = false;
                continue;
            };
            let image = round["image"]["id"].as_str().unwrap().to_owned();
            assert_eq!(round["image"]["url"], format!("/images/{image}"));
            assert!(round["deadline_ms"].as_u64().unwrap() > round["offered_ms"].as_u64().unwrap());
            assert_eq!(round["time_limit_ms"], 15_000);
            // The bundled model classified every image at start-up: rounds show its cached guess.
            let shown = round["suggestion"]["emotion"].as_str().unwrap().to_owned();
            let confidence = round["suggestion"]["confidence"].as_f64().unwrap();
            assert!(confidence > 0.0 && confidence <= 1.0);
            assert!(
                round["suggestion"]["model"]
                    .as_str()
                    .unwrap()
                    .starts_with("mini-xception-fer2013-")
            );
            assert_eq!(
                round["prompt"],
                format!("The predicted emotion is {shown}. Select the correct one!")
            );
            let e = choose(i, &image);
            let result = bot.answer(&round, e.as_str()).await;
            assert_eq!(result["round"], round["round"]);
            assert_eq!(result["emotion"], e.as_str());
            let prior = answers.entry(image.clone()).or_default();
            let expected_agreement = match prior.as_slice() {
                [] => "first_opinion",
                p if p.contains(&e) => "agreed",
                _ => "disagreed",
            };
            assert_eq!(result["agreement"], expected_agreement, "{result}");
            assert_eq!(result["pending"], expected_agreement == "first_opinion");
            prior.push(e);
            assert_eq!(result["image"]["votes"], prior.len());
            let status = match (prior.len(), agreed(&image)) {
                (3, true) => "retired",
                (3, false) => "disputed",
                _ => "open",
            };
            assert_eq!(result["image"]["status"], status, "{result}");
            if status == "retired" {
                assert_eq!(result["image"]["consensus"], e.as_str());
                // Consensus bonus, plus the "corrected the model" bonus when the shown guess was wrong.
                let bonus = if shown == e.as_str() { 5 } else { 5 + 15 };
                assert_eq!(result["settlement"], bonus);
            }
            rounds += 1;
        }
    }
    assert_eq!(rounds, 14 * 3, "every bot saw every image exactly once");
    assert!(rounds >= 30);
    assert!(answers.values().all(|v| v.len() == 3));
    let retired = answers.keys().filter(|k| agreed(k)).count() as u64;
    assert!(
        retired > 0 && retired < 14,
        "the pool has both kinds of image"
    );

    // Every image was offered to each bot at most once and a retired one is never offered again.
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["labels"], 42);
    assert_eq!(stats["retired"], retired);
    assert_eq!(stats["disputed"], 14 - retired);
    assert_eq!(stats["open"], 0);
    for (image, _) in answers.iter().take(3) {
        let meta = get_json(&app.http(&format!("/api/images/{image}"))).await;
        let want = if agreed(image) { "retired" } else { "disputed" };
        assert_eq!(meta["status"], want);
    }

    // Settlements for other players arrive as `score` pushes; let them land, then compare with the board.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for bot in bots.iter_mut() {
        bot.send(serde_json::json!({"type": "leaderboard"})).await;
        let board = loop {
            let v = bot.recv().await;
            if v["type"] == "leaderboard" {
                break v;
            }
        };
        let me = board["you"].clone();
        assert_eq!(me["score"], bot.score, "{board}");
        let top = board["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let scores: Vec<u64> = top.iter().map(|r| r["score"].as_u64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "sorted: {scores:?}"
        );
        let row = top
            .iter()
            .find(|r| r["player"] == bot.player.as_str())
            .unwrap();
        assert_eq!(row["score"], bot.score);
        assert_eq!(row["rank"], me["rank"]);
    }
    let http_board = get_json(&app.http("/api/leaderboard")).await;
    assert_eq!(http_board["players"], 3);

    // Reconnect with the token: same player, same score.
    let (ada_token, ada_id, ada_score) =
        (bots[0].token.clone(), bots[0].player.clone(), bots[0].score);
    drop(bots);
    let (again, welcome) = Bot::resume(&app.ws(), &ada_token).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(again.player, ada_id);
    assert_eq!(again.score, ada_score);
    assert_eq!(welcome["player"]["name"], "Ada");
    drop(again);

    // Stop and start again on the same data dir: everything is still there.
    let before: Value = get_json(&app.http("/api/leaderboard")).await;
    app.stop().await;
    let app = spawn_app(config).await;
    let after = get_json(&app.http("/api/stats")).await;
    assert_eq!(after, stats);
    assert_eq!(get_json(&app.http("/api/leaderboard")).await, before);
    let (mut again, welcome) = Bot::resume(&app.ws(), &ada_token).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(again.player, ada_id);
    assert_eq!(again.score, ada_score);
    // Nothing left to label for Ada, and no image is offered twice after a restart.
    assert!(again.next_round().await.is_none());
    app.stop().await;
}

#[actix_rt::test]
async fn without_a_model_rounds_say_so_instead_of_guessing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.model.enabled = false;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "NoModel").await;
    let round = bot.next_round().await.unwrap();
    assert!(round["suggestion"].is_null());
    assert_eq!(
        round["prompt"],
        "The model has no guess for this face yet. Select the correct emotion!"
    );
    let result = bot.answer(&round, "sad").await;
    assert_eq!(result["type"], "result");
    app.stop().await;
}
