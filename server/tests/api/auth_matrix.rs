//! The authorization matrix: every route of the OpenAPI document × every kind
//! of caller, with the status each must get. A route the server serves that
//! is not in the table (or a row for a route it does not serve) fails the
//! test, so a new route cannot ship without its row.
//!
//! Callers are asked in this order, the route's owner last, so a destructive
//! success (a deletion) is the final request of its row. Requests carry valid
//! bodies where a body is needed, so what differs between callers is who
//! they are; where a success would change shared state, the target does not
//! exist and "allowed" shows as `404` (authorization comes before lookup).

use std::collections::BTreeSet;

use emofy_game::{Millis, Role};
use serde_json::{Value, json};

use crate::common::{
    Bot, TestApp, get_json, http_bytes, multipart, spawn_app, test_config, token_for,
};
use crate::fixtures::png_of;
use crate::uploads::{face_photos, upload};

/// The callers, in the order they are asked.
const CALLERS: [&str; 7] = [
    "anonymous",
    "expired token",
    "forged token",
    "another player",
    "moderator",
    "admin",
    "player",
];

/// One row: method, path template, the request (path with ids filled, content
/// type, body), and the expected status for each of [`CALLERS`].
struct Row {
    method: &'static str,
    template: &'static str,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
    expect: [u16; 7],
}

fn row(
    method: &'static str,
    template: &'static str,
    path: impl Into<String>,
    expect: [u16; 7],
) -> Row {
    Row {
        method,
        template,
        path: path.into(),
        content_type: None,
        body: Vec::new(),
        expect,
    }
}

fn with_json(mut r: Row, body: Value) -> Row {
    r.content_type = Some("application/json".into());
    r.body = body.to_string().into_bytes();
    r
}

fn with_bytes(mut r: Row, ct: &str, body: Vec<u8>) -> Row {
    r.content_type = Some(ct.into());
    r.body = body;
    r
}

const PUBLIC: [u16; 7] = [200; 7];
/// Any signed-in player; a bad token is refused.
const SIGNED_IN: [u16; 7] = [401, 401, 401, 200, 200, 200, 200];
/// Moderators and admins only.
const MODERATORS: [u16; 7] = [401, 401, 401, 403, 200, 200, 403];

/// An upload of the `n`-th test photo that players are not shown.
async fn private_upload(app: &TestApp, token: &str, n: usize) -> String {
    let consent = json!({
        "show_to_players": false, "use_for_training": true, "include_in_exports": false,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    });
    let photo = png_of(&face_photos(n + 1)[n]);
    let (status, v) = upload(app, token, Some(&consent), Some(&photo)).await;
    assert_eq!(status, 201, "{v}");
    v["image"]["id"].as_str().unwrap().to_owned()
}

#[actix_rt::test]
async fn every_route_answers_every_caller_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let owner = Bot::join(&app.ws(), "owner").await;
    let other = Bot::join(&app.ws(), "other").await;
    let (_, moderator) = token_for(&app, Role::Moderator, "mo").await;
    let (_, admin) = token_for(&app, Role::Admin, "ad").await;
    let expired = app.services.tokens.issue(&emofy_server::auth::Claims {
        player: owner.player.parse().map(emofy_game::PlayerId).unwrap(),
        role: Role::Admin,
        expires: Millis(1),
    });
    // A token signed with another key, claiming to be an admin.
    let forged = emofy_server::auth::TokenKey::from_bytes(&[9u8; 32])
        .unwrap()
        .issue(&emofy_server::auth::Claims {
            player: owner.player.parse().map(emofy_game::PlayerId).unwrap(),
            role: Role::Admin,
            expires: Millis(u64::MAX / 2),
        });
    let tokens: [Option<&str>; 7] = [
        None,
        Some(&expired),
        Some(&forged),
        Some(&other.token),
        Some(&moderator),
        Some(&admin),
        Some(&owner.token),
    ];
    let private = private_upload(&app, &owner.token, 0).await;
    // A second upload of the owner's, to delete.
    let doomed = private_upload(&app, &owner.token, 1).await;
    let nobody = uuid::Uuid::new_v4();
    let no_image = "0".repeat(64);
    let (empty_ct, empty_form) = multipart(&[]);

    let rows = vec![
        row("GET", "/ws/play", "/ws/play", [400; 7]),
        row("GET", "/ws/leaderboard", "/ws/leaderboard", [400; 7]),
        row(
            "GET",
            "/images/{id}",
            format!("/images/{private}.png"),
            [404, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/images/{id}",
            format!("/api/images/{private}"),
            [404, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "GET",
            "/api/images/{id}/labels",
            format!("/api/images/{private}/labels"),
            MODERATORS,
        ),
        row("GET", "/api/me/labels", "/api/me/labels", SIGNED_IN),
        row(
            "GET",
            "/api/me/versus-model",
            "/api/me/versus-model",
            SIGNED_IN,
        ),
        row("GET", "/api/leaderboard", "/api/leaderboard", PUBLIC),
        row("GET", "/api/me/export", "/api/me/export", SIGNED_IN),
        // The matrix's callers are players without accounts: no password to change.
        with_json(
            row(
                "POST",
                "/api/me/password",
                "/api/me/password",
                [401, 401, 401, 409, 409, 409, 409],
            ),
            json!({"current": "whatever it was", "new": "a new long phrase"}),
        ),
        // Any signed-in player may register; a common password shows the check came after.
        with_json(
            row(
                "POST",
                "/api/accounts",
                "/api/accounts",
                [401, 401, 401, 400, 400, 400, 400],
            ),
            json!({"username": "matrix", "password": "password123"}),
        ),
        row(
            "GET",
            "/api/leaderboards/{board}",
            "/api/leaderboards/global",
            PUBLIC,
        ),
        row("GET", "/api/stats", "/api/stats", PUBLIC),
        with_json(
            row("POST", "/api/login", "/api/login", [401; 7]),
            json!({"username": "nobody", "password": "wrong password"}),
        ),
        row("GET", "/api/consent", "/api/consent", PUBLIC),
        with_bytes(
            row(
                "POST",
                "/api/uploads",
                "/api/uploads",
                [401, 401, 401, 400, 400, 400, 400],
            ),
            &empty_ct,
            empty_form,
        ),
        row("GET", "/api/uploads", "/api/uploads", SIGNED_IN),
        row(
            "GET",
            "/api/uploads/{id}",
            format!("/api/uploads/{private}"),
            [401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "DELETE",
            "/api/uploads/{id}",
            format!("/api/uploads/{doomed}"),
            [401, 401, 401, 404, 404, 404, 204],
        ),
        with_json(
            row(
                "PUT",
                "/api/uploads/{id}/label",
                format!("/api/uploads/{private}/label"),
                [401, 401, 401, 404, 404, 404, 200],
            ),
            json!({"emotion": "happy"}),
        ),
        with_bytes(
            row(
                "POST",
                "/api/faces/preview",
                "/api/faces/preview",
                [401, 401, 401, 415, 415, 415, 415],
            ),
            "application/octet-stream",
            b"not an image".to_vec(),
        ),
        with_bytes(
            row(
                "POST",
                "/api/filters",
                "/api/filters?chain=gray",
                [401, 401, 401, 415, 415, 415, 415],
            ),
            "application/octet-stream",
            b"not an image".to_vec(),
        ),
        with_json(
            row(
                "POST",
                "/api/admin/model",
                "/api/admin/model",
                [401, 401, 401, 403, 403, 400, 403],
            ),
            json!({"dir": "v2"}),
        ),
        row("GET", "/api/admin/models", "/api/admin/models", MODERATORS),
        // Admins reach the registry's rules: an unknown version, nothing to roll back to.
        row(
            "POST",
            "/api/admin/models/{version}/promote",
            "/api/admin/models/no-such-version/promote",
            [401, 401, 401, 403, 403, 409, 403],
        ),
        row(
            "POST",
            "/api/admin/models/rollback",
            "/api/admin/models/rollback",
            [401, 401, 401, 403, 403, 409, 403],
        ),
        row(
            "GET",
            "/api/moderation/queue",
            "/api/moderation/queue",
            MODERATORS,
        ),
        with_json(
            row(
                "POST",
                "/api/moderation/images/{id}",
                format!("/api/moderation/images/{no_image}"),
                [401, 401, 401, 403, 404, 404, 403],
            ),
            json!({"action": "flag", "reason": "not_a_face"}),
        ),
        with_json(
            row(
                "POST",
                "/api/moderation/players/{id}",
                format!("/api/moderation/players/{nobody}"),
                [401, 401, 401, 403, 404, 404, 403],
            ),
            json!({"action": "ban"}),
        ),
        with_json(
            row(
                "POST",
                "/api/admin/players/{id}/role",
                format!("/api/admin/players/{nobody}/role"),
                [401, 401, 401, 403, 403, 404, 403],
            ),
            json!({"role": "moderator"}),
        ),
        row(
            "GET",
            "/api/moderation/players",
            "/api/moderation/players",
            MODERATORS,
        ),
        row(
            "GET",
            "/api/moderation/audit",
            "/api/moderation/audit",
            MODERATORS,
        ),
        row(
            "GET",
            "/api/moderation/stats",
            "/api/moderation/stats",
            MODERATORS,
        ),
        row("GET", "/healthz", "/healthz", PUBLIC),
        row("GET", "/readyz", "/readyz", PUBLIC),
        // Loopback and no metrics token configured: the operator's machine.
        row("GET", "/metrics", "/metrics", PUBLIC),
        row("GET", "/api/openapi.json", "/api/openapi.json", PUBLIC),
        row("GET", "/", "/", PUBLIC),
        row("GET", "/{file}", "/board.html", PUBLIC),
    ];

    // The table covers exactly the documented routes.
    let doc = get_json(&app.http("/api/openapi.json")).await;
    let served: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&tabled).collect();
    let extra: Vec<_> = tabled.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the matrix: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "rows for routes the server does not serve: {extra:?}"
    );

    let mut failures = Vec::new();
    for r in &rows {
        for (i, caller) in CALLERS.iter().enumerate() {
            let auth = tokens[i].map(|t| format!("Bearer {t}"));
            let mut headers: Vec<(&str, &str)> = Vec::new();
            if let Some(a) = &auth {
                headers.push(("Authorization", a));
            }
            if let Some(ct) = &r.content_type {
                headers.push(("Content-Type", ct));
            }
            let (status, _, body) =
                http_bytes(r.method, &app.http(&r.path), &headers, &r.body).await;
            if status != r.expect[i] {
                failures.push(format!(
                    "{} {} as {caller}: {status} (expected {}) {}",
                    r.method,
                    r.path,
                    r.expect[i],
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(160)
                        .collect::<String>()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}
