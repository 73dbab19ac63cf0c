//! The mini-Xception facial-expression CNN (Arriaga et al. 2017) on candle.
//!
//! Input 64×64 grayscale, pixel / 255, then (x − 0.5) × 2. Two 3×3 valid convs
//! (8 channels, BN, ReLU), four residual blocks (16, 32, 64, 128 channels:
//! separable conv → BN → ReLU → separable conv → BN → 3×3 stride-2 "same" max
//! pool, plus a 1×1 stride-2 conv → BN shortcut, added, no ReLU after), a 3×3
//! conv to 7 channels, global average pooling, softmax.
//!
//! Exact rewrites for speed on CPU (each checked by the parity test against
//! TensorFlow's outputs): every batch norm is folded into the convolution
//! before it; the depthwise 3×3 conv and the "same" max pool (padded the
//! TensorFlow way, extra row/column at the bottom/right) are fused CPU kernels
//! (`kernels`; candle's grouped conv runs one conv per channel), and so are
//! the dense 3×3 convs with bias and ReLU fused in; the 1×1
//! convs are matrix products with their bias (and ReLU) added in place; the
//! stride-2 1×1 shortcut is a subsample then a matrix product, and the max
//! pool adds it in the same pass. Inference only: the kernels have no
//! backward pass.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use emofy_game::{EMOTION_COUNT, Emotion};
use serde::Deserialize;

use crate::kernels::{BiasRelu, Conv3x3, Depthwise3x3, MaxPoolAdd, Subsample2, apply};
use crate::{Classifier, InferenceError, Prediction};

/// `config.json` of a model directory.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub architecture: String,
    pub version: String,
    pub classes: Vec<String>,
    #[serde(default = "default_eps")]
    pub batch_norm_epsilon: f64,
}

fn default_eps() -> f64 {
    1e-3
}

fn err(e: candle_core::Error) -> InferenceError {
    InferenceError::BadOutput(e.to_string())
}

fn load_err(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Load(e.to_string())
}

/// The bundled model's `config.json` (`inference/models/mini-xception-fer2013`).
pub const BUNDLED_CONFIG: &str = include_str!("../models/mini-xception-fer2013/config.json");
/// The bundled model's `model.safetensors` (Keras layer names, batch norms unfolded).
pub const BUNDLED_WEIGHTS: &[u8] =
    include_bytes!("../models/mini-xception-fer2013/model.safetensors");

/// One residual block: (in channels, out channels, first separable conv,
/// its batch norm, second separable conv, its batch norm, shortcut conv,
/// its batch norm), by Keras layer number.
pub(crate) type BlockSpec = (usize, usize, usize, usize, usize, usize, usize, usize);

/// The four residual blocks (serving and training build them alike).
pub(crate) const BLOCKS: [BlockSpec; 4] = [
    (8, 16, 1, 4, 2, 5, 3, 3),
    (16, 32, 3, 7, 4, 8, 4, 6),
    (32, 64, 5, 10, 6, 11, 5, 9),
    (64, 128, 7, 13, 8, 14, 6, 12),
];

/// The model's outputs in Emofy's order: `to_emofy[i]` is the Emofy index
/// of output `i` (the class order in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassOrder(pub [usize; EMOTION_COUNT]);

impl ClassOrder {
    /// From `config.json`'s class names: each of the seven emotions once.
    pub fn from_names(names: &[String]) -> Result<ClassOrder, InferenceError> {
        if names.len() != EMOTION_COUNT {
            return Err(load_err("config.classes must list 7 classes"));
        }
        let mut out = [0usize; EMOTION_COUNT];
        for (i, n) in names.iter().enumerate() {
            let e: Emotion = n.parse().map_err(load_err)?;
            out[i] = e.index();
        }
        let mut seen = out.to_vec();
        seen.sort_unstable();
        if seen != (0..EMOTION_COUNT).collect::<Vec<_>>() {
            return Err(load_err("config.classes must name each emotion once"));
        }
        Ok(ClassOrder(out))
    }
}

/// A convolution with its batch norm folded in: weight (O, C, kh, kw), bias (O).
struct Folded {
    weight: Tensor,
    bias: Tensor,
}

/// Folds `name`'s batch norm into `weight` (any shape with O first).
fn fold_bn(vb: &VarBuilder, bn: &str, weight: Tensor, eps: f64) -> candle_core::Result<Folded> {
    let o = weight.dim(0)?;
    let b = vb.pp(bn);
    let gamma = b.get(o, "gamma")?;
    let beta = b.get(o, "beta")?;
    let mean = b.get(o, "moving_mean")?;
    let var = b.get(o, "moving_variance")?;
    let scale = gamma.div(&(var + eps)?.sqrt()?)?;
    let mut shape = vec![o];
    shape.extend(std::iter::repeat_n(1, weight.rank() - 1));
    let weight = weight.broadcast_mul(&scale.reshape(shape)?)?;
    let bias = beta.sub(&mean.mul(&scale)?)?;
    Ok(Folded { weight, bias })
}

/// Depthwise 3×3 "same" conv (a fused CPU kernel), then a folded pointwise conv.
struct SeparableConv {
    depthwise: Depthwise3x3,
    pointwise: Tensor,
    bias: Vec<f32>,
}

impl SeparableConv {
    fn load(
        vb: &VarBuilder,
        name: &str,
        bn: &str,
        c: usize,
        o: usize,
        eps: f64,
    ) -> candle_core::Result<Self> {
        let taps = vb
            .pp(name)
            .get((c, 1, 3, 3), "depthwise")?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let pw = vb.pp(name).get((o, c, 1, 1), "pointwise")?;
        let f = fold_bn(vb, bn, pw, eps)?;
        Ok(SeparableConv {
            depthwise: Depthwise3x3 { taps },
            pointwise: f.weight.reshape((o, c))?,
            bias: f.bias.to_vec1::<f32>()?,
        })
    }

    fn forward(&self, x: &Tensor, relu: bool) -> candle_core::Result<Tensor> {
        pointwise(
            &apply(x, &self.depthwise)?,
            &self.pointwise,
            &self.bias,
            relu,
        )
    }
}

/// 1×1 conv as a matrix product: x (N, C, H, W), w (O, C), then the bias
/// (O) and an optional ReLU in place.
fn pointwise(x: &Tensor, w: &Tensor, b: &[f32], relu: bool) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let o = w.dim(0)?;
    let y = w
        .broadcast_matmul(&x.reshape((n, c, h * wd))?)?
        .reshape((n, o, h, wd))?;
    y.inplace_op1(&BiasRelu { bias: b, relu })?;
    Ok(y)
}

/// Every other row/column starting at 0 along `dim` (stride-2 subsample;
/// differentiable, so training uses it too).
pub(crate) fn every_other(x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
    let len = x.dim(dim)?;
    let out = len.div_ceil(2);
    let x = if len % 2 == 1 {
        x.pad_with_zeros(dim, 0, 1)?
    } else {
        x.clone()
    };
    let mut shape = x.dims().to_vec();
    shape[dim] = out;
    shape.insert(dim + 1, 2);
    x.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

struct Block {
    sep1: SeparableConv,
    sep2: SeparableConv,
    shortcut: Tensor,
    shortcut_bias: Vec<f32>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let residual = apply(x, &Subsample2)?;
        let residual = pointwise(&residual, &self.shortcut, &self.shortcut_bias, false)?;
        let y = self.sep1.forward(x, true)?;
        let y = self.sep2.forward(&y, false)?;
        y.contiguous()?.apply_op2_no_bwd(&residual, &MaxPoolAdd)
    }
}

/// The loaded model.
pub struct MiniXception {
    version: String,
    stem: [Conv3x3; 2],
    blocks: Vec<Block>,
    head: Conv3x3,
    /// `to_emofy[i]` is the Emofy index of the model's output `i`.
    to_emofy: [usize; EMOTION_COUNT],
    device: Device,
}

impl MiniXception {
    /// Loads a model directory (`config.json` + `model.safetensors`).
    pub fn load(dir: &Path) -> Result<MiniXception, InferenceError> {
        let f = crate::ModelFiles::read(dir, crate::MAX_MODEL_FILE_BYTES)?;
        Self::from_buffers(&f.config_json, &f.safetensors)
    }

    /// Loads a model from the bytes of `config.json` and `model.safetensors`.
    pub fn from_buffers(
        config_json: &str,
        safetensors: &[u8],
    ) -> Result<MiniXception, InferenceError> {
        let config: ModelConfig =
            serde_json::from_str(config_json).map_err(|e| load_err(format!("config.json: {e}")))?;
        if config.architecture != "mini_xception" {
            return Err(load_err(format!(
                "architecture {:?} is not mini_xception",
                config.architecture
            )));
        }
        let device = Device::Cpu;
        let tensors =
            candle_core::safetensors::load_buffer(safetensors, &device).map_err(load_err)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        Self::from_var_builder(&vb, &config)
    }

    /// The model shipped inside this crate (`inference/models/mini-xception-fer2013`).
    pub fn bundled() -> Result<MiniXception, InferenceError> {
        Self::from_buffers(BUNDLED_CONFIG, BUNDLED_WEIGHTS)
    }

    /// Builds the model from weights named as the converted Keras layers.
    pub fn from_var_builder(
        vb: &VarBuilder,
        config: &ModelConfig,
    ) -> Result<MiniXception, InferenceError> {
        let to_emofy = ClassOrder::from_names(&config.classes)?.0;
        let eps = config.batch_norm_epsilon;
        let build = || -> candle_core::Result<(Folded, Folded, Vec<Block>, Folded)> {
            let s1 = fold_bn(
                vb,
                "batch_normalization_1",
                vb.pp("conv2d_1").get((8, 1, 3, 3), "weight")?,
                eps,
            )?;
            let s2 = fold_bn(
                vb,
                "batch_normalization_2",
                vb.pp("conv2d_2").get((8, 8, 3, 3), "weight")?,
                eps,
            )?;
            let mut blocks = Vec::with_capacity(BLOCKS.len());
            for (c, o, s1i, b1, s2i, b2, sc, sbn) in BLOCKS {
                let sep1 = SeparableConv::load(
                    vb,
                    &format!("separable_conv2d_{s1i}"),
                    &format!("batch_normalization_{b1}"),
                    c,
                    o,
                    eps,
                )?;
                let sep2 = SeparableConv::load(
                    vb,
                    &format!("separable_conv2d_{s2i}"),
                    &format!("batch_normalization_{b2}"),
                    o,
                    o,
                    eps,
                )?;
                let w = vb.pp(format!("conv2d_{sc}")).get((o, c, 1, 1), "weight")?;
                let f = fold_bn(vb, &format!("batch_normalization_{sbn}"), w, eps)?;
                blocks.push(Block {
                    sep1,
                    sep2,
                    shortcut: f.weight.reshape((o, c))?,
                    shortcut_bias: f.bias.to_vec1::<f32>()?,
                });
            }
            let head = Folded {
                weight: vb.pp("conv2d_7").get((7, 128, 3, 3), "weight")?,
                bias: vb.pp("conv2d_7").get(7, "bias")?,
            };
            Ok((s1, s2, blocks, head))
        };
        let (s1, s2, blocks, head) = build().map_err(load_err)?;
        let kernel = |f: Folded, pad: usize, relu: bool| -> Result<Conv3x3, InferenceError> {
            Ok(Conv3x3 {
                weight: f
                    .weight
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(load_err)?,
                bias: f.bias.to_vec1::<f32>().map_err(load_err)?,
                pad,
                relu,
            })
        };
        Ok(MiniXception {
            version: config.version.clone(),
            stem: [kernel(s1, 0, true)?, kernel(s2, 0, true)?],
            blocks,
            head: kernel(head, 1, false)?,
            to_emofy,
            device: vb.device().clone(),
        })
    }

    /// Raw pixels (N, 64, 64), values 0..=255, to the model's input (N, 1, 64, 64).
    pub fn normalize(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w) = pixels.dims3()?;
        ((pixels.to_dtype(DType::F32)? / 127.5)? - 1.0)?.reshape((n, 1, h, w))
    }

    /// Logits (before softmax) in the **model's** class order, shape (N, 7).
    ///
    /// The faces go through the network one at a time: candle's matrix
    /// products run one image at a time anyway (the weights are the same
    /// for every image), and a whole batch's activations (about 40 MB for
    /// 32 faces) are large enough that the allocator hands them back to
    /// the kernel after each call, which then page-faults them in again
    /// (`docs/benchmarks.md`: ~10,000 page faults per 32-face call, none
    /// one face at a time). With several threads, the faces spread over them.
    pub fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = x.dim(0)?;
        if n <= 1 {
            if rayon::current_num_threads() > 1 {
                // Run on one of rayon's threads, so the layers that split
                // hand their tasks to its siblings without waking this one.
                return rayon::scope(|_| self.logits_whole(x));
            }
            return self.logits_whole(x);
        }
        let one = |i| self.logits_whole(&x.narrow(0, i, 1)?);
        let parts = if rayon::current_num_threads() > 1 {
            use rayon::prelude::*;
            (0..n)
                .into_par_iter()
                .map(one)
                .collect::<candle_core::Result<Vec<_>>>()?
        } else {
            (0..n).map(one).collect::<candle_core::Result<Vec<_>>>()?
        };
        Tensor::cat(&parts, 0)
    }

    fn logits_whole(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        for s in &self.stem {
            y = apply(&y, s)?;
        }
        for b in &self.blocks {
            y = b.forward(&y)?;
        }
        apply(&y, &self.head)?.mean(D::Minus1)?.mean(D::Minus1)
    }

    /// Probabilities per face in **Emofy's** class order.
    pub fn predict_batch(&self, pixels: &Tensor) -> Result<Vec<Prediction>, InferenceError> {
        let logits = self
            .logits(&self.normalize(pixels).map_err(err)?)
            .map_err(err)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1).map_err(err)?;
        let rows: Vec<Vec<f32>> = probs.to_vec2().map_err(err)?;
        rows.into_iter()
            .map(|row| {
                let mut p = [0f32; EMOTION_COUNT];
                for (i, v) in row.into_iter().enumerate() {
                    p[self.to_emofy[i]] = v;
                }
                Prediction::new(self.version.clone(), p)
            })
            .collect()
    }
}

impl Classifier for MiniXception {
    fn version(&self) -> &str {
        &self.version
    }

    fn input_side(&self) -> u32 {
        64
    }

    fn classify(&self, gray: &[u8]) -> Result<Prediction, InferenceError> {
        if gray.len() != 64 * 64 {
            return Err(InferenceError::BadInput(format!(
                "{} pixels; expected 64×64",
                gray.len()
            )));
        }
        let t = Tensor::from_slice(gray, (1, 64, 64), &self.device).map_err(err)?;
        self.predict_batch(&t)?
            .pop()
            .ok_or_else(|| InferenceError::BadOutput("no output".into()))
    }
}
