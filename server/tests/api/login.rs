//! Sign-in abuse limits in the real app, counted, not timed: the soft
//! lockout per account (the right password waits too, concurrent guesses
//! get no extra turns), the limit per client address, and an unknown
//! username costing one password check like a known one; and a guest who
//! becomes an account and signs in elsewhere as the same player, and whose
//! personal export holds what was stored about them.

use crate::common::{Bot, TestApp, header, http_get, http_request, spawn_app, test_config};
use emofy_game::{Millis, PlayerId, Role};
use emofy_server::store::AccountRecord;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

async fn account(app: &TestApp, username: &str) {
    app.services
        .players
        .create_account(
            AccountRecord {
                username: username.into(),
                player: PlayerId(uuid::Uuid::new_v4()),
                password_hash: emofy_server::auth::hash_password(PASSWORD).unwrap(),
                role: Role::Moderator,
                failures: Default::default(),
            },
            "Mo",
            Millis(1),
        )
        .await
        .unwrap();
}

/// (status, Retry-After, body)
async fn login(app: &TestApp, username: &str, password: &str) -> (u16, Option<u64>, Value) {
    let body = json!({"username": username, "password": password}).to_string();
    let (status, head, bytes) =
        http_request("POST", &app.http("/api/login"), &[], Some(&body)).await;
    let retry = header(&head, "retry-after").and_then(|v| v.parse().ok());
    (
        status,
        retry,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A counter's value from `/metrics` (0 when absent).
async fn metric(app: &TestApp, line_start: &str) -> u64 {
    let text = http_get(&app.http("/metrics")).await.1;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn checks(app: &TestApp) -> u64 {
    metric(app, "emofy_password_checks_total ").await
}

#[actix_rt::test]
async fn an_account_locks_softly_after_five_failures_and_unknown_names_cost_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.logins_per_ip_per_minute = 0;
    let app = spawn_app(config).await;
    account(&app, "ann").await;

    let before = checks(&app).await;
    for _ in 0..5 {
        let (s, _, v) = login(&app, "ann", "wrong password").await;
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    }
    assert_eq!(checks(&app).await, before + 5);
    // The sixth waits, and so does the right password: neither is checked.
    let (s, retry, v) = login(&app, "ann", "wrong password").await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    assert_eq!(retry, Some(1));
    let (s, retry, _) = login(&app, "ann", PASSWORD).await;
    assert_eq!(s, 429);
    assert!(retry.is_some());
    assert_eq!(checks(&app).await, before + 5);
    assert_eq!(
        metric(&app, r#"emofy_logins_total{outcome="locked"} "#).await,
        2
    );

    // An unknown username: one password check, like a known one's wrong password.
    let c = checks(&app).await;
    let (s, _, v) = login(&app, "nobody-here", "whatever it is").await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(checks(&app).await, c + 1);
    account(&app, "bea").await;
    let (s, _, _) = login(&app, "bea", "whatever it is").await;
    assert_eq!(s, 401);
    assert_eq!(checks(&app).await, c + 2);

    // Once the wait is over, the owner signs in and the count starts again.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (s, _, v) = login(&app, "ann", PASSWORD).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["token"].as_str().is_some());
    let (s, _, _) = login(&app, "ann", "wrong password").await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_guesses_get_no_extra_turns() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.logins_per_ip_per_minute = 0;
    let app = spawn_app(config).await;
    account(&app, "cy").await;
    let before = checks(&app).await;
    let tries: Vec<_> = (0..16)
        .map(|i| {
            let app = &app;
            async move { login(app, "cy", &format!("guess number {i}")).await.0 }
        })
        .collect();
    let statuses = futures_util::future::join_all(tries).await;
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let checked = checks(&app).await - before;
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords checked for 16 concurrent guesses"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count() as u64,
        checked
    );
    app.stop().await;
}

#[actix_rt::test]
async fn one_address_gets_a_few_attempts_a_minute_whatever_the_usernames() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.exempt_loopback = false;
    config.net.logins_per_ip_per_minute = 1;
    config.net.login_burst = 3;
    let app = spawn_app(config).await;
    for name in ["a1", "a2", "a3"] {
        assert_eq!(login(&app, name, "some password").await.0, 401);
    }
    let before = checks(&app).await;
    let (s, retry, v) = login(&app, "a4", "some password").await;
    assert_eq!((s, v["code"].as_str()), (429, Some("rate_limited")), "{v}");
    assert_eq!(retry, Some(60));
    assert_eq!(checks(&app).await, before, "refused before any hashing");
    assert_eq!(
        metric(&app, r#"emofy_logins_total{outcome="rate_limited"} "#).await,
        1
    );
    app.stop().await;
}

async fn register(app: &TestApp, token: &str, username: &str, password: &str) -> (u16, Value) {
    let body = json!({"username": username, "password": password}).to_string();
    let auth = format!("Bearer {token}");
    let (status, _, bytes) = http_request(
        "POST",
        &app.http("/api/accounts"),
        &[("Authorization", &auth)],
        Some(&body),
    )
    .await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[actix_rt::test]
async fn a_guest_becomes_an_account_and_plays_on_elsewhere_as_the_same_player() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 4;
    let app = spawn_app(config).await;
    // Someone labelled the faces first, so the guest's agreeing answers score.
    let mut first = Bot::join(&app.ws(), "First").await;
    let mut answers = Vec::new();
    while let Some(round) = first.next_round().await {
        answers.push(round["image"]["id"].clone());
        first.answer(&round, "happy").await;
    }
    let mut ann = Bot::join(&app.ws(), "Ann").await;
    let round = ann.next_round().await.unwrap();
    let r = ann.answer(&round, "happy").await;
    let score = r["score"].as_u64().unwrap();
    assert!(score > 0, "{r}");

    // Weak passwords and bad usernames are refused, with the rule broken.
    for (name, pw, code) in [
        ("Ann_1", "short", "weak_password"),
        ("Ann_1", "Password123", "weak_password"),
        ("Ann_1", &"x".repeat(129), "weak_password"),
        ("a b", "a long enough phrase", "invalid_username"),
        ("an", "a long enough phrase", "invalid_username"),
    ] {
        let (s, v) = register(&app, &ann.token, name, pw).await;
        assert_eq!((s, v["code"].as_str()), (400, Some(code)), "{name} {v}");
    }
    let (s, v) = register(&app, &ann.token, "Ann_1", "a long enough phrase").await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["username"], "ann_1");
    assert_eq!(v["player"], ann.player.as_str());
    // Once only, and the name is one account whatever its case or width.
    let (s, v) = register(&app, &ann.token, "ann_2", "a long enough phrase").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("already_registered")),
        "{v}"
    );
    let bob = Bot::join(&app.ws(), "Bob").await;
    for taken in ["ANN_1", "ａｎｎ_1"] {
        let (s, v) = register(&app, &bob.token, taken, "another long phrase").await;
        assert_eq!(
            (s, v["code"].as_str()),
            (409, Some("username_taken")),
            "{v}"
        );
    }

    // Another device: sign in (any case), resume with the new token: same player, same score.
    let (s, _, v) = login(&app, "ANN_1", "a long enough phrase").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["player"], ann.player.as_str());
    let (other, welcome) = Bot::resume(&app.ws(), v["token"].as_str().unwrap()).await;
    assert_eq!(other.player, ann.player);
    assert_eq!(welcome["resumed"], true);
    assert_eq!(welcome["score"].as_u64(), Some(score));
    // Its labels are the guest's.
    let auth = format!("Bearer {}", other.token);
    let (_, _, bytes) = http_request(
        "GET",
        &app.http("/api/me/labels"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    let labels: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        labels["labels"].as_array().map(Vec::len),
        Some(1),
        "{labels}"
    );
    assert!(
        answers.contains(&labels["labels"][0]["image"]["id"]),
        "{labels}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn the_personal_export_holds_what_was_stored_and_nothing_of_others() {
    use crate::uploads::{consent, face_photos, jpeg, upload};
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 3;
    let app = spawn_app(config).await;
    let mut other = Bot::join(&app.ws(), "Other").await;
    while let Some(round) = other.next_round().await {
        other.answer(&round, "sad").await;
    }
    let mut eve = Bot::join(&app.ws(), "Eve").await;
    let mut answered = Vec::new();
    for e in ["sad", "fear"] {
        let round = eve.next_round().await.unwrap();
        let r = eve.answer(&round, e).await;
        answered.push((round["image"]["id"].clone(), e, r["score"].clone()));
    }
    let photo = jpeg(&face_photos(1)[0]);
    let (s, up) = upload(&app, &eve.token, Some(&consent()), Some(&photo)).await;
    assert_eq!(s, 201, "{up}");
    let (s, _) = register(&app, &eve.token, "eve", "a long enough phrase").await;
    assert_eq!(s, 201);

    let auth = format!("Bearer {}", eve.token);
    let (s, head, bytes) = http_request(
        "GET",
        &app.http("/api/me/export"),
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(header(&head, "content-disposition").is_some_and(|v| v.contains("attachment")));
    let x: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(x["format"], "emofy-export-v1");
    assert_eq!(x["player"]["id"], eve.player.as_str());
    assert_eq!(x["player"]["name"], "Eve");
    assert_eq!(x["player"]["tally"]["score"], answered[1].2);
    assert_eq!(x["username"], "eve");
    assert!(x["reliability"].is_object(), "{x}");
    // Every label of hers, newest first, with what she answered and when; none of the other player's.
    let labels = x["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2, "{x}");
    for (l, (image, emotion, _)) in labels.iter().zip(answered.iter().rev()) {
        assert_eq!(&l["image"]["id"], image);
        assert_eq!(l["emotion"], *emotion);
        assert!(l["at_ms"].as_u64().unwrap() > 0);
        assert!(l.get("player").is_none());
    }
    // Her upload with its consent as given.
    let uploads = x["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0]["upload"]["image"]["id"], up["image"]["id"]);
    assert_eq!(uploads[0]["upload"]["consent"]["use_for_training"], true);
    let log = uploads[0]["consent_log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["event"], "given");
    assert_eq!(x["sessions"]["stored"], json!([]));
    // Nothing about the password is in it.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("argon2") && !text.contains("a long enough phrase"));
    app.stop().await;
}

#[actix_rt::test]
async fn an_account_changes_its_password_after_proving_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let guest = Bot::join(&app.ws(), "Gil").await;
    async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> (u16, Value) {
        let body = json!({"current": current, "new": new}).to_string();
        let auth = format!("Bearer {token}");
        let (s, _, b) = http_request(
            "POST",
            &app.http("/api/me/password"),
            &[("Authorization", &auth)],
            Some(&body),
        )
        .await;
        (
            s,
            serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
        )
    }
    // A guest has none to change.
    let (s, v) = change(&app, &guest.token, "anything at all", "a new long phrase").await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("invalid_message")),
        "{v}"
    );
    assert_eq!(
        register(&app, &guest.token, "gil", "the first long phrase")
            .await
            .0,
        201
    );
    let (s, v) = change(
        &app,
        &guest.token,
        "not the current one",
        "a new long phrase",
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{v}");
    let (s, v) = change(&app, &guest.token, "the first long phrase", "password1").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("weak_password")), "{v}");
    let (s, _) = change(
        &app,
        &guest.token,
        "the first long phrase",
        "a new long phrase",
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(login(&app, "gil", "the first long phrase").await.0, 401);
    let (s, _, v) = login(&app, "gil", "a new long phrase").await;
    assert_eq!(s, 200);
    assert_eq!(v["player"], guest.player.as_str());
    app.stop().await;
}
