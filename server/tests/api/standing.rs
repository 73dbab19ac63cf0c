//! Where a caller stands is read from the store, not from their token: an
//! admin's demotion, promotion or ban takes effect on the player's next
//! request, on another replica too (two apps on one store), and a banned
//! player can neither play on nor upload, while their own data stays theirs
//! to read.

use crate::common::{
    Body, Bot, TestApp, http_send, moderator_token, spawn_app, test_config, token_for,
};
use crate::uploads::{face_photos, jpeg, upload};
use emofy_game::Role;
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    let body = match body {
        Some(b) => {
            headers.push(("Content-Type", "application/json"));
            Body::Fixed(b.to_string().into_bytes())
        }
        None => Body::None,
    };
    http_send(method, &app.http(path), &headers, body).await
}

/// Two replicas on one SQLite store (one data directory, one token key).
async fn two_replicas() -> (TestApp, TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let a = spawn_app(config.clone()).await;
    let b = spawn_app(config).await;
    (a, b, dir)
}

#[actix_rt::test]
async fn a_demoted_moderator_is_refused_on_the_next_request_on_another_replica() {
    let (a, b, _dir) = two_replicas().await;
    let admin = moderator_token(&a, Role::Admin).await;
    let (mo, mo_token) = token_for(&a, Role::Moderator, "Mo").await;
    assert_eq!(
        call(&b, "GET", "/api/moderation/audit", &mo_token, None)
            .await
            .0,
        200
    );

    let (s, v) = call(
        &a,
        "POST",
        &format!("/api/admin/players/{mo}/role"),
        &admin,
        Some(json!({"role": "player"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["from"], "moderator");
    assert_eq!(v["role"], "player");
    // The same token, still valid for days: the store says player now.
    let (s, v) = call(&b, "GET", "/api/moderation/audit", &mo_token, None).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["code"], "forbidden");
    let (s, _) = call(&a, "GET", "/api/moderation/queue", &mo_token, None).await;
    assert_eq!(s, 403);
    // Audited, with the roles before and after.
    let (_, audit) = call(&a, "GET", "/api/moderation/audit", &admin, None).await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "set_role", "{audit}");
    assert_eq!(entry["target"], mo.to_string());
    assert_eq!(entry["detail"]["from"], "moderator");
    assert_eq!(entry["detail"]["to"], "player");

    // A promotion takes effect at once as well, and a moderator cannot set roles.
    let (pat, pat_token) = token_for(&a, Role::Player, "Pat").await;
    assert_eq!(
        call(&b, "GET", "/api/moderation/audit", &pat_token, None)
            .await
            .0,
        403
    );
    let (s, _) = call(
        &a,
        "POST",
        &format!("/api/admin/players/{pat}/role"),
        &admin,
        Some(json!({"role": "moderator"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(&b, "GET", "/api/moderation/audit", &pat_token, None)
            .await
            .0,
        200
    );
    let (s, v) = call(
        &b,
        "POST",
        &format!("/api/admin/players/{mo}/role"),
        &pat_token,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!((s, v["code"].clone()), (403, json!("forbidden")));
    // A role that does not exist is a bad request, an unknown player not found.
    let (s, v) = call(
        &a,
        "POST",
        &format!("/api/admin/players/{pat}/role"),
        &admin,
        Some(json!({"role": "king"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let nobody = uuid::Uuid::new_v4();
    let (s, _) = call(
        &a,
        "POST",
        &format!("/api/admin/players/{nobody}/role"),
        &admin,
        Some(json!({"role": "player"})),
    )
    .await;
    assert_eq!(s, 404);
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn a_banned_moderator_no_longer_moderates_anywhere() {
    let (a, b, _dir) = two_replicas().await;
    let admin = moderator_token(&a, Role::Admin).await;
    let (mo, mo_token) = token_for(&a, Role::Moderator, "Mo").await;
    assert_eq!(
        call(&b, "GET", "/api/moderation/queue", &mo_token, None)
            .await
            .0,
        200
    );
    let (s, v) = call(
        &a,
        "POST",
        &format!("/api/moderation/players/{mo}"),
        &admin,
        Some(json!({"action": "ban"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for app in [&a, &b] {
        let (s, v) = call(app, "GET", "/api/moderation/queue", &mo_token, None).await;
        assert_eq!(s, 403, "{v}");
        assert_eq!(v["code"], "banned");
    }
    // Cleared again: back to work.
    let (s, _) = call(
        &a,
        "POST",
        &format!("/api/moderation/players/{mo}"),
        &admin,
        Some(json!({"action": "reset"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(&b, "GET", "/api/moderation/queue", &mo_token, None)
            .await
            .0,
        200
    );
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn a_banned_player_can_neither_play_on_nor_upload_but_still_reads_their_data() {
    let (a, b, _dir) = two_replicas().await;
    let moderator = moderator_token(&a, Role::Moderator).await;
    let mut pat = Bot::join(&a.ws(), "Pat").await;
    let round = pat.next_round().await.expect("a round");
    pat.answer(&round, "happy").await;
    let photos: Vec<Vec<u8>> = face_photos(2).iter().map(jpeg).collect();
    let consent = crate::uploads::consent();
    let (s, v) = upload(&a, &pat.token, Some(&consent), Some(&photos[0])).await;
    assert_eq!(s, 201, "{v}");

    // Open sockets on either replica close with a `bye` that says why
    // (each replica reads the bans at its pool refresh, every second here).
    let mut open_a = Bot::resume(&a.ws(), &pat.token).await.0;
    let mut open_b = Bot::resume(&b.ws(), &pat.token).await.0;
    let (s, v) = call(
        &a,
        "POST",
        &format!("/api/moderation/players/{}", pat.player),
        &moderator,
        Some(json!({"action": "ban"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for bot in [&mut open_a, &mut open_b, &mut pat] {
        let bye = tokio::time::timeout(std::time::Duration::from_secs(20), bot.recv_type("bye"))
            .await
            .expect("a bye within the refresh");
        assert_eq!(bye["reason"], "banned", "{bye}");
    }
    // Another upload, on the other replica: refused.
    let (s, v) = upload(&b, &pat.token, Some(&consent), Some(&photos[1])).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["code"], "banned");
    // Resuming play with the token: refused at hello.
    let mut ws = Bot::connect(&b.ws()).await;
    crate::common::send(
        &mut ws,
        json!({"type": "hello", "v": 1, "token": pat.token}),
    )
    .await;
    let v = crate::common::recv(&mut ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], "banned", "{v}");
    // Their own labels and uploads are still theirs to see.
    let (s, v) = call(&b, "GET", "/api/me/labels", &pat.token, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["labels"].as_array().map(Vec::len), Some(1));
    let (s, _) = call(&b, "GET", "/api/uploads", &pat.token, None).await;
    assert_eq!(s, 200);
    a.stop().await;
    b.stop().await;
}
