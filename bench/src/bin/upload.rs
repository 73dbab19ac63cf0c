//! `emofy-upload-bench`: end-to-end upload → prediction latency.
//!
//! Starts `emofy serve` (the sibling binary) on a fresh embedded data dir,
//! joins as a player for a token, and uploads distinct photos (synthetic faces
//! pasted into a larger scene, JPEG) over HTTP, one at a time and then with
//! several in flight. Latency is from the first byte of the request to the
//! `201 Created` carrying the face box and the model's probabilities (the
//! crop is durably stored by then). It also times the stages in-process on
//! the same photos (decode + detect + crop, then one model call) so the
//! table says where the time goes.
//!
//! ```text
//! cargo build --release --bins && target/release/emofy-upload-bench --photos 200
//! ```

use std::io::Cursor;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use emofy_inference::Classifier;
use emofy_inference::face::FaceDetector;
use emofy_server::config::UploadConfig;
use futures_util::{SinkExt, StreamExt};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, imageops};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use emofy_bench::{Guard, free_port, percentile, serve_command, wait_ready};

#[derive(Debug, Parser)]
#[command(name = "emofy-upload-bench", about = "Upload → prediction latency")]
struct Args {
    /// Distinct photos to upload per phase.
    #[arg(long, default_value_t = 100)]
    photos: usize,
    /// Photo width in pixels (height is 3/4 of it).
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Uploads in flight in the concurrent phase.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
}

/// Distinct photos the bundled detector finds a face in.
fn photos(n: usize, width: u32, detector: &FaceDetector) -> anyhow::Result<Vec<Vec<u8>>> {
    let height = width * 3 / 4;
    let side = height / 2;
    let mut out = Vec::with_capacity(n);
    let mut index = 0u32;
    while out.len() < n {
        if index > (n as u32) * 20 + 100 {
            bail!("the detector found only {} faces", out.len());
        }
        let face = emofy_server::dataset::demo_faces::generate(index as u64 / 7 + 1, index)?;
        index += 1;
        let face = image::load_from_memory(&face.png)?.to_rgb8();
        let face = imageops::resize(&face, side, side, imageops::FilterType::Triangle);
        let shade = (index % 50) as u8;
        let mut scene = RgbImage::from_fn(width, height, |x, y| {
            Rgb([
                (60 + x * 120 / width) as u8 + shade,
                (80 + y * 100 / height) as u8,
                150,
            ])
        });
        imageops::overlay(
            &mut scene,
            &face,
            i64::from(width / 3),
            i64::from(height / 5),
        );
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(scene).write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)?;
        // Keep it if the server will find the face: as it decodes it, from the JPEG.
        let decoded = image::load_from_memory(&jpeg)?;
        if detector.largest_face(&decoded.to_luma8()).is_some() {
            out.push(jpeg);
        }
    }
    Ok(out)
}

fn multipart(photo: &[u8]) -> (String, Vec<u8>) {
    let boundary = "emofy-bench-5b2e";
    let consent = json!({
        "show_to_players": true, "use_for_training": true, "include_in_exports": false,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    });
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\n{consent}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p.jpg\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One upload; returns the latency in ms and the HTTP status.
async fn upload(port: u16, token: &str, photo: &[u8]) -> anyhow::Result<(f64, u16)> {
    let (ct, body) = multipart(photo);
    let head = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status == 201 && !text.contains("\"probabilities\"") {
        bail!("201 without a prediction: {text}");
    }
    Ok((ms, status))
}

async fn token(port: u16) -> anyhow::Result<String> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/play")).await?;
    ws.send(Message::text(
        json!({"type": "hello", "v": 1, "name": "uploader"}).to_string(),
    ))
    .await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "welcome" {
                return v["token"]
                    .as_str()
                    .map(str::to_owned)
                    .context("welcome without a token");
            }
        }
    }
    bail!("no welcome")
}

struct Row {
    name: String,
    n: usize,
    per_s: f64,
    p50: f64,
    p99: f64,
    max: f64,
    failed: usize,
}

fn row(name: String, mut ms: Vec<f64>, wall: Duration, failed: usize) -> Row {
    ms.sort_by(f64::total_cmp);
    Row {
        name,
        n: ms.len(),
        per_s: ms.len() as f64 / wall.as_secs_f64(),
        p50: percentile(&ms, 0.5),
        p99: percentile(&ms, 0.99),
        max: ms.last().copied().unwrap_or(0.0),
        failed,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let detector = FaceDetector::bundled(UploadConfig::default().min_face_score)?;
    let model = emofy_inference::mini_xception::MiniXception::bundled()?;
    eprintln!(
        "generating {} photos of {}×{}…",
        args.photos * 2,
        args.width,
        args.width * 3 / 4
    );
    let all = photos(args.photos * 2, args.width, &detector)?;
    let mean_kib = all.iter().map(Vec::len).sum::<usize>() as f64 / all.len() as f64 / 1024.0;

    // Stages in-process, on the same photos.
    let config = emofy_server::Config::default();
    let rules = emofy_server::imaging::photo::PhotoRules {
        decode: config.imaging.limits(),
        crop_side: config.upload.crop_side,
        min_face_score: config.upload.min_face_score,
    };
    let mut prep_ms = Vec::new();
    let mut model_ms = Vec::new();
    for p in all.iter().take(args.photos) {
        let t = Instant::now();
        let done = emofy_server::imaging::photo::process_photo(
            p,
            &rules,
            &detector,
            model.input_side(),
            false,
        )?;
        prep_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        model.classify(&done.model_input)?;
        model_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let busy = |ms: &[f64]| Duration::from_secs_f64(ms.iter().sum::<f64>() / 1000.0);
    let (prep_wall, model_wall) = (busy(&prep_ms), busy(&model_ms));
    let mut rows = vec![
        row(
            "in-process: decode + detect + crop + PNG".into(),
            prep_ms,
            prep_wall,
            0,
        ),
        row(
            "in-process: one model call (64×64)".into(),
            model_ms,
            model_wall,
            0,
        ),
    ];

    let port = free_port()?;
    let (mut server, data) = serve_command("upload-bench", 0)?;
    let _server = Guard(
        server
            .arg("--port")
            .arg(port.to_string())
            .env("EMOFY_UPLOAD__PER_HOUR", "1000000")
            .spawn()?,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        wait_ready(port, "/readyz").await?;
        let token = token(port).await?;
        let (first, second) = all.split_at(args.photos);

        let mut ms = Vec::new();
        let mut failed = 0;
        let t = Instant::now();
        for p in first {
            match upload(port, &token, p).await? {
                (m, 201) => ms.push(m),
                _ => failed += 1,
            }
        }
        rows.push(row(
            "HTTP upload → 201 with prediction, 1 in flight".into(),
            ms,
            t.elapsed(),
            failed,
        ));

        let t = Instant::now();
        let results = futures_util::stream::iter(second.iter().map(|p| upload(port, &token, p)))
            .buffer_unordered(args.concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut ms = Vec::new();
        let mut failed = 0;
        for r in results {
            match r? {
                (m, 201) => ms.push(m),
                _ => failed += 1,
            }
        }
        rows.push(row(
            format!(
                "HTTP upload → 201 with prediction, {} in flight",
                args.concurrency
            ),
            ms,
            t.elapsed(),
            failed,
        ));
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&data);

    println!(
        "\n{} photos per phase, {}×{} JPEG (mean {:.0} KiB), {} CPU cores (client and server share them)\n",
        args.photos,
        args.width,
        args.width * 3 / 4,
        mean_kib,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| what | n | per s | p50 ms | p99 ms | max ms | refused |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.name, r.n, r.per_s, r.p50, r.p99, r.max, r.failed
        );
    }
    Ok(())
}
