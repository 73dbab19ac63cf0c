//! Times training the candle mini-Xception: images/s of full training steps
//! (forward in training mode, backward, AdamW) at one batch size, and the
//! share of the forward and backward passes. Threads come from
//! `RAYON_NUM_THREADS`. Run through `inference/bench/train.sh`, which runs
//! PyTorch on the same architecture and batch in the same run.
//!
//! Usage: `train-bench BATCH STEPS [all|last_block]`

use std::time::Instant;

use candle_core::{D, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use emofy_inference::train::{Trainable, TrainableNet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().as_deref().unwrap_or("32").parse()?;
    let steps: usize = args.next().as_deref().unwrap_or("20").parse()?;
    let which = match args.next().as_deref() {
        Some("last_block") => Trainable::LastBlock,
        _ => Trainable::All,
    };
    let mut net = TrainableNet::init(1)?;
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let pixels: Vec<f32> = (0..batch * 64 * 64)
        .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(pixels, (batch, 1, 64, 64), &Device::Cpu)?;
    let labels: Vec<u32> = (0..batch).map(|_| (next() % 7) as u32).collect();
    let labels = Tensor::from_vec(labels, batch, &Device::Cpu)?;
    let mut opt = AdamW::new(net.trainable(which), ParamsAdamW::default())?;
    let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
    let mut step = |net: &mut TrainableNet, timed: bool| -> candle_core::Result<()> {
        let t0 = Instant::now();
        let logits = net.forward(&x, true, which)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        let _ = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&grads)?;
        let t3 = Instant::now();
        if timed {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            upd += (t3 - t2).as_secs_f64();
        }
        let _ = logits.argmax(D::Minus1)?;
        Ok(())
    };
    for _ in 0..3 {
        step(&mut net, false)?;
    }
    let started = Instant::now();
    for _ in 0..steps {
        step(&mut net, true)?;
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "{{\"runtime\":\"candle\",\"batch\":{batch},\"images_per_s\":{:.1},\"forward_ms\":{:.1},\"backward_ms\":{:.1},\"update_ms\":{:.1}}}",
        (batch * steps) as f64 / total,
        fwd * 1000.0 / steps as f64,
        bwd * 1000.0 / steps as f64,
        upd * 1000.0 / steps as f64
    );
    Ok(())
}
