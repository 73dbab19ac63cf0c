//! Test helpers: spawn the real app on port 0 and drive it with tokio-tungstenite bots.

use std::path::Path;
use std::time::Duration;

use emofy_server::config::Config;
use emofy_server::{Application, ShutdownHandle};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub struct TestApp {
    pub port: u16,
    pub shutdown: ShutdownHandle,
    pub done: tokio::task::JoinHandle<()>,
    /// The running app's stores and actors.
    pub services: std::sync::Arc<emofy_server::service::Services>,
}

impl TestApp {
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws/play", self.port)
    }

    /// Graceful shutdown, waiting until the server has stopped and flushed.
    pub async fn stop(self) {
        self.shutdown.shutdown();
        tokio::time::timeout(Duration::from_secs(15), self.done)
            .await
            .expect("app stops within 15 s")
            .expect("app task");
    }
}

/// A config for tests: port 0, a given data dir, a small demo pool, one worker.
pub fn test_config(data_dir: &Path) -> Config {
    let mut c = Config {
        port: 0,
        data_dir: data_dir.to_path_buf(),
        workers: 1,
        ..Config::default()
    };
    c.demo.images = 14;
    c.game.pool_refresh_secs = 1;
    // Deterministic rounds: gold, decoys and exploration are switched on by the tests about them.
    c.truth.gold = false;
    c.truth.decoys = false;
    // Every round shows the model's guess; the blind test split has a test of its own.
    c.truth.blind_test = false;
    c.truth.explore = 0.0;
    c.truth.pass_every_secs = 0;
    // Everyone trusted from the first label, and the demo faces' drawn
    // emotions unused: the newcomer rules and known labels are switched on
    // by the tests about them (`truth.rs`).
    c.truth.trust.newcomer_weight = 1.0;
    c.truth.trust.min_established = 0;
    c.truth.trust.known_labels = false;
    // The background trainer runs only where a test asks for it (`trainer.rs`).
    c.training.background.enabled = false;
    // Bots play far faster than people; tests of the limiter set it back.
    c.session.rate_per_sec = 1000;
    c.session.rate_burst = 1000;
    // Every bot connects from 127.0.0.1; the per-address limits have tests of their own.
    c.net.exempt_loopback = true;
    c
}

/// Builds and runs the app in the current actix system.
pub async fn spawn_app(config: Config) -> TestApp {
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let shutdown = app.shutdown_handle();
    let services = app.services();
    let done = actix_rt::spawn(async move {
        app.run_until_stopped().await.expect("app runs");
    });
    TestApp {
        port,
        shutdown,
        done,
        services,
    }
}

pub async fn get_json(url: &str) -> Value {
    let body = http_get(url).await.1;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// Minimal HTTP/1.1 GET over a raw socket: (status, body, headers text).
pub async fn http_get(url: &str) -> (u16, String) {
    let (status, _, body) = http_request("GET", url, &[], None).await;
    (status, String::from_utf8_lossy(&body).to_string())
}

pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if body.is_some() {
        all.push(("Content-Type", "application/json"));
    }
    http_bytes(method, url, &all, body.unwrap_or("").as_bytes()).await
}

/// Sends a request with any body through a real HTTP client (awc); returns
/// the status, the response head as text (status line and `name: value`
/// lines, for [`header`]) and the body.
pub async fn http_bytes(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req
        .send_body(body.to_vec())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut head = format!("HTTP/1.1 {}\r\n", res.status().as_u16());
    for (k, v) in res.headers() {
        head.push_str(&format!(
            "{}: {}\r\n",
            k,
            String::from_utf8_lossy(v.as_bytes())
        ));
    }
    let body = res
        .body()
        .limit(256 << 20)
        .await
        .unwrap_or_else(|e| panic!("{url}: body: {e}"));
    (res.status().as_u16(), head, body.to_vec())
}

/// A WebSocket player.
pub struct Bot {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub player: String,
    pub token: String,
    pub score: u64,
}

impl Bot {
    pub async fn connect(url: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let (ws, _) = connect_async(url).await.expect("ws connect");
        ws
    }

    /// Joins as a new guest.
    pub async fn join(url: &str, name: &str) -> Bot {
        let ws = Self::connect(url).await;
        Self::hello(ws, json!({"type": "hello", "v": 1, "name": name})).await
    }

    /// Resumes with a token.
    pub async fn resume(url: &str, token: &str) -> (Bot, Value) {
        let mut ws = Self::connect(url).await;
        send(&mut ws, json!({"type": "hello", "v": 1, "token": token})).await;
        let welcome = recv_type(&mut ws, "welcome").await;
        let bot = Bot {
            ws,
            player: welcome["player"]["id"].as_str().unwrap().to_owned(),
            token: welcome["token"].as_str().unwrap().to_owned(),
            score: welcome["score"].as_u64().unwrap(),
        };
        (bot, welcome)
    }

    async fn hello(mut ws: WebSocketStream<MaybeTlsStream<TcpStream>>, hello: Value) -> Bot {
        send(&mut ws, hello).await;
        let welcome = recv_type(&mut ws, "welcome").await;
        assert_eq!(welcome["v"], 1);
        assert_eq!(welcome["resumed"], false);
        Bot {
            ws,
            player: welcome["player"]["id"].as_str().unwrap().to_owned(),
            token: welcome["token"].as_str().unwrap().to_owned(),
            score: welcome["score"].as_u64().unwrap(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        send(&mut self.ws, v).await;
    }

    /// Next JSON message of any type (skips pings), tracking score changes.
    pub async fn recv(&mut self) -> Value {
        let v = recv(&mut self.ws).await;
        if matches!(v["type"].as_str(), Some("result") | Some("score")) {
            self.score = v["score"].as_u64().unwrap();
        }
        v
    }

    /// Next message of type `ty`, skipping leaderboard and score pushes.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
            assert!(
                matches!(v["type"].as_str(), Some("leaderboard") | Some("score")),
                "expected {ty}, got {v}"
            );
        }
    }

    /// Asks for a round: `Some(round)` or `None` when nothing is left.
    pub async fn next_round(&mut self) -> Option<Value> {
        self.send(json!({"type": "next"})).await;
        loop {
            let v = self.recv().await;
            match v["type"].as_str() {
                Some("round") => return Some(v),
                Some("no_round") => return None,
                Some("leaderboard") | Some("score") => continue,
                _ => panic!("unexpected {v}"),
            }
        }
    }

    pub async fn answer(&mut self, round: &Value, emotion: &str) -> Value {
        self.send(json!({"type": "answer", "round": round["round"], "emotion": emotion}))
            .await;
        self.recv_type("result").await
    }
}

pub async fn send(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

pub async fn recv(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("stream open")
            .expect("frame");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(c) => return json!({"type": "__closed", "close": format!("{c:?}")}),
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

pub async fn recv_type(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>, ty: &str) -> Value {
    loop {
        let v = recv(ws).await;
        if v["type"] == ty {
            return v;
        }
        assert!(
            matches!(v["type"].as_str(), Some("leaderboard") | Some("score")),
            "expected {ty}, got {v}"
        );
    }
}

/// A request body for [`http_send`].
pub enum Body {
    None,
    /// Bytes with a `Content-Length`.
    Fixed(Vec<u8>),
    /// `total` bytes of `fill`, sent with chunked transfer encoding (no length announced).
    Chunked {
        fill: u8,
        total: usize,
    },
}

/// Undoes `Transfer-Encoding: chunked` (for the raw-socket helpers).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[pos + 2..pos + 2 + size]);
        b = &b[pos + 2 + size + 2..];
    }
    out
}

/// One HTTP/1.1 request over a raw socket, for what a real client would not
/// send (slow and chunked bodies, early answers). The body is written while the
/// response is read, so a server that answers early (413) is seen.
pub async fn http_send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h.to_owned(), format!("/{p}")))
        .unwrap_or((rest.to_owned(), "/".into()));
    let s = TcpStream::connect(&host).await.expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match &body {
        Body::None => head.push_str("Content-Length: 0\r\n"),
        Body::Fixed(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        Body::Chunked { .. } => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        match body {
            Body::None => {}
            Body::Fixed(b) => {
                for part in b.chunks(64 * 1024) {
                    wr.write_all(part).await?;
                }
            }
            Body::Chunked { fill, total } => {
                let chunk = vec![fill; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    let n = chunk.len().min(total - sent);
                    wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                    wr.write_all(&chunk[..n]).await?;
                    wr.write_all(b"\r\n").await?;
                    sent += n;
                }
                wr.write_all(b"0\r\n\r\n").await?;
            }
        }
        wr.flush().await?;
        Ok::<_, std::io::Error>(wr)
    });
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut buf)).await;
    writer.abort();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
    };
    (status, json)
}

/// A multipart/form-data body: `(name, filename, bytes)` parts. Returns (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "emofy-test-boundary-7c1f";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The MongoDB-compatible test server (`scripts/test.sh` starts SecantusDB;
/// any MongoDB 6+ works). Each test uses its own database and drops it.
pub fn mongo_uri() -> String {
    std::env::var("TEST_MONGODB_URI").unwrap_or_else(|_| {
        "mongodb://127.0.0.1:27017/?directConnection=true&retryWrites=false".into()
    })
}

/// The real `emofy` binary, serving on a free port (killed when dropped).
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
}

impl Drop for Server {
    /// Never leave a server running when a test fails.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `emofy serve` on `data` with 14 demo images and test settings, plus `env`.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emofy"));
        cmd.args([
            "serve",
            "--port",
            "0",
            "--demo-images",
            "14",
            "--log-filter",
            "warn",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("EMOFY_WORKERS", "1")
        .env("EMOFY_SESSION__RATE_PER_SEC", "1000")
        .env("EMOFY_NET__EXEMPT_LOOPBACK", "true")
        .env("EMOFY_SESSION__RATE_BURST", "1000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn emofy");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().expect("a line").expect("utf-8");
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        Server { child, port }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws/play", self.port)
    }

    /// A figure from `/proc/<pid>/status`, in KiB (`VmHWM`: peak RSS; `VmRSS`: now).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }
}

/// A player with `role`, created in the app's store, and a token for it
/// (signed as `welcome` and `POST /api/login` sign them).
pub async fn token_for(
    app: &TestApp,
    role: emofy_game::Role,
    name: &str,
) -> (emofy_game::PlayerId, String) {
    let id = emofy_game::PlayerId(uuid::Uuid::new_v4());
    let now = app.services.clock.now();
    app.services
        .players
        .create_player(id, name, role, now)
        .await
        .unwrap();
    let token = app.services.tokens.issue(&emofy_server::auth::Claims {
        player: id,
        role,
        expires: now.plus(3_600_000),
    });
    (id, token)
}

/// A raw HTTP/1.1 request and everything the server sends back before it
/// closes the connection (or `within` passes): (status, head, body).
pub async fn raw_http(addr: &str, request: &[u8], within: Duration) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(within, s.read_to_end(&mut buf)).await;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head, buf[split + 4..].to_vec())
}

/// The value of a header in a response head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Creates a staff account with `role` and logs it in: its bearer token.
pub async fn moderator_token(app: &TestApp, role: emofy_game::Role) -> String {
    use emofy_game::{Millis, PlayerId};
    use emofy_server::store::AccountRecord;
    use uuid::Uuid;
    let username = format!("mod-{}", Uuid::new_v4().simple());
    app.services
        .players
        .create_account(
            AccountRecord {
                username: username.clone(),
                player: PlayerId(Uuid::new_v4()),
                password_hash: emofy_server::auth::hash_password("correct horse battery").unwrap(),
                role,
                failures: Default::default(),
            },
            "Mo",
            Millis(1),
        )
        .await
        .unwrap();
    let (status, login) = http_send(
        "POST",
        &app.http("/api/login"),
        &[("Content-Type", "application/json")],
        Body::Fixed(
            json!({"username": username, "password": "correct horse battery"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    login["token"].as_str().unwrap().to_owned()
}
