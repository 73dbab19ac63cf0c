//! The `emofy` binary: graceful shutdown on SIGTERM, the admin command, HTTP endpoints.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::json;

fn start(data: &std::path::Path) -> Server {
    Server::start(data, &[])
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < until,
            "process did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[actix_rt::test]
async fn sigterm_tells_sessions_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let ws = format!("ws://127.0.0.1:{}/ws/play", server.port);
    let mut a = Bot::join(&ws, "Ann").await;
    let mut b = Bot::join(&ws, "Ben").await;
    let round = a.next_round().await.unwrap();
    let result = a.answer(&round, "happy").await;
    assert_eq!(result["type"], "result");
    let open = b.next_round().await.unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for bot in [&mut a, &mut b] {
        let bye = bot.recv_type("bye").await;
        assert_eq!(bye["reason"], "server_shutdown");
    }
    let exit = wait_exit(&mut server.child, Duration::from_secs(15));
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");

    // Everything acknowledged before the signal is on disk; the open round was closed as abandoned.
    let server = start(dir.path());
    let stats = get_json(&format!("http://127.0.0.1:{}/api/stats", server.port)).await;
    assert_eq!(stats["labels"], 1);
    assert_eq!(stats["rounds"], 2);
    let (mut b2, _) = Bot::resume(
        &ws.replace(&server_port(&ws), &server.port.to_string()),
        &b.token,
    )
    .await;
    // Ben was offered `open` before: never offered again.
    while let Some(r) = b2.next_round().await {
        assert_ne!(r["image"]["id"], open["image"]["id"]);
        b2.answer(&r, "sad").await;
    }
}

fn server_port(ws: &str) -> String {
    ws.split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[actix_rt::test]
async fn admin_creates_a_moderator_who_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut admin = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args([
            "admin",
            "create-moderator",
            "--username",
            "mod.one",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    admin
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough secret\n")
        .unwrap();
    let out = admin.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created moderator account mod.one"));

    // A short password and a duplicate username are refused.
    let mut again = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args([
            "admin",
            "create-moderator",
            "--username",
            "mod.two",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    again.stdin.take().unwrap().write_all(b"short\n").unwrap();
    assert!(!again.wait_with_output().unwrap().status.success());

    let server = start(dir.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    let ok = json!({"username": "mod.one", "password": "a long enough secret"}).to_string();
    let (status, _, body) =
        http_request("POST", &format!("{base}/api/login"), &[], Some(&ok)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["role"], "moderator");
    assert!(v["token"].as_str().unwrap().starts_with("v1."));
    for bad in [
        json!({"username": "mod.one", "password": "wrong password!"}),
        json!({"username": "nobody", "password": "a long enough secret"}),
    ] {
        let (status, _, body) = http_request(
            "POST",
            &format!("{base}/api/login"),
            &[],
            Some(&bad.to_string()),
        )
        .await;
        assert_eq!(status, 401);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "unauthorized");
    }
    // Operator-style values never become query operators.
    let injection = json!({"username": {"$gt": ""}, "password": {"$gt": ""}}).to_string();
    let (status, _, _) =
        http_request("POST", &format!("{base}/api/login"), &[], Some(&injection)).await;
    assert_eq!(status, 400);
}

#[actix_rt::test]
async fn http_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(test_config(dir.path())).await;
    assert_eq!(
        http_get(&app.http("/healthz")).await,
        (200, "ok".to_owned())
    );
    let ready = get_json(&app.http("/readyz")).await;
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["open_images"], 14);
    let (status, page) = http_get(&app.http("/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Emofy"));
    // The player-facing help says suggestions are sometimes tests.
    assert!(page.contains("The suggestion is sometimes a test."));
    assert_eq!(http_get(&app.http("/play.js")).await.0, 200);
    assert_eq!(http_get(&app.http("/nope.exe")).await.0, 404);

    let mut bot = Bot::join(&app.ws(), "Viewer").await;
    let round = bot.next_round().await.unwrap();
    let url = app.http(round["image"]["url"].as_str().unwrap());
    let (status, head, body) = http_request("GET", &url, &[], None).await;
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: image/png"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    let id = round["image"]["id"].as_str().unwrap();
    assert!(head.contains(&format!("etag: \"{id}\"")), "{head}");
    assert!(body.starts_with(b"\x89PNG"));
    // The bytes hash to the id: content addressing.
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&body)), id);
    let etag = format!("\"{id}\"");
    let (status, _, body) = http_request("GET", &url, &[("If-None-Match", &etag)], None).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    let (status, body) = http_get(&app.http(&format!("/images/{}", "0".repeat(64)))).await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"));
    assert_eq!(
        http_get(&app.http("/images/..%2f..%2fetc%2fpasswd"))
            .await
            .0,
        404
    );

    bot.answer(&round, "neutral").await;
    let metrics = http_get(&app.http("/metrics")).await.1;
    assert!(
        metrics.contains("emofy_ws_connections_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("emofy_rounds_offered_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("emofy_answers_total{outcome=\"accepted\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn admin_runs_a_truth_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .args(["admin", "truth-pass", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("truth pass: 0 labels"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
