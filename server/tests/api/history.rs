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
