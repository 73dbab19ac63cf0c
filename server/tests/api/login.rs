//! Sign-in abuse limits in the real app, counted, not timed: the soft
//! lockout per account (the right password waits too, concurrent guesses
//! get no extra turns), the limit per client address, and an unknown
//! username costing one password check like a known one.

use crate::common::{TestApp, header, http_get, http_request, spawn_app, test_config};
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
