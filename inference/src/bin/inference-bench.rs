//! Times the candle mini-Xception: images/s and per-call latency p50/p99 for
//! one batch size. Threads come from `RAYON_NUM_THREADS` (candle's CPU pool).
//! Run through `inference/bench/run.sh`, which compares with TensorFlow on
//! the same weights in the same run.
//!
//! Usage: `inference-bench BATCH ITERATIONS`

use std::time::Instant;

use candle_core::{Device, Tensor};
use emofy_inference::mini_xception::MiniXception;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().as_deref().unwrap_or("1").parse()?;
    let iters: usize = args.next().as_deref().unwrap_or("200").parse()?;
    let model = MiniXception::bundled()?;
    // Deterministic pseudo-random pixels.
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let pixels: Vec<u8> = (0..batch * 64 * 64)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 56) as u8
        })
        .collect();
    let input = Tensor::from_vec(pixels, (batch, 64, 64), &Device::Cpu)?;
    let x = model.normalize(&input)?;
    for _ in 0..10 {
        model.logits(&x)?;
    }
    let mut lat = Vec::with_capacity(iters);
    let started = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        let y = model.logits(&x)?;
        let _ = candle_nn::ops::softmax(&y, candle_core::D::Minus1)?.to_vec2::<f32>()?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let total = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "{{\"runtime\":\"candle\",\"batch\":{batch},\"images_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        (batch * iters) as f64 / total,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
