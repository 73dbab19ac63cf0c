//! Hostile input against the real app: browser security headers on every
//! response, one JSON error contract for malformed requests, unknown routes
//! and wrong methods, the WebSocket Origin check and frame-header guard with
//! close frames, slow bodies cut off, per-address connection and guest
//! limits (counted, not timed), the name rule, the model-root rule, no face
//! oracles, and what operators and moderators may do.

use std::time::Duration;

use emofy_game::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{
    Body, Bot, header, http_bytes, http_send, raw_http, recv, send, spawn_app, test_config,
    token_for,
};
use crate::fixtures::png_of;
use crate::uploads::face_photos;

fn addr(app: &crate::common::TestApp) -> String {
    format!("127.0.0.1:{}", app.port)
}

#[actix_rt::test]
async fn every_response_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let bot = Bot::join(&app.ws(), "hdr").await;
    let auth = format!("Bearer {}", bot.token);
    for page in [
        "/",
        "/index.html",
        "/board.html",
        "/contribute.html",
        "/mod.html",
    ] {
        let (status, head, _) = http_bytes("GET", &app.http(page), &[], b"").await;
        assert_eq!(status, 200, "{page}");
        let csp = header(&head, "content-security-policy").unwrap_or_else(|| panic!("{page}: CSP"));
        assert!(csp.contains("default-src 'self'"), "{page}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{page}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        let blob = csp.contains("blob:");
        assert_eq!(
            blob,
            matches!(page, "/contribute.html" | "/mod.html"),
            "{page}: blob: only where photos are shown from memory: {csp}"
        );
        assert_eq!(
            csp.contains("data:"),
            page == "/contribute.html",
            "{page}: {csp}"
        );
        let permissions = header(&head, "permissions-policy").unwrap();
        assert_eq!(
            permissions.contains("camera=(self)"),
            page == "/contribute.html",
            "{page}: {permissions}"
        );
        assert!(permissions.contains("camera="), "{permissions}");
    }
    for (path, token) in [
        ("/api/stats", None),
        ("/images/nope", None),
        ("/api/uploads", Some(auth.as_str())),
        ("/api/me/labels", Some(auth.as_str())),
        ("/api/nope", None),
    ] {
        let headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
        let (_, head, _) = http_bytes("GET", &app.http(path), &headers, b"").await;
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&head, "referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert!(
            header(&head, "content-security-policy")
                .is_some_and(|c| c.contains("frame-ancestors 'none'")),
            "{path}"
        );
        if token.is_some() {
            assert_eq!(header(&head, "cache-control"), Some("no-store"), "{path}");
        }
    }
    // The login response bears a token: never cached.
    let (_, head, _) = http_bytes(
        "POST",
        &app.http("/api/login"),
        &[("Content-Type", "application/json")],
        br#"{"username": "nobody", "password": "x"}"#,
    )
    .await;
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    app.stop().await;
}

/// `(method, path, content type, body, status, code)`.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [u8], u16, &'a str);

#[actix_rt::test]
async fn malformed_requests_unknown_routes_and_wrong_methods_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let bot = Bot::join(&app.ws(), "json").await;
    let auth = format!("Bearer {}", bot.token);
    let json = Some("application/json");
    let cases: Vec<Case> = vec![
        ("POST", "/api/login", json, b"{", 400, "bad_json"),
        (
            "POST",
            "/api/login",
            json,
            b"[1, 2]",
            400,
            "invalid_message",
        ),
        (
            "POST",
            "/api/login",
            json,
            br#"{"username": 1, "password": "x"}"#,
            400,
            "invalid_message",
        ),
        (
            "POST",
            "/api/login",
            json,
            br#"{"username": "a", "password": "b", "x": 1}"#,
            400,
            "invalid_message",
        ),
        (
            "POST",
            "/api/login",
            Some("text/plain"),
            br#"{"username": "a", "password": "b"}"#,
            415,
            "unsupported_media_type",
        ),
        (
            "GET",
            "/api/leaderboards/global?period=yearly",
            None,
            b"",
            400,
            "invalid_message",
        ),
        (
            "GET",
            "/api/leaderboards/global?limit=lots",
            None,
            b"",
            400,
            "invalid_message",
        ),
        (
            "GET",
            "/api/leaderboards/global?nope=1",
            None,
            b"",
            400,
            "invalid_message",
        ),
        (
            "GET",
            "/api/leaderboards/rooms",
            None,
            b"",
            404,
            "not_found",
        ),
        ("GET", "/api/nope", None, b"", 404, "not_found"),
        ("GET", "/api/uploads/x/y/z", None, b"", 404, "not_found"),
        ("GET", "/nope.html", None, b"", 404, "not_found"),
        ("DELETE", "/api/stats", None, b"", 405, "method_not_allowed"),
        ("POST", "/api/stats", json, b"{}", 405, "method_not_allowed"),
        (
            "PATCH",
            "/api/uploads/abc",
            None,
            b"",
            405,
            "method_not_allowed",
        ),
        ("GET", "/api/login", None, b"", 405, "method_not_allowed"),
    ];
    for (method, path, ct, body, status, code) in cases {
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let (got, head, bytes) = http_bytes(method, &app.http(path), &headers, body).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(
            header(&head, "content-type").is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}"
        );
        if status == 405 {
            assert!(header(&head, "allow").is_some(), "{method} {path}: Allow");
        }
    }
    let (_, head, _) = http_bytes("DELETE", &app.http("/api/stats"), &[], b"").await;
    assert_eq!(header(&head, "allow"), Some("GET"));
    app.stop().await;
}

#[actix_rt::test]
async fn websocket_origins_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.allowed_origins = vec!["https://play.example.org".into()];
    let app = spawn_app(config).await;
    let own = format!("http://127.0.0.1:{}", app.port);
    for path in ["/ws/play", "/ws/leaderboard"] {
        let url = format!("ws://127.0.0.1:{}{path}", app.port);
        for (origin, ok) in [
            (None, true),
            (Some(own.as_str()), true),
            (Some("https://play.example.org"), true),
            (Some("https://evil.example"), false),
            (Some("null"), false),
            (Some("http://127.0.0.1:1"), false),
        ] {
            let mut req = url.as_str().into_client_request().unwrap();
            if let Some(o) = origin {
                req.headers_mut().insert("Origin", o.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(req).await {
                Ok(_) => assert!(ok, "{path} from {origin:?} was accepted"),
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert!(!ok, "{path} from {origin:?} was refused");
                    assert_eq!(resp.status(), 403);
                    let body: Value =
                        serde_json::from_slice(resp.body().as_deref().unwrap_or(b"{}")).unwrap();
                    assert_eq!(body["code"], "origin_not_allowed");
                }
                Err(e) => panic!("{path} from {origin:?}: {e}"),
            }
        }
    }
    app.stop().await;
}

/// Opens a WebSocket by hand (so a frame can be malformed) and returns the stream.
async fn raw_socket(app: &crate::common::TestApp, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr(app)).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        addr(app)
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked client text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x81];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = [7u8, 1, 9, 3];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Server frames until the close frame: (opcodes seen, the close code).
async fn read_until_close(s: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<u16>) {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if frames(&buf).0.contains(&0x8) {
                break;
            }
        }
    })
    .await;
    frames(&buf)
}

fn frames(mut b: &[u8]) -> (Vec<u8>, Option<u16>) {
    let mut ops = Vec::new();
    let mut code = None;
    while b.len() >= 2 {
        let op = b[0] & 0x0F;
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 => break,
            n => (usize::from(n), 2),
        };
        if b.len() < at + len {
            break;
        }
        if op == 0x8 && len >= 2 {
            code = Some(u16::from_be_bytes([b[at], b[at + 1]]));
        }
        ops.push(op);
        b = &b[at + len..];
    }
    (ops, code)
}

#[actix_rt::test]
async fn oversized_frames_are_refused_from_their_header_with_a_close_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // The silence timeout is far away: a reaction within seconds is the guard's.
    config.session.heartbeat_secs = 30;
    config.session.client_timeout_secs = 60;
    let app = spawn_app(config).await;

    // A header claiming 2^63 − 1 bytes, and not one payload byte after it.
    let mut s = raw_socket(&app, "/ws/play").await;
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    s.write_all(&head).await.unwrap();
    let (ops, code) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert_eq!(
        code,
        Some(1009),
        "close 1009 after the header alone; frames {ops:?}"
    );
    assert!(
        ops.contains(&0x1),
        "an error frame before the close: {ops:?}"
    );

    // The same on the board socket, for a header and for a whole oversized frame.
    let mut s = raw_socket(&app, "/ws/leaderboard").await;
    s.write_all(&head).await.unwrap();
    let (_, code) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert_eq!(code, Some(1009));
    let mut s = raw_socket(&app, "/ws/leaderboard").await;
    s.write_all(&text_frame(&vec![b'x'; 5000])).await.unwrap();
    let (_, code) = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert_eq!(code, Some(1009));
    app.stop().await;
}

#[actix_rt::test]
async fn slow_bodies_are_cut_off_after_the_body_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.body_timeout_secs = 1;
    let app = spawn_app(config).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    // One byte every 100 ms; count what we sent before the server answered and closed.
    let mut sent = 1;
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        tokio::select! {
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if sent >= 999 || s.write_all(b" ").await.is_err() {
                    break;
                }
                sent += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(
        sent < 100,
        "the server answered and closed after {sent} of 1000 bytes"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn connections_per_address_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.exempt_loopback = false;
    config.net.per_ip_connections = 4;
    let app = spawn_app(config).await;
    let keep = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(keep).await.unwrap();
        let mut b = [0u8; 512];
        let n = s.read(&mut b).await.unwrap();
        assert!(b[..n].starts_with(b"HTTP/1.1 200"));
        open.push(s);
    }
    assert_eq!(
        app.services
            .connections
            .open_from("127.0.0.1".parse().unwrap()),
        4
    );
    let (status, head, body) = raw_http(&addr(&app), keep, Duration::from_secs(5)).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["code"].as_str()),
        (429, Some("too_many_connections"))
    );
    assert!(header(&head, "retry-after").is_some());
    // A closed connection frees its place.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, _) = raw_http(
        &addr(&app),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status, 200);
    drop(open);
    app.stop().await;
}

#[actix_rt::test]
async fn guest_creation_is_limited_per_address_and_names_by_unicode_property() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.net.exempt_loopback = false;
    config.net.per_ip_connections = 0;
    config.net.guests_per_ip_per_hour = 1;
    config.net.guest_burst = 3;
    let app = spawn_app(config).await;
    let mut first = None;
    for i in 0..3 {
        let b = Bot::join(&app.ws(), &format!("guest{i}")).await;
        first.get_or_insert(b.token.clone());
    }
    let mut ws = Bot::connect(&app.ws()).await;
    send(&mut ws, json!({"type": "hello", "v": 1, "name": "guest4"})).await;
    let refused = recv(&mut ws).await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // Existing players still resume: only new guests are limited.
    let (_, welcome) = Bot::resume(&app.ws(), first.as_deref().unwrap()).await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(app.services.guests.tracked(), 1);
    // Names that render blank or invisible are refused as such.
    for name in [
        "ab\u{3164}cd",
        "\u{2800}\u{2800}",
        "x\u{061C}y",
        "a\u{2028}b",
    ] {
        send(&mut ws, json!({"type": "hello", "v": 1, "name": name})).await;
        let v = recv(&mut ws).await;
        assert_eq!(v["code"], "invalid_name", "{name:?}: {v}");
    }
    app.stop().await;
}

async fn admin_swap(app: &crate::common::TestApp, token: &str, dir: &str) -> (u16, Value) {
    http_send(
        "POST",
        &app.http("/api/admin/model"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {token}")),
        ],
        Body::Fixed(json!({"dir": dir}).to_string().into_bytes()),
    )
    .await
}

#[actix_rt::test]
async fn model_swaps_read_only_regular_files_under_the_models_root() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("models");
    std::fs::create_dir_all(&root).unwrap();
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inference/models/mini-xception-fer2013");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(bundled.join("config.json"), outside.join("config.json")).unwrap();
    std::fs::copy(
        bundled.join("model.safetensors"),
        outside.join("model.safetensors"),
    )
    .unwrap();
    // A link out of the root; a FIFO where the weights should be; weights over the size cap.
    std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
    std::fs::create_dir_all(root.join("fifo")).unwrap();
    std::fs::copy(bundled.join("config.json"), root.join("fifo/config.json")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(root.join("fifo/model.safetensors"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::create_dir_all(root.join("huge")).unwrap();
    std::fs::copy(bundled.join("config.json"), root.join("huge/config.json")).unwrap();
    std::fs::write(root.join("huge/model.safetensors"), vec![0u8; 2 << 20]).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.model.models_root = Some(root.clone());
    config.model.max_file_mib = 1;
    let app = spawn_app(config).await;
    let (_, admin) = token_for(&app, Role::Admin, "root").await;
    let secret = outside.display().to_string();
    let answers: Vec<(String, u16, Value)> = futures_util::future::join_all(
        [
            secret.as_str(),
            "../outside",
            "escape",
            "missing",
            "/etc",
            "fifo",
            "huge",
        ]
        .iter()
        .map(|d| async {
            let (s, v) = admin_swap(&app, &admin, d).await;
            (d.to_string(), s, v)
        }),
    )
    .await;
    let not_available = answers[0].2["detail"].clone();
    for (d, status, v) in &answers {
        assert_eq!(status, &422, "{d}: {v}");
        let text = v.to_string();
        assert!(
            !text.contains(base.path().to_str().unwrap()),
            "{d}: a path leaked: {text}"
        );
        if ["escape", "missing", "/etc", "../outside"].contains(&d.as_str()) {
            // Outside, missing, or a link out: one answer, so nothing is learnt about the disk.
            assert_eq!(v["detail"], not_available, "{d}");
        }
    }
    assert!(
        answers[5].2["detail"]
            .as_str()
            .unwrap()
            .contains("not a regular file")
    );
    assert!(
        answers[6].2["detail"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    app.stop().await;
}

#[actix_rt::test]
async fn uploads_are_no_oracle_for_faces() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    let alice = Bot::join(&app.ws(), "alice").await;
    let bob = Bot::join(&app.ws(), "bob").await;
    let (_, moderator) = token_for(&app, Role::Moderator, "mo").await;
    let photo = png_of(&face_photos(1)[0]);
    let up = |token: String, show: bool| {
        let photo = photo.clone();
        let app = &app;
        async move {
            let consent = json!({
                "show_to_players": show, "use_for_training": true, "include_in_exports": false,
                "text_version": emofy_server::web::uploads::CONSENT_VERSION,
            });
            crate::uploads::upload(app, &token, Some(&consent), Some(&photo)).await
        }
    };
    let (status, a) = up(alice.token.clone(), false).await;
    assert_eq!(status, 201, "{a}");
    // The same photo from someone else is stored separately: nothing says it exists.
    let (status, b) = up(bob.token.clone(), true).await;
    assert_eq!(status, 201, "{b}");
    assert_ne!(a["image"]["id"], b["image"]["id"]);
    // The same photo from the same contributor is their own duplicate.
    let (status, again) = up(alice.token.clone(), false).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("already_uploaded"))
    );

    let private = a["image"]["id"].as_str().unwrap();
    let shown = b["image"]["id"].as_str().unwrap();
    let get = |path: String, token: Option<String>| {
        let url = app.http(&path);
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| ("Authorization", a))
                .into_iter()
                .collect();
            http_bytes("GET", &url, &headers, b"").await
        }
    };
    for (who, token, meta_ok, private_ok) in [
        ("anonymous", None, false, false),
        ("another player", Some(bob.token.clone()), false, false),
        ("the contributor", Some(alice.token.clone()), true, true),
        ("a moderator", Some(moderator.clone()), true, true),
    ] {
        let (status, _, _) = get(format!("/api/images/{private}"), token.clone()).await;
        assert_eq!(
            status == 200,
            meta_ok,
            "{who}: metadata of a private upload ({status})"
        );
        let (status, head, _) = get(format!("/images/{private}.png"), token.clone()).await;
        assert_eq!(
            status == 200,
            private_ok,
            "{who}: bytes of a private upload ({status})"
        );
        if status == 200 {
            assert_eq!(header(&head, "cache-control"), Some("no-store"), "{who}");
        } else {
            assert_eq!(status, 404, "{who}");
        }
    }
    // Bob's upload is shown to players: anyone may fetch its bytes, nobody may cache them,
    // and its metadata is still only Bob's and the moderators'.
    let (status, head, _) = get(format!("/images/{shown}.png"), None).await;
    assert_eq!(status, 200);
    assert!(header(&head, "cache-control").is_some_and(|c| c.contains("no-store")));
    let (status, _, _) = get(format!("/api/images/{shown}"), Some(alice.token.clone())).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[actix_rt::test]
async fn metrics_are_for_operators_and_moderators_cannot_silence_their_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.token = Some("a-metrics-token-for-tests".into());
    let app = spawn_app(config).await;
    let (status, _, _) = http_bytes("GET", &app.http("/metrics"), &[], b"").await;
    assert_eq!(status, 404, "no token, no metrics");
    let (status, _, body) = http_bytes(
        "GET",
        &app.http("/metrics"),
        &[("Authorization", "Bearer a-metrics-token-for-tests")],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("emofy_"));

    let (_, admin) = token_for(&app, Role::Admin, "boss").await;
    let (moderator_id, moderator) = token_for(&app, Role::Moderator, "mo").await;
    let (other_id, _) = token_for(&app, Role::Moderator, "peer").await;
    let (admin_id, _) = token_for(&app, Role::Admin, "boss2").await;
    let player = Bot::join(&app.ws(), "pat").await;
    let act = |token: String, target: String, action: &'static str| {
        let url = app.http(&format!("/api/moderation/players/{target}"));
        async move {
            http_send(
                "POST",
                &url,
                &[
                    ("Content-Type", "application/json"),
                    ("Authorization", &format!("Bearer {token}")),
                ],
                Body::Fixed(json!({"action": action}).to_string().into_bytes()),
            )
            .await
        }
    };
    for target in [other_id.to_string(), admin_id.to_string()] {
        for action in ["ban", "reset"] {
            let (status, v) = act(moderator.clone(), target.clone(), action).await;
            assert_eq!(
                (status, v["code"].as_str()),
                (403, Some("forbidden")),
                "{action}: {v}"
            );
        }
    }
    let (status, _) = act(moderator.clone(), player.player.clone(), "ban").await;
    assert_eq!(status, 200, "a moderator bans a player");
    let (status, _) = act(admin.clone(), moderator_id.to_string(), "ban").await;
    assert_eq!(status, 200, "an admin bans a moderator");
    app.stop().await;

    // On its own address, the main port no longer serves metrics.
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics.bind = Some("127.0.0.1:0".into());
    let app = emofy_server::Application::build(config).await.unwrap();
    let (port, metrics_port) = (app.port(), app.metrics_port().unwrap());
    let stop = app.shutdown_handle();
    let done = actix_rt::spawn(async move { app.run_until_stopped().await.unwrap() });
    let (status, _, _) =
        http_bytes("GET", &format!("http://127.0.0.1:{port}/metrics"), &[], b"").await;
    assert_eq!(status, 404);
    let (status, _, _) = http_bytes(
        "GET",
        &format!("http://127.0.0.1:{metrics_port}/metrics"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    stop.shutdown();
    done.await.unwrap();
}
