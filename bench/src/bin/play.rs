//! `emofy-bench`: load benchmark for the play socket, side by side with a raw
//! WebSocket echo server on the same machine in the same run.
//!
//! It starts `emofy serve` (the sibling binary) on a fresh embedded data dir,
//! connects N bot sessions that each answer a round every `interval`, and
//! prints sessions, answers/s, answer→result latency p50/p99 and the server's
//! RSS per idle and per active session. The baseline is a minimal
//! tokio-tungstenite echo server (a child process too) driven by the same
//! number of clients sending a message of the same size at the same rate.
//!
//! ```text
//! cargo build --release --bins && target/release/emofy-bench --sessions 2000
//! ```

use std::cell::RefCell;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use emofy_bench::{Guard, free_port, percentile, rss_kib, serve_command, wait_port, wait_ready};

#[derive(Debug, Parser)]
#[command(
    name = "emofy-bench",
    about = "Play-socket load benchmark with a raw echo-server baseline"
)]
struct Args {
    /// Concurrent bot sessions.
    #[arg(long, default_value_t = 2000)]
    sessions: usize,
    /// Each bot answers one round per interval.
    #[arg(long, default_value_t = 2000)]
    interval_ms: u64,
    /// Length of the measured phase.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Embedded store `synchronous` setting for the server: full or normal.
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Store players, images and labels in this MongoDB (as `EMOFY_STORAGE__MONGODB__URI`; a fresh database).
    #[arg(long)]
    mongodb_uri: Option<String>,
    /// With `--mongodb-uri`: one transaction per answer instead of the label writer's group commit.
    #[arg(long)]
    one_per_answer: bool,
    /// Keep leaderboards on this Redis (as `EMOFY_REDIS__URL`; a random key prefix).
    #[arg(long)]
    redis_url: Option<String>,
    /// Skip the echo-server baseline.
    #[arg(long)]
    skip_echo: bool,
    /// Synthetic faces in the server's pool: enough that no bot runs out
    /// under the production consensus rules (each image takes at most 9 labels).
    #[arg(long, default_value_t = 4000)]
    images: u32,
    /// Internal: run as the echo server on this port.
    #[arg(long, hide = true)]
    echo_server: Option<u16>,
}

#[derive(Default)]
struct Totals {
    joined: usize,
    latencies_us: Vec<u64>,
    errors: usize,
}

struct Report {
    name: &'static str,
    sessions: usize,
    answers: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    rss_base_kib: u64,
    rss_idle_kib: u64,
    rss_active_kib: u64,
    errors: usize,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv_until(ws: &mut Ws, ty: &str) -> anyhow::Result<Value> {
    loop {
        let msg = ws.next().await.ok_or_else(|| anyhow!("closed"))??;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == ty {
                return Ok(v);
            }
            if v["type"] == "error" || v["type"] == "bye" || v["type"] == "no_round" {
                bail!("unexpected {v}");
            }
        }
    }
}

/// Sleeps until `until` while still reading the socket, so pings get their pongs as a browser's would.
async fn idle_until(ws: &mut Ws, until: Instant) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return Ok(()),
            msg = ws.next() => {
                let msg = msg.ok_or_else(|| anyhow!("closed"))??;
                if let Message::Text(t) = msg {
                    let v: Value = serde_json::from_str(&t)?;
                    if v["type"] == "bye" || v["type"] == "error" {
                        bail!("unexpected {v}");
                    }
                }
            }
        }
    }
}

/// Bot `i`'s first tick: bots spread evenly over the interval (golden-ratio sequence).
fn first_tick(start: Instant, interval: Duration, i: usize) -> Instant {
    start + interval.mul_f64((i as f64 * 0.618_033_988_75) % 1.0)
}

/// What the bots answer, in turn.
const BOT_ANSWERS: [&str; 5] = ["happy", "happy", "sad", "neutral", "happy"];

async fn emofy_bot(
    url: String,
    i: usize,
    start: Instant,
    stop: Instant,
    interval: Duration,
    totals: Rc<RefCell<Totals>>,
) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    ws.send(Message::text(
        json!({"type": "hello", "v": 1, "name": format!("bench-{i}")}).to_string(),
    ))
    .await?;
    recv_until(&mut ws, "welcome").await?;
    totals.borrow_mut().joined += 1;
    let mut tick = first_tick(start, interval, i);
    // Ask for the first round shortly before the first answer is due (rounds last 15 s).
    idle_until(&mut ws, tick - interval / 2).await?;
    ws.send(Message::text(r#"{"type":"next"}"#)).await?;
    let mut round = recv_until(&mut ws, "round").await?;
    let mut answered = 0usize;
    while tick < stop {
        idle_until(&mut ws, tick).await?;
        let t0 = Instant::now();
        // A crowd that does not always agree: some images retire, some are disputed.
        let emotion = BOT_ANSWERS[(i * 3 + answered) % BOT_ANSWERS.len()];
        answered += 1;
        ws.send(Message::text(
            json!({"type": "answer", "round": round["round"], "emotion": emotion}).to_string(),
        ))
        .await?;
        recv_until(&mut ws, "result").await?;
        let us = t0.elapsed().as_micros() as u64;
        totals.borrow_mut().latencies_us.push(us);
        tick += interval;
        ws.send(Message::text(r#"{"type":"next"}"#)).await?;
        round = recv_until(&mut ws, "round").await?;
    }
    Ok(())
}

async fn echo_bot(
    url: String,
    i: usize,
    start: Instant,
    stop: Instant,
    interval: Duration,
    totals: Rc<RefCell<Totals>>,
) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
    totals.borrow_mut().joined += 1;
    let payload = json!({"type": "answer", "round": "6f1c2a9e-7d1b-4c55-9a43-0b8e2a1d9f10", "emotion": "happy"})
        .to_string();
    let mut tick = first_tick(start, interval, i);
    while tick < stop {
        idle_until(&mut ws, tick).await?;
        let t0 = Instant::now();
        ws.send(Message::text(payload.clone())).await?;
        loop {
            match ws.next().await.ok_or_else(|| anyhow!("closed"))?? {
                Message::Text(_) => break,
                _ => continue,
            }
        }
        totals
            .borrow_mut()
            .latencies_us
            .push(t0.elapsed().as_micros() as u64);
        tick += interval;
    }
    Ok(())
}

async fn run_echo_server(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

async fn drive<F, Fut>(
    name: &'static str,
    pid: u32,
    url: String,
    args: &Args,
    bot: F,
) -> anyhow::Result<Report>
where
    F: Fn(String, usize, Instant, Instant, Duration, Rc<RefCell<Totals>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let interval = Duration::from_millis(args.interval_ms);
    let totals = Rc::new(RefCell::new(Totals::default()));
    let rss_base_kib = rss_kib(pid);
    // Connect and join everyone first (ramp), then measure idle memory, then run the timed phase.
    let ramp = Duration::from_secs(10) + Duration::from_millis(args.sessions as u64 * 3);
    let start = Instant::now() + ramp + Duration::from_secs(3);
    let stop = start + Duration::from_secs(args.duration_secs);
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for i in 0..args.sessions {
        let t = totals.clone();
        let fut = bot(url.clone(), i, start, stop, interval, t.clone());
        handles.push(local.spawn_local(async move {
            if let Err(e) = fut.await {
                t.borrow_mut().errors += 1;
                eprintln!("{name} bot {i}: {e}");
            }
        }));
        if i % 50 == 49 {
            local
                .run_until(tokio::time::sleep(Duration::from_millis(10)))
                .await;
        }
    }
    let joined_by = Instant::now() + ramp;
    local
        .run_until(async {
            while totals.borrow().joined < args.sessions && Instant::now() < joined_by {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep_until(start - Duration::from_millis(500)).await;
        })
        .await;
    let rss_idle_kib = rss_kib(pid);
    let mut rss_active_kib = 0;
    local
        .run_until(async {
            tokio::time::sleep_until(start + (stop - start) / 2).await;
            rss_active_kib = rss_kib(pid);
            for h in handles {
                let _ = h.await;
            }
        })
        .await;
    let t = totals.borrow();
    let mut lat: Vec<f64> = t
        .latencies_us
        .iter()
        .map(|&us| us as f64 / 1000.0)
        .collect();
    lat.sort_unstable_by(f64::total_cmp);
    Ok(Report {
        name,
        sessions: t.joined,
        answers: lat.len(),
        seconds: args.duration_secs as f64,
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        max_ms: lat.last().copied().unwrap_or(0.0),
        rss_base_kib,
        rss_idle_kib,
        rss_active_kib,
        errors: t.errors,
    })
}

/// A server to measure.
struct Target {
    name: &'static str,
    cmd: Command,
    /// The flag that takes the port to listen on.
    port_flag: &'static str,
    /// An HTTP path that answers 200 once start-up is over.
    ready: Option<&'static str>,
    /// The WebSocket path.
    path: &'static str,
}

/// Starts the target on a free port, waits until it is ready, drives it with `bot`, stops it.
fn measure<F, Fut>(
    rt: &tokio::runtime::Runtime,
    target: Target,
    args: &Args,
    bot: F,
) -> anyhow::Result<Report>
where
    F: Fn(String, usize, Instant, Instant, Duration, Rc<RefCell<Totals>>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let Target {
        name,
        mut cmd,
        port_flag,
        ready,
        path,
    } = target;
    let port = free_port()?;
    let child = Guard(
        cmd.args([port_flag, &port.to_string()])
            .spawn()
            .with_context(|| format!("starting {name}"))?,
    );
    rt.block_on(wait_port(port))?;
    if let Some(ready) = ready {
        rt.block_on(wait_ready(port, ready))?;
    }
    let url = format!("ws://127.0.0.1:{port}{path}");
    rt.block_on(drive(name, child.0.id(), url, args, bot))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(port) = args.echo_server {
        return rt.block_on(run_echo_server(port));
    }
    let mut reports = Vec::new();

    // The production consensus rules: images retire or are disputed, and the
    // pool is large enough (`--images`) that no bot runs out during the run.
    let (mut server, data) = serve_command("bench", args.images)?;
    server.env("EMOFY_STORAGE__SQLITE__SYNCHRONOUS", &args.synchronous);
    if let Some(uri) = &args.mongodb_uri {
        server
            .env("EMOFY_STORAGE__MONGODB__URI", uri)
            .env(
                "EMOFY_STORAGE__MONGODB__DATABASE",
                format!("emofy_bench_{}", std::process::id()),
            )
            .env(
                "EMOFY_STORAGE__MONGODB__GROUP_COMMIT",
                if args.one_per_answer { "false" } else { "true" },
            );
    }
    if let Some(url) = &args.redis_url {
        server.env("EMOFY_REDIS__URL", url).env(
            "EMOFY_REDIS__PREFIX",
            format!("emofy-bench-{}", std::process::id()),
        );
    }
    let target = Target {
        name: match (&args.mongodb_uri, args.one_per_answer, &args.redis_url) {
            (Some(_), false, _) => "emofy /ws/play (MongoDB-compatible, group commit)",
            (Some(_), true, _) => "emofy /ws/play (MongoDB-compatible, one transaction per answer)",
            (None, _, Some(_)) => "emofy /ws/play (SQLite, leaderboard on Redis)",
            (None, _, None) => "emofy /ws/play (embedded SQLite)",
        },
        cmd: server,
        port_flag: "--port",
        ready: Some("/readyz"),
        path: "/ws/play",
    };
    reports.push(measure(&rt, target, &args, emofy_bot)?);
    let _ = std::fs::remove_dir_all(&data);

    if !args.skip_echo {
        let target = Target {
            name: "raw tokio-tungstenite echo",
            cmd: Command::new(std::env::current_exe()?),
            port_flag: "--echo-server",
            ready: None,
            path: "/",
        };
        reports.push(measure(&rt, target, &args, echo_bot)?);
    }

    println!(
        "\n{} sessions, one message per session every {} ms, {} s measured, {} CPU cores (bots and server share them)\n",
        args.sessions,
        args.interval_ms,
        args.duration_secs,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "| server | sessions | answers/s | p50 ms | p99 ms | max ms | RSS idle KiB/session | RSS active KiB/session | errors |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &reports {
        let per = |kib: u64| {
            if r.sessions == 0 {
                0.0
            } else {
                kib.saturating_sub(r.rss_base_kib) as f64 / r.sessions as f64
            }
        };
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
            r.name,
            r.sessions,
            r.answers as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            per(r.rss_idle_kib),
            per(r.rss_active_kib),
            r.errors
        );
    }
    Ok(())
}
