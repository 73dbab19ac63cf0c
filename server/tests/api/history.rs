//! Label history over HTTP: a player pages their own labels; an image's
//! labels are for moderators only (anonymous 401, players 403).

use crate::common::{Body, Bot, http_send, spawn_app, test_config};
use serde_json::Value;

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http_send("GET", url, &headers, Body::None).await
}

#[actix_rt::test]
async fn players_page_their_labels_and_only_moderators_see_an_images_labels() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let mut ann = Bot::join(&app.ws(), "ann").await;
    let mut images = Vec::new();
    for _ in 0..5 {
        let r = ann.next_round().await.unwrap();
        images.push(r["image"]["id"].as_str().unwrap().to_owned());
        ann.answer(&r, "surprise").await;
    }
    let (status, page) = get(&app.http("/api/me/labels?limit=3"), Some(&ann.token)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["labels"].as_array().unwrap().len(), 3);
    assert_eq!(
        page["labels"][0]["image"]["id"],
        images[4].as_str(),
        "newest first"
    );
    let next = page["next"].as_str().unwrap();
    let (_, rest) = get(
        &app.http(&format!("/api/me/labels?limit=3&after={next}")),
        Some(&ann.token),
    )
    .await;
    assert_eq!(rest["labels"].as_array().unwrap().len(), 2);
    assert_eq!(rest["next"], Value::Null);
    assert_eq!(rest["labels"][1]["emotion"], "surprise");
    assert_eq!(get(&app.http("/api/me/labels"), None).await.0, 401);

    let path = format!("/api/images/{}/labels", images[0]);
    let (status, body) = get(&app.http(&path), None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = get(&app.http(&path), Some(&ann.token)).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    // A moderator sees who labelled what.
    let hash = emofy_server::auth::hash_password("moderator password 1").unwrap();
    let moderator = emofy_game::PlayerId(uuid::Uuid::new_v4());
    app.services
        .players
        .create_account(
            emofy_server::store::AccountRecord {
                username: "mo".into(),
                player: moderator,
                password_hash: hash,
                role: emofy_game::Role::Moderator,
                failures: Default::default(),
            },
            "Mo",
            emofy_game::Millis(1),
        )
        .await
        .unwrap();
    let (_, login) = http_send(
        "POST",
        &app.http("/api/login"),
        &[("Content-Type", "application/json")],
        Body::Fixed(br#"{"username": "mo", "password": "moderator password 1"}"#.to_vec()),
    )
    .await;
    let (status, body) = get(&app.http(&path), login["token"].as_str()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["labels"][0]["player"], ann.player.as_str());
    app.stop().await;
}

#[actix_rt::test]
async fn players_see_how_their_answers_compare_with_the_serving_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 6;
    let app = spawn_app(config.clone()).await;
    let truth: std::collections::HashMap<String, emofy_game::Emotion> = (0..config.demo.images)
        .map(|i| {
            let face = emofy_server::dataset::demo_faces::generate(config.demo.seed, i).unwrap();
            (
                emofy_game::ImageId::of_bytes(&face.png).to_hex(),
                face.emotion,
            )
        })
        .collect();
    // One player answers every face wrongly, then three answer every face
    // they are offered with its drawn emotion: each face retires with it.
    let mut tokens = Vec::new();
    for name in ["dan", "ann", "bob", "cy"] {
        let mut bot = Bot::join(&app.ws(), name).await;
        while let Some(r) = bot.next_round().await {
            let drawn = truth[r["image"]["id"].as_str().unwrap()];
            let answer = if name == "dan" {
                emofy_game::Emotion::ALL[(drawn.index() + 1) % 7]
            } else {
                drawn
            };
            bot.answer(&r, answer.as_str()).await;
        }
        tokens.push(bot.token.clone());
    }
    let (status, ann) = get(&app.http("/api/me/versus-model"), Some(&tokens[1])).await;
    assert_eq!(status, 200, "{ann}");
    let version = "mini-xception-fer2013-7ddc075e901e";
    assert_eq!(ann["model"]["version"], version);
    // What the answer must count, read from the store: settled faces with
    // a cached guess, and how many of those guesses are right.
    let (mut settled, mut guessed_right) = (0u64, 0u64);
    for (hex, drawn) in &truth {
        let id: emofy_game::ImageId = hex.parse().unwrap();
        let meta = app.services.images.image_meta(id).await.unwrap().unwrap();
        let done =
            meta.gold.is_some() || matches!(meta.status, emofy_game::ImageStatus::Retired { .. });
        if let (true, Some(p)) = (
            done,
            app.services.images.prediction(id, version).await.unwrap(),
        ) {
            settled += 1;
            guessed_right += u64::from(p.top() == *drawn);
        }
    }
    assert!(settled >= 3, "settled faces with a guess: {settled}");
    let faces = ann["faces"].as_u64().unwrap();
    assert_eq!(faces, settled, "{ann}");
    assert_eq!(ann["you_right"], faces, "{ann}");
    assert_eq!(ann["model_beat_you"], 0);
    let (model_right, beat) = (
        ann["model_right"].as_u64().unwrap(),
        ann["you_beat_model"].as_u64().unwrap(),
    );
    assert_eq!(model_right, guessed_right, "{ann}");
    assert_eq!(model_right + beat, faces, "{ann}");
    let share = ann["beat_share"].as_f64().unwrap();
    assert!((share - beat as f64 / faces as f64).abs() < 1e-9);

    let (_, dan) = get(&app.http("/api/me/versus-model"), Some(&tokens[0])).await;
    assert_eq!(dan["faces"], faces, "{dan}");
    assert_eq!(dan["you_right"], 0);
    assert_eq!(dan["you_beat_model"], 0);
    assert_eq!(dan["model_beat_you"], model_right);

    // Someone with no labels yet: nothing to compare.
    let eve = Bot::join(&app.ws(), "eve").await;
    let (_, e) = get(&app.http("/api/me/versus-model"), Some(&eve.token)).await;
    assert_eq!(
        (e["faces"].as_u64(), e["beat_share"].clone()),
        (Some(0), Value::Null)
    );
    assert_eq!(get(&app.http("/api/me/versus-model"), None).await.0, 401);
}
