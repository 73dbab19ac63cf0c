//! The mini-Xception as a trainable network: every weight a candle `Var`,
//! batch norm in training mode (batch statistics, moving averages with
//! Keras' momentum 0.99 — candle's 0.01 — and ε = 1e-3), the custom ops
//! with a backward pass ([`super::ops`]).
//!
//! Weights keep the converted Keras layer names (`conv2d_1.weight`,
//! `batch_normalization_1.gamma`, `separable_conv2d_1.depthwise`, …), so a
//! trained network saves to the same `model.safetensors` layout the serving
//! [`MiniXception`](crate::mini_xception::MiniXception) loads, which folds
//! each batch norm into its convolution. [`TrainableNet::forward`] with
//! `train = false` is the unfolded form of that serving model (the parity
//! test holds the two together).

use std::collections::BTreeMap;

use candle_core::{D, DType, Device, Tensor, Var};

use super::augment::Rng;
use super::ops::{batch_norm, conv3x3_train, depthwise3x3, max_pool3x3s2};
use crate::mini_xception::{BLOCKS, every_other};

/// Keras' batch-norm momentum: moving = 0.99·moving + 0.01·batch.
const MOMENTUM: f64 = 0.99;

/// Which weights a training run updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainable {
    /// Every layer.
    All,
    /// The last residual block and the classifier head (the rest frozen,
    /// its batch norms kept in inference mode).
    LastBlock,
}

/// The network: trainable weights, and the batch norms' moving statistics.
pub struct TrainableNet {
    vars: BTreeMap<String, Var>,
    stats: BTreeMap<String, Tensor>,
    eps: f64,
    /// The moving averages' momentum: Keras' 0.99 while training; a
    /// running mean while [`TrainableNet::recalibrate`] re-estimates them.
    momentum: f64,
    device: Device,
}

/// A standard normal draw (Box–Muller) for a reproducible initialisation.
fn normal(rng: &mut Rng) -> f64 {
    let (u, v) = (rng.unit().max(f64::MIN_POSITIVE), rng.unit());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Every weight's name and shape, in Keras layer order.
fn shapes() -> Vec<(String, Vec<usize>)> {
    let mut out = vec![
        ("conv2d_1.weight".to_owned(), vec![8, 1, 3, 3]),
        ("conv2d_2.weight".to_owned(), vec![8, 8, 3, 3]),
    ];
    let mut bn = vec![(1usize, 8usize), (2, 8)];
    for (c, o, s1, b1, s2, b2, sc, sbn) in BLOCKS {
        out.push((format!("separable_conv2d_{s1}.depthwise"), vec![c, 1, 3, 3]));
        out.push((format!("separable_conv2d_{s1}.pointwise"), vec![o, c, 1, 1]));
        out.push((format!("separable_conv2d_{s2}.depthwise"), vec![o, 1, 3, 3]));
        out.push((format!("separable_conv2d_{s2}.pointwise"), vec![o, o, 1, 1]));
        out.push((format!("conv2d_{sc}.weight"), vec![o, c, 1, 1]));
        bn.extend([(b1, o), (b2, o), (sbn, o)]);
    }
    out.push(("conv2d_7.weight".to_owned(), vec![7, 128, 3, 3]));
    out.push(("conv2d_7.bias".to_owned(), vec![7]));
    bn.sort_unstable();
    for (i, ch) in bn {
        for p in ["gamma", "beta", "moving_mean", "moving_variance"] {
            out.push((format!("batch_normalization_{i}.{p}"), vec![ch]));
        }
    }
    out
}

fn is_stat(name: &str) -> bool {
    name.ends_with(".moving_mean") || name.ends_with(".moving_variance")
}

impl TrainableNet {
    /// A network with fresh weights (He-normal convolutions, identity batch
    /// norms), reproducible from `seed`.
    pub fn init(seed: u64) -> candle_core::Result<TrainableNet> {
        let device = Device::Cpu;
        let mut rng = Rng::new(seed);
        let mut tensors = BTreeMap::new();
        for (name, shape) in shapes() {
            let len: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with("gamma") || name.ends_with("moving_variance") {
                vec![1.0; len]
            } else if name.ends_with("beta") || name.ends_with("mean") || name.ends_with("bias") {
                vec![0.0; len]
            } else {
                // Fan-in: input channels × kernel area (depthwise: the kernel area).
                let fan_in = if name.ends_with("depthwise") {
                    9
                } else {
                    shape[1..].iter().product::<usize>()
                };
                let std = (2.0 / fan_in as f64).sqrt();
                (0..len).map(|_| (normal(&mut rng) * std) as f32).collect()
            };
            tensors.insert(name, Tensor::from_vec(values, shape, &device)?);
        }
        Self::from_tensors(tensors, 1e-3)
    }

    /// A network starting from saved weights (e.g. the serving model's
    /// `model.safetensors`), to fine-tune.
    pub fn from_safetensors(bytes: &[u8], eps: f64) -> candle_core::Result<TrainableNet> {
        let loaded = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        Self::from_tensors(loaded.into_iter().collect(), eps)
    }

    fn from_tensors(
        mut tensors: BTreeMap<String, Tensor>,
        eps: f64,
    ) -> candle_core::Result<TrainableNet> {
        let mut vars = BTreeMap::new();
        let mut stats = BTreeMap::new();
        for (name, shape) in shapes() {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("weights lack {name}")))?;
            if t.dims() != shape.as_slice() {
                return Err(candle_core::Error::Msg(format!(
                    "{name}: shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(DType::F32)?;
            if is_stat(&name) {
                stats.insert(name, t);
            } else {
                vars.insert(name, Var::from_tensor(&t)?);
            }
        }
        Ok(TrainableNet {
            vars,
            stats,
            eps,
            momentum: MOMENTUM,
            device: Device::Cpu,
        })
    }

    /// The weights a run of `which` updates.
    pub fn trainable(&self, which: Trainable) -> Vec<Var> {
        self.vars
            .iter()
            .filter(|(name, _)| match which {
                Trainable::All => true,
                Trainable::LastBlock => last_block(name),
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A copy of every weight and moving statistic, by name (later
    /// training does not change it).
    pub fn tensors(&self) -> candle_core::Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for (k, v) in &self.vars {
            out.insert(k.clone(), v.as_tensor().detach().copy()?);
        }
        for (k, v) in &self.stats {
            out.insert(k.clone(), v.copy()?);
        }
        Ok(out)
    }

    /// `model.safetensors` bytes of the current weights.
    pub fn to_safetensors(&self) -> candle_core::Result<Vec<u8>> {
        safetensors_bytes(&self.tensors()?)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn var(&self, name: &str) -> candle_core::Result<&Tensor> {
        self.vars
            .get(name)
            .map(Var::as_tensor)
            .ok_or_else(|| candle_core::Error::Msg(format!("no weight {name}")))
    }

    /// Batch norm `batch_normalization_{i}` (the fused op, `ops::batch_norm`):
    /// in training mode on the batch's statistics (and the moving averages
    /// move); else on the moving ones.
    fn batch_norm(
        &mut self,
        x: &Tensor,
        i: usize,
        train: bool,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let name = format!("batch_normalization_{i}");
        let gamma = self.var(&format!("{name}.gamma"))?.clone();
        let beta = self.var(&format!("{name}.beta"))?.clone();
        let stat = |s: &str| -> candle_core::Result<Vec<f32>> {
            self.stats
                .get(&format!("{name}.{s}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("no statistic {name}.{s}")))?
                .to_vec1::<f32>()
        };
        let (mean_key, var_key) = (
            format!("{name}.moving_mean"),
            format!("{name}.moving_variance"),
        );
        if !train {
            let fixed = (stat("moving_mean")?, stat("moving_variance")?);
            return Ok(batch_norm(x, &gamma, &beta, Some(fixed), self.eps, relu)?.0);
        }
        let (old_mean, old_var) = (stat("moving_mean")?, stat("moving_variance")?);
        let (y, mean, var) = batch_norm(x, &gamma, &beta, None, self.eps, relu)?;
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f32;
        // TensorFlow moves the variance by the unbiased batch estimate.
        let unbiased = if count > 1.0 {
            count / (count - 1.0)
        } else {
            1.0
        };
        let m = self.momentum as f32;
        let moved_mean: Vec<f32> = old_mean
            .iter()
            .zip(&mean)
            .map(|(o, b)| m * o + (1.0 - m) * b)
            .collect();
        let moved_var: Vec<f32> = old_var
            .iter()
            .zip(&var)
            .map(|(o, b)| m * o + (1.0 - m) * b * unbiased)
            .collect();
        let c = moved_mean.len();
        self.stats
            .insert(mean_key, Tensor::from_vec(moved_mean, c, &self.device)?);
        self.stats
            .insert(var_key, Tensor::from_vec(moved_var, c, &self.device)?);
        Ok(y)
    }

    /// Re-estimates the trained batch norms' statistics as the plain mean
    /// of their batch statistics over `batches` (inputs as [`Self::forward`]
    /// takes them), with the final weights: after a short run the moving
    /// averages still remember the weights they started from ("precise
    /// batch norm"). Layers `which` does not train keep theirs.
    pub fn recalibrate(&mut self, batches: &[Tensor], which: Trainable) -> candle_core::Result<()> {
        for (i, x) in batches.iter().enumerate() {
            // The i-th batch gets weight 1/(i+1): a running mean.
            self.momentum = i as f64 / (i as f64 + 1.0);
            let result = self.forward(&x.detach(), true, which);
            if let Err(e) = result {
                self.momentum = MOMENTUM;
                return Err(e);
            }
        }
        self.momentum = MOMENTUM;
        Ok(())
    }

    /// Logits in the model's class order, (N, 7), from normalised input
    /// (N, 1, 64, 64). `train`: batch norms on batch statistics (moving
    /// averages updated) for the layers `which` trains; the frozen rest in
    /// inference mode.
    pub fn forward(
        &mut self,
        x: &Tensor,
        train: bool,
        which: Trainable,
    ) -> candle_core::Result<Tensor> {
        let frozen_train = train && which == Trainable::All;
        // The stem convolutions have no bias (their batch norms shift).
        let no_bias = Tensor::zeros(8, DType::F32, &self.device)?;
        let mut y = conv3x3_train(x, self.var("conv2d_1.weight")?, &no_bias, 0)?;
        y = self.batch_norm(&y, 1, frozen_train, true)?;
        y = conv3x3_train(&y, self.var("conv2d_2.weight")?, &no_bias, 0)?;
        y = self.batch_norm(&y, 2, frozen_train, true)?;
        for (idx, (c, o, s1, b1, s2, b2, sc, sbn)) in BLOCKS.into_iter().enumerate() {
            let t = if idx == BLOCKS.len() - 1 {
                train
            } else {
                frozen_train
            };
            if !t && train {
                // Frozen: no gradient flows into or through these layers.
                y = y.detach();
            }
            let residual = every_other(&every_other(&y, 2)?, 3)?;
            let residual = pointwise(
                &residual,
                &self.var(&format!("conv2d_{sc}.weight"))?.reshape((o, c))?,
            )?;
            let residual = self.batch_norm(&residual, sbn, t, false)?;
            let m = depthwise3x3(&y, self.var(&format!("separable_conv2d_{s1}.depthwise"))?)?;
            let m = pointwise(
                &m,
                &self
                    .var(&format!("separable_conv2d_{s1}.pointwise"))?
                    .reshape((o, c))?,
            )?;
            let m = self.batch_norm(&m, b1, t, true)?;
            let m = depthwise3x3(&m, self.var(&format!("separable_conv2d_{s2}.depthwise"))?)?;
            let m = pointwise(
                &m,
                &self
                    .var(&format!("separable_conv2d_{s2}.pointwise"))?
                    .reshape((o, o))?,
            )?;
            let m = self.batch_norm(&m, b2, t, false)?;
            y = (max_pool3x3s2(&m)? + residual)?;
        }
        let head = conv3x3_train(
            &y,
            self.var("conv2d_7.weight")?,
            self.var("conv2d_7.bias")?,
            1,
        )?;
        head.mean(D::Minus1)?.mean(D::Minus1)
    }
}

/// Whether a weight belongs to the last residual block or the head.
fn last_block(name: &str) -> bool {
    let (_, _, s1, b1, s2, b2, sc, sbn) = BLOCKS[BLOCKS.len() - 1];
    let layer = name.split('.').next().unwrap_or("");
    [
        format!("separable_conv2d_{s1}"),
        format!("separable_conv2d_{s2}"),
        format!("conv2d_{sc}"),
        format!("batch_normalization_{b1}"),
        format!("batch_normalization_{b2}"),
        format!("batch_normalization_{sbn}"),
        "conv2d_7".to_owned(),
    ]
    .iter()
    .any(|l| l == layer)
}

/// 1×1 convolution without bias as a matrix product: x (N, C, H, W), w (O, C).
fn pointwise(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let o = w.dim(0)?;
    w.broadcast_matmul(&x.reshape((n, c, h * wd))?)?
        .reshape((n, o, h, wd))
}

/// The safetensors encoding of f32 tensors, in memory: an 8-byte
/// little-endian header length, the JSON header (names, dtypes, shapes and
/// byte ranges, padded with spaces to 8 bytes), then the data.
pub fn safetensors_bytes(tensors: &BTreeMap<String, Tensor>) -> candle_core::Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": t.dims(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    Ok(out)
}
