//! The benches' shared harness: starting the server (or a baseline) as a
//! child process on a free port, waiting until it serves, measuring its
//! memory, and the figures every table prints.
//!
//! | binary | measures | baseline in the same run |
//! | --- | --- | --- |
//! | `emofy-bench` | the play socket: answer → result latency, RSS per session | a raw tokio-tungstenite echo server |
//! | `emofy-board-bench` | leaderboard updates/s on Redis, live viewers | `redis-benchmark` (ZINCRBY) |
//! | `emofy-upload-bench` | contributed photos: upload latency and throughput | the face detector and crop alone, in process |
//! | `emofy-simulate` | truth inference on simulated crowds (development only) | majority vote |

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::bail;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A child process, killed and reaped when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `emofy` server binary next to the running bench (`cargo build
/// --release --bins` builds both into one folder).
pub fn server_bin() -> anyhow::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("emofy");
    if !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bins)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `emofy serve` as every bench starts it: the server binary beside the
/// bench, a fresh data dir named for the bench, warn-level logs,
/// `demo_images` demo faces, stdout discarded, and loopback exempt from the
/// per-address limits (the load comes from one address). The caller adds
/// the port and its own settings. Returns the command and its data dir.
pub fn serve_command(bench: &str, demo_images: u32) -> anyhow::Result<(Command, PathBuf)> {
    let data = std::env::temp_dir().join(format!("emofy-{bench}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(server_bin()?);
    cmd.args(["serve", "--log-filter", "warn", "--demo-images"])
        .arg(demo_images.to_string())
        .arg("--data-dir")
        .arg(&data)
        .env("EMOFY_NET__EXEMPT_LOOPBACK", "true")
        .stdout(Stdio::null());
    Ok((cmd, data))
}

/// A port nobody listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resident memory of a process, in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The nearest-rank percentile `p` (0..=1) of sorted values (0 for none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Waits (up to a minute) until something accepts connections on `port`.
pub async fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("port {port} never opened")
}

/// Waits (up to a minute) until `GET path` answers 200: the server has
/// finished starting.
pub async fn wait_ready(port: u16, path: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let mut buf = Vec::new();
            if s.write_all(req.as_bytes()).await.is_ok()
                && s.read_to_end(&mut buf).await.is_ok()
                && buf.starts_with(b"HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{path} on port {port} never became ready")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
