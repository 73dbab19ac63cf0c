//! `emofy-board-bench`: leaderboard throughput on Redis and live-viewer push
//! latency, side by side with `redis-benchmark` on the same Redis in the
//! same run.
//!
//! 1. `redis-benchmark` running `ZINCRBY` on one sorted set, without and
//!    with pipelining (`-P 16`): the ceiling for one Redis command per update.
//! 2. The raw `Leaderboard::apply` API (`RedisLeaderboard`): one change per
//!    call, and batches of 100 from several callers at once. Each change is
//!    one idempotency claim, a name, and three boards (all-time, day, week):
//!    about eight Redis commands, run inside one Lua script per call.
//! 3. `emofy serve` with `EMOFY_REDIS__URL`, N viewers on `/ws/leaderboard`:
//!    a new leader is written through the API every 200 ms; latency is from
//!    the write to each viewer receiving a `board` frame that shows it.
//!
//! ```text
//! cargo build --release --bins && target/release/emofy-board-bench --viewers 1000
//! ```

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use emofy_game::PlayerId;
use emofy_server::leaderboard::redis::RedisLeaderboard;
use emofy_server::store::{Leaderboard, ScoreChange, ScoreReason};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use emofy_bench::{Guard, free_port, percentile, serve_command, wait_ready};

#[derive(Debug, Parser)]
#[command(
    name = "emofy-board-bench",
    about = "Leaderboard throughput and viewer latency"
)]
struct Args {
    /// Redis to use (its data under a random prefix is deleted afterwards).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Score changes per throughput phase.
    #[arg(long, default_value_t = 100_000)]
    changes: usize,
    /// Live viewers in the latency phase.
    #[arg(long, default_value_t = 1000)]
    viewers: usize,
    /// New leaders written in the latency phase (one every 200 ms).
    #[arg(long, default_value_t = 30)]
    leaders: usize,
}

fn change(player: u128, delta: u32, key: String) -> ScoreChange {
    ScoreChange {
        player: PlayerId(uuid::Uuid::from_u128(player)),
        name: format!("bench {player}"),
        delta,
        total: 0,
        key,
        at: emofy_server::clock::now(),
        reason: ScoreReason::Answer,
    }
}

/// `redis-benchmark` requests/s for ZINCRBY with pipeline depth `pipeline`.
fn redis_benchmark(host: &str, port: u16, n: usize, pipeline: usize) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-q",
            "-c",
            "50",
            "-r",
            "100000",
        ])
        .args(["-n", &n.to_string(), "-P", &pipeline.to_string()])
        .args(["ZINCRBY", "emofy-bench:zset", "1", "player:__rand_int__"])
        .output()
        .context("redis-benchmark (Debian package redis-tools) is needed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "ZINCRBY emofy-bench:zset 1 player:__rand_int__: 84388.19 requests per second, p50=…"
    text.split("requests per second")
        .next()
        .and_then(|s| s.rsplit(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unexpected redis-benchmark output: {text}"))
}

async fn cleanup(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    let _: () = redis::cmd("DEL")
        .arg("emofy-bench:zset")
        .query_async(&mut conn)
        .await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let authority = args
        .redis_url
        .strip_prefix("redis://")
        .context("a redis:// url")?
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().context("redis port")?),
        None => (authority.to_owned(), 6379),
    };
    let prefix = format!("emofy-bench-{}", uuid::Uuid::new_v4().simple());
    let mut rows: Vec<(String, f64)> = Vec::new();

    eprintln!("redis-benchmark…");
    rows.push((
        "redis-benchmark ZINCRBY, 50 clients, no pipelining (1 command per update)".into(),
        redis_benchmark(&host, port, args.changes, 1)?,
    ));
    rows.push((
        "redis-benchmark ZINCRBY, 50 clients, pipeline 16".into(),
        redis_benchmark(&host, port, args.changes * 5, 16)?,
    ));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let latencies = rt.block_on(async {
        let board = Arc::new(RedisLeaderboard::connect(
            &args.redis_url,
            &prefix,
            Duration::from_secs(3600),
            Duration::from_secs(5),
        )?);
        eprintln!("raw API…");
        let n = args.changes / 10;
        let t = Instant::now();
        for i in 0..n {
            board
                .apply(&[change((i % 5000) as u128, 3, format!("one:{i}"))])
                .await?;
        }
        rows.push((
            "Leaderboard::apply, 1 change per call, 1 caller".into(),
            n as f64 / t.elapsed().as_secs_f64(),
        ));
        let callers = 8;
        let per_caller = args.changes / callers;
        let t = Instant::now();
        let tasks = (0..callers).map(|c| {
            let board = board.clone();
            async move {
                for start in (0..per_caller).step_by(100) {
                    let batch: Vec<ScoreChange> = (start..(start + 100).min(per_caller))
                        .map(|i| {
                            change(
                                ((c * per_caller + i) % 20_000) as u128,
                                2,
                                format!("b:{c}:{i}"),
                            )
                        })
                        .collect();
                    board.apply(&batch).await?;
                }
                anyhow::Ok(())
            }
        });
        for r in futures_util::future::join_all(tasks).await {
            r?;
        }
        rows.push((
            format!("Leaderboard::apply, batches of 100, {callers} callers"),
            (per_caller * callers) as f64 / t.elapsed().as_secs_f64(),
        ));

        eprintln!("{} viewers…", args.viewers);
        let http_port = free_port()?;
        let (mut server, data) = serve_command("board-bench", 0)?;
        let _server = Guard(
            server
                .arg("--port")
                .arg(http_port.to_string())
                .env("EMOFY_REDIS__URL", &args.redis_url)
                .env("EMOFY_REDIS__PREFIX", &prefix)
                .env("EMOFY_LEADERBOARD__VIEWER_MAILBOX", "64")
                .spawn()?,
        );
        wait_ready(http_port, "/readyz").await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
        let mut handles = Vec::new();
        for _ in 0..args.viewers {
            let (mut ws, _) = tokio_tungstenite::connect_async(format!(
                "ws://127.0.0.1:{http_port}/ws/leaderboard"
            ))
            .await?;
            ws.send(Message::text(
                json!({"type": "subscribe", "period": "all_time", "top": 10}).to_string(),
            ))
            .await?;
            let tx = tx.clone();
            handles.push(tokio::spawn(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Text(t) = msg {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        if let Some(score) = v["top"][0]["score"].as_u64() {
                            let _ = tx.send((score, Instant::now()));
                        }
                    }
                }
            }));
        }
        drop(tx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        while rx.try_recv().is_ok() {}
        // Each new leader's score is unique: 1,000,000 + k.
        let mut sent: Vec<Instant> = Vec::new();
        let mut seen: Vec<f64> = Vec::new();
        let base = 1_000_000u64;
        for k in 0..args.leaders {
            // One player climbs: its total becomes `base + k`.
            let delta = if k == 0 { base as u32 } else { 1 };
            sent.push(Instant::now());
            board
                .apply(&[change(u128::MAX - 1, delta, format!("lead:{k}"))])
                .await?;
            let deadline = Instant::now() + Duration::from_millis(200);
            while let Ok(Some((s, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await
            {
                if s >= base {
                    let idx = (s - base) as usize;
                    if let Some(t0) = sent.get(idx) {
                        seen.push(at.duration_since(*t0).as_secs_f64() * 1000.0);
                    }
                }
            }
        }
        for h in handles {
            h.abort();
        }
        let _ = std::fs::remove_dir_all(&data);
        cleanup(&args.redis_url, &prefix).await?;
        anyhow::Ok(seen)
    })?;

    println!(
        "\nSame Redis ({}), same run, {} CPU cores shared by Redis, server and clients\n",
        args.redis_url,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| path | score updates/s |");
    println!("| --- | ---: |");
    for (name, rate) in &rows {
        println!("| {name} | {rate:.0} |");
    }
    let mut l = latencies;
    l.sort_by(f64::total_cmp);
    println!(
        "\n| viewers | updates seen | p50 ms | p99 ms | max ms |\n| ---: | ---: | ---: | ---: | ---: |\n| {} | {} | {:.1} | {:.1} | {:.1} |",
        args.viewers,
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
