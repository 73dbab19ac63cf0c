//! Crowd truth in the real app: moderator authorization, review and
//! override (the image becomes gold and gold rounds give instant feedback),
//! settled checks (with no verified face, gold rounds check newcomers on a
//! face the crowd settled),
//! decoy suggestions recorded as such, and two replicas on one store that
//! see one posterior and retire an image once.

use crate::common::{Body, Bot, get_json, http_send, moderator_token, spawn_app, test_config};
use emofy_game::Role;
use serde_json::{Value, json};
use uuid::Uuid;

async fn call(
    app: &crate::common::TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = match body {
        Some(b) => Body::Fixed(b.to_string().into_bytes()),
        None => Body::None,
    };
    http_send(method, &app.http(path), &headers, body).await
}

#[actix_rt::test]
async fn the_moderator_api_is_for_moderators_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let player = Bot::join(&app.ws(), "Pat").await;
    let moderator = moderator_token(&app, Role::Moderator).await;
    let image = "0".repeat(64);
    let someone = Uuid::new_v4().to_string();
    let endpoints: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/moderation/queue".into(), None),
        ("GET", "/api/moderation/players".into(), None),
        ("GET", "/api/moderation/audit".into(), None),
        ("GET", "/api/moderation/stats".into(), None),
        (
            "POST",
            format!("/api/moderation/images/{image}"),
            Some(json!({"action": "accept"})),
        ),
        (
            "POST",
            format!("/api/moderation/players/{someone}"),
            Some(json!({"action": "ban"})),
        ),
    ];
    for (method, path, body) in &endpoints {
        let (s, v) = call(&app, method, path, None, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        let (s, v) = call(&app, method, path, Some("forged.token"), body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (401, Some("invalid_token")),
            "{method} {path}"
        );
        let (s, v) = call(&app, method, path, Some(&player.token), body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    for (method, path, _) in endpoints.iter().take(4) {
        let (s, v) = call(&app, method, path, Some(&moderator), None).await;
        assert_eq!(s, 200, "{method} {path}: {v}");
    }
    // Unknown images and players are 404 for a moderator; a bad body is a clear 400.
    let (s, _) = call(
        &app,
        "POST",
        &endpoints[4].1,
        Some(&moderator),
        endpoints[4].2.clone(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        "POST",
        &endpoints[5].1,
        Some(&moderator),
        endpoints[5].2.clone(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, v) = call(
        &app,
        "POST",
        &endpoints[4].1,
        Some(&moderator),
        Some(json!({"action": "delete"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    app.stop().await;
}

/// A server with one face and no label to check against (as with uploads
/// only): five players settle it, and a newcomer's gold round is then a
/// settled check on it, scored at once against the crowd's label.
async fn settle_one_face(
    settled_checks: bool,
) -> (crate::common::TestApp, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 1;
    config.game.min_labels = 5;
    config.game.max_labels = 9;
    config.truth.gold = true;
    config.truth.schedule.gold_start = 1.0;
    config.truth.settled_checks.enabled = settled_checks;
    let app = spawn_app(config).await;
    let mut image = String::new();
    for name in ["Ann", "Ben", "Cy", "Dot", "Eli"] {
        let mut bot = Bot::join(&app.ws(), name).await;
        let round = bot.next_round().await.expect("the open face");
        image = round["image"]["id"].as_str().unwrap().to_owned();
        let r = bot.answer(&round, "sad").await;
        assert!(r.get("settled").is_none(), "{r}");
        if name == "Eli" {
            assert_eq!(r["image"]["status"], "retired", "{r}");
            assert_eq!(r["image"]["consensus"], "sad", "{r}");
        }
    }
    (app, image, dir)
}

#[actix_rt::test]
async fn with_no_verified_face_gold_rounds_check_newcomers_on_faces_the_crowd_settled() {
    let (app, image, _dir) = settle_one_face(true).await;
    let mut fay = Bot::join(&app.ws(), "Fay").await;
    let round = fay.next_round().await.expect("a settled check");
    assert_eq!(round["image"]["id"], image.as_str());
    let r = fay.answer(&round, "sad").await;
    assert_eq!(r["settled"], "sad", "{r}");
    assert!(
        r.get("gold").is_none(),
        "the crowd's word is not a moderator's: {r}"
    );
    assert_eq!(r["agreement"], "agreed", "{r}");
    assert_eq!(r["pending"], false, "{r}");
    assert!(r["points"]["total"].as_u64().unwrap() > 0, "{r}");
    // A face is checked once per player; the label is stored as an ordinary one.
    assert!(fay.next_round().await.is_none());
    let (_, labels) = http_send(
        "GET",
        &app.http("/api/me/labels"),
        &[("Authorization", &format!("Bearer {}", fay.token))],
        Body::None,
    )
    .await;
    assert_eq!(labels["labels"][0]["gold"], false, "{labels}");
    // A liar is told the crowd's label and earns nothing.
    let mut gus = Bot::join(&app.ws(), "Gus").await;
    let round = gus.next_round().await.expect("a settled check");
    let r = gus.answer(&round, "happy").await;
    assert_eq!(r["settled"], "sad", "{r}");
    assert_eq!(r["agreement"], "disagreed", "{r}");
    assert_eq!(r["points"]["total"], 0, "{r}");
    let metrics = crate::common::http_get(&app.http("/metrics")).await.1;
    assert!(
        metrics.contains(r#"emofy_round_kinds_total{outcome="settled"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn settled_checks_switched_off_serve_no_retired_face() {
    let (app, _, _dir) = settle_one_face(false).await;
    let mut fay = Bot::join(&app.ws(), "Fay").await;
    assert!(fay.next_round().await.is_none());
    app.stop().await;
}

#[actix_rt::test]
async fn a_moderator_overrides_a_disputed_image_which_then_serves_gold_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 1;
    config.game.min_labels = 3;
    config.game.max_labels = 3;
    config.truth.gold = true;
    config.truth.schedule.gold_start = 1.0;
    let app = spawn_app(config).await;
    let mut image = String::new();
    let mut shown = Vec::new();
    for (name, e) in [("Ann", "angry"), ("Ben", "fear"), ("Cy", "sad")] {
        let mut bot = Bot::join(&app.ws(), name).await;
        let round = bot.next_round().await.unwrap();
        image = round["image"]["id"].as_str().unwrap().to_owned();
        shown.push(round["suggestion"]["emotion"].clone());
        let r = bot.answer(&round, e).await;
        assert_eq!(r["suggestion_was_test"], false);
        assert!(r.get("gold").is_none());
        if name == "Cy" {
            assert_eq!(r["image"]["status"], "disputed", "{r}");
        }
    }
    let moderator = moderator_token(&app, Role::Moderator).await;
    let (s, queue) = call(&app, "GET", "/api/moderation/queue", Some(&moderator), None).await;
    assert_eq!(s, 200);
    let item = &queue["items"][0];
    assert_eq!(item["image"], image.as_str());
    assert_eq!(item["status"], "disputed");
    assert_eq!(item["labels"].as_array().unwrap().len(), 3);
    assert_eq!(item["labels"][0]["shown"], shown[0]);
    assert_eq!(item["labels"][0]["decoy"], false);
    let post: Vec<f64> = serde_json::from_value(item["posterior"].clone()).unwrap();
    assert!((post.iter().sum::<f64>() - 1.0).abs() < 1e-3);
    assert_eq!(item["model_probabilities"].as_array().unwrap().len(), 7);
    assert_eq!(
        item["votes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .sum::<u64>(),
        3
    );

    let (s, done) = call(
        &app,
        "POST",
        &format!("/api/moderation/images/{image}"),
        Some(&moderator),
        Some(json!({"action": "override", "label": "sad"})),
    )
    .await;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["status"], "retired");
    assert_eq!(done["gold"], "sad");
    assert_eq!(done["settled"], 1, "Cy said sad and settles");
    let meta = get_json(&app.http(&format!("/api/images/{image}"))).await;
    assert_eq!(meta["status"], "retired");
    let (_, audit) = call(&app, "GET", "/api/moderation/audit", Some(&moderator), None).await;
    assert_eq!(audit["entries"][0]["action"], "override");
    assert_eq!(audit["entries"][0]["target"], image.as_str());
    assert_eq!(audit["entries"][0]["detail"]["label"], "sad");

    // The verified image now serves gold rounds: instant feedback, judged against the verified label.
    let mut dee = Bot::join(&app.ws(), "Dee").await;
    let round = dee.next_round().await.expect("a gold round");
    assert_eq!(round["image"]["id"], image.as_str());
    let r = dee.answer(&round, "happy").await;
    assert_eq!(r["gold"], "sad", "{r}");
    assert_eq!(r["agreement"], "disagreed");
    assert_eq!(r["pending"], false);
    let (_, labels) = http_send(
        "GET",
        &app.http("/api/me/labels"),
        &[("Authorization", &format!("Bearer {}", dee.token))],
        Body::None,
    )
    .await;
    assert_eq!(labels["labels"][0]["gold"], true, "{labels}");

    // Banning a player is audited and shows in the reliability table.
    let (_, players) = call(
        &app,
        "GET",
        "/api/moderation/players",
        Some(&moderator),
        None,
    )
    .await;
    let rows = players["players"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let ann = rows.iter().find(|r| r["name"] == "Ann").unwrap();
    let (s, banned) = call(
        &app,
        "POST",
        &format!(
            "/api/moderation/players/{}",
            ann["player"].as_str().unwrap()
        ),
        Some(&moderator),
        Some(json!({"action": "ban"})),
    )
    .await;
    assert_eq!(s, 200, "{banned}");
    assert_eq!(banned["counts"], false);
    let (_, flagged) = call(
        &app,
        "GET",
        "/api/moderation/players?flagged=true",
        Some(&moderator),
        None,
    )
    .await;
    assert_eq!(flagged["players"][0]["name"], "Ann");
    assert_eq!(flagged["players"][0]["moderation"], "banned");
    app.stop().await;
}

#[actix_rt::test]
async fn decoy_suggestions_are_recorded_as_tests() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.truth.decoys = true;
    config.truth.schedule.decoy_share = 1.0;
    config.truth.schedule.decoy_after_rounds = 0;
    let app = spawn_app(config).await;
    let mut bot = Bot::join(&app.ws(), "Eve").await;
    let round = bot.next_round().await.unwrap();
    let image = round["image"]["id"].as_str().unwrap().to_owned();
    let shown = round["suggestion"]["emotion"].as_str().unwrap().to_owned();
    // The suggestion is not the model's real guess (the model's cached prediction).
    let meta = get_json(&app.http(&format!("/api/images/{image}"))).await;
    let _ = meta;
    let model = app.services.inference.as_ref().unwrap().version();
    let real = app
        .services
        .images
        .prediction(image.parse().unwrap(), &model)
        .await
        .unwrap()
        .unwrap()
        .top();
    assert_ne!(shown, real.as_str());
    assert_eq!(
        round["prompt"],
        format!("The predicted emotion is {shown}. Select the correct one!")
    );
    let r = bot.answer(&round, &shown).await;
    assert_eq!(r["suggestion_was_test"], true);
    let (_, labels) = http_send(
        "GET",
        &app.http("/api/me/labels"),
        &[("Authorization", &format!("Bearer {}", bot.token))],
        Body::None,
    )
    .await;
    assert_eq!(labels["labels"][0]["decoy"], true);
    assert_eq!(labels["labels"][0]["shown"], shown.as_str());
    app.stop().await;
}

#[actix_rt::test]
async fn two_replicas_on_one_store_share_the_posterior_and_retire_an_image_once() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("emofy-test-{}", Uuid::new_v4().simple());
    let mut config = test_config(dir.path());
    config.redis.url =
        Some(std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()));
    config.redis.prefix = prefix;
    config.demo.images = 1;
    config.game.min_labels = 3;
    config.game.max_labels = 5;
    let a = spawn_app(config.clone()).await;
    let b = spawn_app(config).await;
    let moderator = moderator_token(&a, Role::Moderator).await;
    let mut results = Vec::new();
    let mut image = String::new();
    for (i, name) in ["Ann", "Ben", "Cy", "Dee"].iter().enumerate() {
        let app = if i % 2 == 0 { &a } else { &b };
        let mut bot = Bot::join(&app.ws(), name).await;
        let Some(round) = bot.next_round().await else {
            // Retired on the other replica: it is never offered again (after the pool refresh).
            results.push(Value::Null);
            continue;
        };
        image = round["image"]["id"].as_str().unwrap().to_owned();
        results.push(bot.answer(&round, "surprise").await);
        if i == 1 {
            // Two labels: both replicas read one posterior from the store.
            let (_, qa) = call(&a, "GET", "/api/moderation/queue", Some(&moderator), None).await;
            let (_, qb) = call(&b, "GET", "/api/moderation/queue", Some(&moderator), None).await;
            assert_eq!(qa["items"][0]["posterior"], qb["items"][0]["posterior"]);
            assert_eq!(qa["items"][0]["crowd"], "surprise");
        }
        // Let the other replica's pool refresh see the new status.
        tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    }
    let retired: Vec<&Value> = results
        .iter()
        .filter(|r| r["image"]["status"] == "retired" && r["settlement"].as_u64().unwrap_or(0) > 0)
        .collect();
    assert_eq!(
        retired.len(),
        1,
        "exactly one answer retired the image: {results:?}"
    );
    assert_eq!(results[2]["image"]["status"], "retired");
    assert!(
        results[3].is_null(),
        "a retired image is never offered again"
    );
    for app in [&a, &b] {
        let meta = get_json(&app.http(&format!("/api/images/{image}"))).await;
        assert_eq!(meta["status"], "retired");
        assert_eq!(meta["label"], "surprise");
        let stats = get_json(&app.http("/api/stats")).await;
        assert_eq!(
            (stats["retired"].as_u64(), stats["labels"].as_u64()),
            (Some(1), Some(3))
        );
    }
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn bots_are_flagged_their_labels_stop_counting_and_a_truth_pass_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 20;
    let app = spawn_app(config).await;
    // A bot: instant answers, always the same button.
    let mut bot = Bot::join(&app.ws(), "Robo").await;
    let mut results = Vec::new();
    for _ in 0..16 {
        let round = bot.next_round().await.unwrap();
        results.push(bot.answer(&round, "happy").await);
    }
    // People, who take their time, on the same images.
    let mut ann = Bot::join(&app.ws(), "Ann").await;
    for _ in 0..5 {
        let round = ann.next_round().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(350)).await;
        ann.answer(&round, "sad").await;
    }
    let moderator = moderator_token(&app, Role::Moderator).await;
    let (_, flagged) = call(
        &app,
        "GET",
        "/api/moderation/players?flagged=true",
        Some(&moderator),
        None,
    )
    .await;
    let rows = flagged["players"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{flagged}");
    assert_eq!(rows[0]["name"], "Robo");
    assert_eq!(rows[0]["flag"], "too_fast");
    assert_eq!(rows[0]["counts"], false);
    assert!(
        rows[0]["why"]
            .as_str()
            .unwrap()
            .contains("faster than a person")
    );
    // The queue shows the bot's labels as not counted.
    let (_, queue) = call(
        &app,
        "GET",
        "/api/moderation/queue?limit=100",
        Some(&moderator),
        None,
    )
    .await;
    let robo = rows[0]["player"].clone();
    let labels: Vec<&Value> = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["labels"].as_array().unwrap())
        .filter(|l| l["player"] == robo)
        .collect();
    assert!(!labels.is_empty());
    assert!(labels.iter().all(|l| l["counted"] == false));
    // A moderator clears the flag: the labels count again.
    let (s, cleared) = call(
        &app,
        "POST",
        &format!("/api/moderation/players/{}", robo.as_str().unwrap()),
        Some(&moderator),
        Some(json!({"action": "clear"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(cleared["counts"], true);
    assert_eq!(cleared["flag"], "too_fast", "the reason stays visible");

    // The periodic full EM pass reads the labels and writes matrices and posteriors.
    let report = emofy_server::actors::truth::run_pass(
        app.services.review.as_ref(),
        app.services.clock,
        1_000,
        emofy_game::TrustRules::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.labels, 21);
    assert_eq!(report.players, 2);
    assert!(report.images >= 16);
    let metrics = crate::common::http_get(&app.http("/metrics")).await.1;
    assert!(
        metrics.contains("emofy_round_kinds_total{outcome=\"plain\"} 21"),
        "{metrics}"
    );
    assert!(metrics.contains("emofy_moderation_actions_total{outcome=\"clear\"} 1"));
    app.stop().await;
}
