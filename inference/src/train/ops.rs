//! The mini-Xception's layers as custom ops with their own backward pass:
//! the depthwise 3×3 "same" convolution and the 3×3 stride-2 "same" max pool
//! (candle cannot differentiate them: its max pool has a backward only when
//! the kernel equals the stride), the dense 3×3 convolutions and batch norm
//! (candle's own backward for these dominates a CPU training step).
//!
//! The convolutions' and the pool's forward passes are the serving kernels
//! (`kernels`), so a trained model computes exactly what it will serve. Each
//! backward is checked against finite differences in the tests below.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernels::{conv3x3, depthwise, dims4, f32_input as contiguous, max_pool, pool_window};

fn msg(s: impl Into<String>) -> candle_core::Error {
    candle_core::Error::Msg(s.into())
}

fn values(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// Runs `f` over the f32 values of `t` in place when it is a contiguous CPU
/// tensor (the usual case in a backward pass), else over a copy.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(CpuStorage::F32(data)) = &*storage
            && let Some((start, end)) = layout.contiguous_offsets()
        {
            return Ok(f(&data[start..end]));
        }
    }
    Ok(f(&values(t)?))
}

/// The depthwise convolution's gradients for its input and taps, given the
/// input `xv`, the output's gradient `g` and the taps `t`.
fn depthwise_grads(
    xv: &[f32],
    g: &[f32],
    t: &[f32],
    dims: (usize, usize, usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let (n, c, h, w) = dims;
    // y[p] = Σ_d k[d]·x[p + d − 1], so dL/dx[q] = Σ_d k[d]·g[q − d + 1]:
    // the same convolution with the taps turned 180°.
    let rotated: Vec<f32> = t
        .chunks_exact(9)
        .flat_map(|k| k.iter().rev().copied().collect::<Vec<_>>())
        .collect();
    let grad_x = depthwise(g, &rotated, dims);
    // dL/dk[c][ky][kx] = Σ_{n,y,x} g[n,c,y,x]·x[n,c,y+ky−1,x+kx−1].
    let grad_taps: Vec<f32> = (0..c)
        .into_par_iter()
        .flat_map_iter(|ch| {
            let mut acc = [0f64; 9];
            for img in 0..n {
                let base = (img * c + ch) * h * w;
                let gp = &g[base..base + h * w];
                let xp = &xv[base..base + h * w];
                for (tap, a) in acc.iter_mut().enumerate() {
                    let (dy, dx) = (tap / 3, tap % 3);
                    let mut s = 0f32;
                    for y in 0..h {
                        let sy = y + dy;
                        if sy < 1 || sy > h {
                            continue;
                        }
                        let (x0, x1) = (usize::from(dx == 0), w - usize::from(dx == 2));
                        let grow = &gp[y * w + x0..y * w + x1];
                        let start = (sy - 1) * w + x0 + dx - 1;
                        let xrow = &xp[start..start + (x1 - x0)];
                        s += grow.iter().zip(xrow).map(|(a, b)| a * b).sum::<f32>();
                    }
                    *a += f64::from(s);
                }
            }
            acc.into_iter().map(|v| v as f32)
        })
        .collect();
    (grad_x, grad_taps)
}

/// Depthwise 3×3 "same" convolution of `x` (N, C, H, W) by `taps` (C, 1, 3, 3),
/// differentiable in both.
struct DepthwiseOp;

impl CustomOp2 for DepthwiseOp {
    fn name(&self) -> &'static str {
        "depthwise3x3-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, self.name())?;
        let taps = contiguous(ts, tl, self.name())?;
        let dims = dims4(xl, self.name())?;
        if taps.len() != dims.1 * 9 {
            return Err(msg("depthwise3x3-train: taps do not match channels"));
        }
        Ok((
            CpuStorage::F32(depthwise(x, taps, dims)),
            xl.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        taps: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dims = x.dims4()?;
        let t = values(taps)?;
        let (grad_x, grad_taps) = with_values(grad, |g| {
            with_values(x, |xv| depthwise_grads(xv, g, &t, dims))
        })??;
        Ok((
            Some(Tensor::from_vec(grad_x, x.shape(), x.device())?),
            Some(Tensor::from_vec(grad_taps, taps.shape(), taps.device())?),
        ))
    }
}

/// The max pool's gradient for its input: each output's gradient `g` goes
/// to the first maximum of its window in `xv`.
fn max_pool_grad(xv: &[f32], g: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![0f32; n * c * h * w];
    out.par_chunks_exact_mut(h * w)
        .zip(xv.par_chunks_exact(h * w))
        .zip(g.par_chunks_exact(oh * ow))
        .for_each(|((dst, src), gp)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (ys, xs) = pool_window((h, w), (oy, ox));
                    let mut best = (ys.start, xs.start);
                    let mut m = f32::NEG_INFINITY;
                    for y in ys {
                        for xx in xs.clone() {
                            if src[y * w + xx] > m {
                                m = src[y * w + xx];
                                best = (y, xx);
                            }
                        }
                    }
                    dst[best.0 * w + best.1] += gp[oy * ow + ox];
                }
            }
        });
    out
}

/// 3×3 stride-2 "same" max pool, differentiable: the gradient of each
/// output goes to the first maximum of its window (row-major), as
/// TensorFlow's does.
struct MaxPoolOp;

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "maxpool3x3s2same-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, self.name())?;
        let (n, c, h, w) = dims4(l, self.name())?;
        let (out, (oh, ow)) = max_pool(x, (n, c, h, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (n, c, h, w) = x.dims4()?;
        let out = with_values(grad, |g| {
            with_values(x, |xv| max_pool_grad(xv, g, (n, c, h, w)))
        })??;
        Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
    }
}

/// The depthwise 3×3 "same" convolution, with gradients for `x` and `taps`.
pub fn depthwise3x3(x: &Tensor, taps: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op2(&taps.contiguous()?, DepthwiseOp)
}

/// The 3×3 stride-2 "same" max pool, with a gradient.
pub fn max_pool3x3s2(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPoolOp)
}

/// Per-channel mean and biased variance of a contiguous (N, C, H, W) f32
/// tensor, in f64 sums.
pub fn channel_stats(x: &Tensor) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
    let (n, c, h, w) = x.dims4()?;
    let plane = h * w;
    let count = (n * plane).max(1) as f64;
    let per: Vec<(f64, f64)> = with_values(x, |data| {
        (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut s, mut s2) = (0f64, 0f64);
                for img in 0..n {
                    let p = &data[(img * c + ch) * plane..(img * c + ch + 1) * plane];
                    let (a, b) = p.iter().fold((0f32, 0f32), |(a, b), v| (a + v, b + v * v));
                    s += f64::from(a);
                    s2 += f64::from(b);
                }
                let mean = s / count;
                (mean, (s2 / count - mean * mean).max(0.0))
            })
            .collect()
    })?;
    Ok((
        per.iter().map(|p| p.0 as f32).collect(),
        per.iter().map(|p| p.1 as f32).collect(),
    ))
}

/// Batch norm over (N, C, H, W), fused: `y = (x − mean)/√(var + ε)·γ + β`.
/// With `batch_stats`, `mean` and `var` are the batch's own (so the
/// gradient flows through them, as in training); otherwise fixed.
struct BatchNormOp {
    mean: Vec<f32>,
    var: Vec<f32>,
    eps: f32,
    batch_stats: bool,
    /// A ReLU after the norm, fused in.
    relu: bool,
}

impl BatchNormOp {
    fn inv_std(&self) -> Vec<f32> {
        self.var
            .iter()
            .map(|v| 1.0 / (v + self.eps).sqrt())
            .collect()
    }
}

impl candle_core::CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, self.name())?;
        let gamma = contiguous(gs, gl, self.name())?;
        let beta = contiguous(bs, bl, self.name())?;
        let (_, c, h, w) = dims4(xl, self.name())?;
        if gamma.len() != c || beta.len() != c || self.mean.len() != c {
            return Err(msg("batch norm: parameters do not match channels"));
        }
        let inv = self.inv_std();
        let plane = h * w;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_exact_mut(plane)
            .zip(x.par_chunks_exact(plane))
            .enumerate()
            .for_each(|(i, (dst, src))| {
                let ch = i % c;
                let scale = gamma[ch] * inv[ch];
                let shift = beta[ch] - self.mean[ch] * scale;
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s * scale + shift;
                }
                if self.relu {
                    for d in dst.iter_mut() {
                        *d = d.max(0.0);
                    }
                }
            });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let plane = h * w;
        let gm = values(gamma)?;
        let inv = self.inv_std();
        let count = (n * plane).max(1) as f64;
        // The gradient past the fused ReLU: zero where the output was clipped.
        let g: Vec<f32> = if self.relu {
            with_values(grad, |g| {
                with_values(res, |y| {
                    g.iter()
                        .zip(y)
                        .map(|(g, y)| if *y > 0.0 { *g } else { 0.0 })
                        .collect()
                })
            })??
        } else {
            values(grad)?
        };
        let (dx, sums) = with_values(x, |xv| {
            // Per channel: Σg and Σg·x̂.
            let sums: Vec<(f64, f64)> = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let (mut sg, mut sgx) = (0f64, 0f64);
                    for img in 0..n {
                        let at = (img * c + ch) * plane;
                        let (a, b) = g[at..at + plane]
                            .iter()
                            .zip(&xv[at..at + plane])
                            .fold((0f32, 0f32), |(a, b), (gv, xv)| {
                                (a + gv, b + gv * (xv - self.mean[ch]) * inv[ch])
                            });
                        sg += f64::from(a);
                        sgx += f64::from(b);
                    }
                    (sg, sgx)
                })
                .collect();
            let mut dx = vec![0f32; xv.len()];
            dx.par_chunks_exact_mut(plane)
                .enumerate()
                .for_each(|(i, dst)| {
                    let ch = i % c;
                    let at = i * plane;
                    let k = gm[ch] * inv[ch];
                    if self.batch_stats {
                        // dx = γ/σ · (g − mean(g) − x̂·mean(g·x̂))
                        let mg = (sums[ch].0 / count) as f32;
                        let mgx = (sums[ch].1 / count) as f32;
                        for (j, d) in dst.iter_mut().enumerate() {
                            let xh = (xv[at + j] - self.mean[ch]) * inv[ch];
                            *d = k * (g[at + j] - mg - xh * mgx);
                        }
                    } else {
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = k * g[at + j];
                        }
                    }
                });
            (dx, sums)
        })?;
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dgamma, c, x.device())?),
            Some(Tensor::from_vec(dbeta, c, x.device())?),
        ))
    }
}

/// Batch norm of `x` (N, C, H, W) by `gamma` and `beta` (C), then a ReLU
/// when `relu`: on the batch's own statistics (returned, for the moving
/// averages) when `stats` is `None`, else on the given (mean, variance).
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    stats: Option<(Vec<f32>, Vec<f32>)>,
    eps: f64,
    relu: bool,
) -> candle_core::Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let x = x.contiguous()?;
    let batch_stats = stats.is_none();
    let (mean, var) = match stats {
        Some(s) => s,
        None => channel_stats(&x)?,
    };
    let op = BatchNormOp {
        mean: mean.clone(),
        var: var.clone(),
        eps: eps as f32,
        batch_stats,
        relu,
    };
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    Ok((y, mean, var))
}

/// The dense 3×3 convolution's gradients for its input, weight and bias,
/// given the input `xv` (N, C, H, W), the output's gradient `g` (N, O, oh,
/// ow), the weight `wv` and the padding `p`.
fn conv3x3_grads(
    xv: &[f32],
    g: &[f32],
    wv: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    (o, oh, ow): (usize, usize, usize),
    p: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // dL/dx: the "full" correlation of the gradient with the kernels
    // turned 180° and transposed (O ↔ C), padding 2 − pad.
    let mut turned = vec![0f32; c * o * 9];
    for oc in 0..o {
        for ic in 0..c {
            for k in 0..9 {
                turned[(ic * o + oc) * 9 + (8 - k)] = wv[(oc * c + ic) * 9 + k];
            }
        }
    }
    let (dx, _) = conv3x3(g, (n, o, oh, ow), &turned, &vec![0f32; c], 2 - p, false);
    // dL/dw[o][c][ky][kx] = Σ g[n,o,y,x]·x[n,c,y+ky−p,x+kx−p];
    // dL/db[o] = Σ g[n,o,·,·]. One task per output channel.
    let per_out: Vec<(Vec<f32>, f32)> = (0..o)
        .into_par_iter()
        .map(|oc| {
            let mut dw = vec![0f64; c * 9];
            let mut db = 0f64;
            for img in 0..n {
                let gp = &g[(img * o + oc) * oh * ow..(img * o + oc + 1) * oh * ow];
                db += f64::from(gp.iter().sum::<f32>());
                for ic in 0..c {
                    let xp = &xv[(img * c + ic) * h * w..(img * c + ic + 1) * h * w];
                    for ky in 0..3 {
                        let y0 = p.saturating_sub(ky);
                        let y1 = oh.min((h + p).saturating_sub(ky));
                        for kx in 0..3 {
                            let x0 = p.saturating_sub(kx);
                            let x1 = ow.min((w + p).saturating_sub(kx));
                            if x0 >= x1 {
                                continue;
                            }
                            let mut acc = 0f32;
                            for y in y0..y1 {
                                let sy = y + ky - p;
                                let xs = &xp[sy * w + x0 + kx - p..sy * w + x1 + kx - p];
                                let gs = &gp[y * ow + x0..y * ow + x1];
                                acc += gs.iter().zip(xs).map(|(a, b)| a * b).sum::<f32>();
                            }
                            dw[ic * 9 + ky * 3 + kx] += f64::from(acc);
                        }
                    }
                }
            }
            (dw.into_iter().map(|v| v as f32).collect(), db as f32)
        })
        .collect();
    let dw: Vec<f32> = per_out
        .iter()
        .flat_map(|(w, _)| w.iter().copied())
        .collect();
    let db: Vec<f32> = per_out.iter().map(|(_, b)| *b).collect();
    (dx, dw, db)
}

/// Dense 3×3 convolution (stride 1, zero padding `pad`: 0 or 1) of `x`
/// (N, C, H, W) by `weight` (O, C, 3, 3) plus `bias` (O), differentiable in
/// all three: candle's own convolution backward builds a transposed
/// convolution and a convolution with the whole image as its kernel, which
/// dominate a training step on CPU.
struct Conv3x3Op {
    pad: usize,
}

impl candle_core::CustomOp3 for Conv3x3Op {
    fn name(&self) -> &'static str {
        "conv3x3-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, self.name())?;
        let w = contiguous(ws, wl, self.name())?;
        let b = contiguous(bs, bl, self.name())?;
        let (n, c, h, wd) = dims4(xl, self.name())?;
        let o = b.len();
        if w.len() != o * c * 9 || self.pad > 1 || h + 2 * self.pad < 3 || wd + 2 * self.pad < 3 {
            return Err(msg(
                "conv3x3-train: weight, padding or input size do not fit",
            ));
        }
        let (out, (oh, ow)) = conv3x3(x, (n, c, h, wd), w, b, self.pad, false);
        Ok((CpuStorage::F32(out), Shape::from((n, o, oh, ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let (_, o, oh, ow) = grad.dims4()?;
        let p = self.pad;
        let wv = values(weight)?;
        let (dx, dw, db) = with_values(grad, |g| {
            with_values(x, |xv| {
                conv3x3_grads(xv, g, &wv, (n, c, h, w), (o, oh, ow), p)
            })
        })??;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, weight.shape(), x.device())?),
            Some(Tensor::from_vec(db, o, x.device())?),
        ))
    }
}

/// The dense 3×3 convolution with padding `pad` (0 or 1) and a bias, with
/// gradients for the input, the weight and the bias.
pub fn conv3x3_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    pad: usize,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        Conv3x3Op { pad },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn tensor(len: usize, seed: u64, shape: &[usize]) -> Tensor {
        let mut s = seed;
        let v: Vec<f32> = (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The loss L = Σ y·r for a fixed random `r`, so dL/dy = r.
    fn loss(y: &Tensor, r: &Tensor) -> f64 {
        f64::from(
            (y * r)
                .and_then(|p| p.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// Central finite differences of `f` at every coordinate of `at`,
    /// compared with `analytic`.
    fn check(
        name: &str,
        at: &Tensor,
        analytic: &Tensor,
        f: impl Fn(&Tensor) -> f64,
        tolerance: f64,
    ) {
        let base = values(at).unwrap_or_else(|e| panic!("{e}"));
        let want = values(analytic).unwrap_or_else(|e| panic!("{e}"));
        let eps = 1e-2f32;
        let mut worst = 0f64;
        for i in 0..base.len() {
            let mut plus = base.clone();
            plus[i] += eps;
            let mut minus = base.clone();
            minus[i] -= eps;
            let shape = at.shape();
            let p = Tensor::from_vec(plus, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            let m = Tensor::from_vec(minus, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            let numeric = (f(&p) - f(&m)) / (2.0 * f64::from(eps));
            let err = (numeric - f64::from(want[i])).abs() / (1.0 + numeric.abs());
            worst = worst.max(err);
        }
        assert!(worst < tolerance, "{name}: worst relative error {worst}");
    }

    #[test]
    fn depthwise_backward_matches_finite_differences() {
        for dims in [(2usize, 3usize, 5usize, 4usize), (1, 2, 1, 1), (1, 1, 2, 7)] {
            let (n, c, h, w) = dims;
            let x = tensor(n * c * h * w, 3, &[n, c, h, w]);
            let taps = tensor(c * 9, 5, &[c, 1, 3, 3]);
            let r = tensor(n * c * h * w, 7, &[n, c, h, w]);
            let xv = Var::from_tensor(&x).unwrap_or_else(|e| panic!("{e}"));
            let tv = Var::from_tensor(&taps).unwrap_or_else(|e| panic!("{e}"));
            let y = depthwise3x3(xv.as_tensor(), tv.as_tensor()).unwrap_or_else(|e| panic!("{e}"));
            let grads = (&y * &r)
                .and_then(|p| p.sum_all())
                .and_then(|l| l.backward())
                .unwrap_or_else(|e| panic!("{e}"));
            let gx = grads.get(xv.as_tensor()).unwrap_or_else(|| panic!("no dx"));
            let gt = grads
                .get(tv.as_tensor())
                .unwrap_or_else(|| panic!("no dtaps"));
            check(
                "depthwise dx",
                &x,
                gx,
                |x| {
                    loss(
                        &depthwise3x3(x, &taps).unwrap_or_else(|e| panic!("{e}")),
                        &r,
                    )
                },
                1e-3,
            );
            check(
                "depthwise dtaps",
                &taps,
                gt,
                |t| loss(&depthwise3x3(&x, t).unwrap_or_else(|e| panic!("{e}")), &r),
                1e-3,
            );
            // And against candle's own autograd of the grouped convolution.
            let xv2 = Var::from_tensor(&x).unwrap_or_else(|e| panic!("{e}"));
            let tv2 = Var::from_tensor(&taps).unwrap_or_else(|e| panic!("{e}"));
            let reference = xv2
                .as_tensor()
                .conv2d(tv2.as_tensor(), 1, 1, 1, c)
                .unwrap_or_else(|e| panic!("{e}"));
            let diff = (&reference - &y)
                .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(diff < 1e-5, "forward differs from conv2d by {diff}");
            let rg = (&reference * &r)
                .and_then(|p| p.sum_all())
                .and_then(|l| l.backward())
                .unwrap_or_else(|e| panic!("{e}"));
            for (mine, theirs) in [(gx, xv2.as_tensor()), (gt, tv2.as_tensor())] {
                let theirs = rg
                    .get(theirs)
                    .unwrap_or_else(|| panic!("no reference grad"));
                let d = (mine - theirs)
                    .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(d < 1e-4, "{dims:?}: gradient differs from conv2d's by {d}");
            }
        }
    }

    #[test]
    fn conv3x3_backward_matches_finite_differences_and_candle() {
        for (dims, o, pad) in [
            ((2usize, 3usize, 5usize, 4usize), 2usize, 0usize),
            ((1, 2, 4, 4), 3, 1),
            ((1, 1, 3, 3), 2, 1),
        ] {
            let (n, c, h, w) = dims;
            let x = tensor(n * c * h * w, 29, &[n, c, h, w]);
            let wt = tensor(o * c * 9, 31, &[o, c, 3, 3]);
            let b = tensor(o, 37, &[o]);
            let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let r = tensor(n * o * oh * ow, 41, &[n, o, oh, ow]);
            let vars: Vec<Var> = [&x, &wt, &b]
                .iter()
                .map(|t| Var::from_tensor(t).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let y = conv3x3_train(
                vars[0].as_tensor(),
                vars[1].as_tensor(),
                vars[2].as_tensor(),
                pad,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let reference = x
                .conv2d(&wt, pad, 1, 1, 1)
                .and_then(|t| t.broadcast_add(&b.reshape((1, o, 1, 1))?))
                .unwrap_or_else(|e| panic!("{e}"));
            let diff = (&reference - &y)
                .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(diff < 1e-5, "forward differs from conv2d by {diff}");
            let grads = (&y * &r)
                .and_then(|p| p.sum_all())
                .and_then(|l| l.backward())
                .unwrap_or_else(|e| panic!("{e}"));
            let g = |i: usize| {
                grads
                    .get(vars[i].as_tensor())
                    .unwrap_or_else(|| panic!("no grad"))
                    .clone()
            };
            let run = |x: &Tensor, w: &Tensor, b: &Tensor| {
                conv3x3_train(x, w, b, pad).unwrap_or_else(|e| panic!("{e}"))
            };
            check("conv dx", &x, &g(0), |t| loss(&run(t, &wt, &b), &r), 1e-3);
            check("conv dw", &wt, &g(1), |t| loss(&run(&x, t, &b), &r), 1e-3);
            check("conv db", &b, &g(2), |t| loss(&run(&x, &wt, t), &r), 1e-3);
        }
    }

    #[test]
    fn batch_norm_backward_matches_finite_differences() {
        let (n, c, h, w) = (3usize, 2usize, 3usize, 2usize);
        let x = tensor(n * c * h * w, 13, &[n, c, h, w]);
        let gamma = tensor(c, 17, &[c]);
        let beta = tensor(c, 19, &[c]);
        let r = tensor(n * c * h * w, 23, &[n, c, h, w]);
        for (fixed, relu) in [
            (None, false),
            (Some((vec![0.1f32, -0.2], vec![0.5f32, 1.5])), false),
            (None, true),
            (Some((vec![0.1f32, -0.2], vec![0.5f32, 1.5])), true),
        ] {
            let xv = Var::from_tensor(&x).unwrap_or_else(|e| panic!("{e}"));
            let gv = Var::from_tensor(&gamma).unwrap_or_else(|e| panic!("{e}"));
            let bv = Var::from_tensor(&beta).unwrap_or_else(|e| panic!("{e}"));
            let run = |x: &Tensor, g: &Tensor, b: &Tensor| {
                batch_norm(x, g, b, fixed.clone(), 1e-3, relu)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .0
            };
            let y = run(xv.as_tensor(), gv.as_tensor(), bv.as_tensor());
            let grads = (&y * &r)
                .and_then(|p| p.sum_all())
                .and_then(|l| l.backward())
                .unwrap_or_else(|e| panic!("{e}"));
            let g = |v: &Var| {
                grads
                    .get(v.as_tensor())
                    .unwrap_or_else(|| panic!("no grad"))
                    .clone()
            };
            let mode = format!(
                "{} relu={relu}",
                if fixed.is_some() { "fixed" } else { "batch" }
            );
            check(
                &format!("bn {mode} dx"),
                &x,
                &g(&xv),
                |x| loss(&run(x, &gamma, &beta), &r),
                5e-3,
            );
            check(
                &format!("bn {mode} dgamma"),
                &gamma,
                &g(&gv),
                |t| loss(&run(&x, t, &beta), &r),
                5e-3,
            );
            check(
                &format!("bn {mode} dbeta"),
                &beta,
                &g(&bv),
                |t| loss(&run(&x, &gamma, t), &r),
                5e-3,
            );
        }
    }

    #[test]
    fn max_pool_backward_matches_finite_differences() {
        for dims in [
            (2usize, 2usize, 5usize, 4usize),
            (1, 1, 1, 1),
            (1, 3, 8, 8),
            (1, 1, 7, 3),
        ] {
            let (n, c, h, w) = dims;
            // Distinct values spaced far wider than the step: no ties, no
            // maximum changes place within ±eps.
            let len = n * c * h * w;
            let perm: Vec<f32> = (0..len).map(|i| ((i * 7919) % len) as f32 * 0.1).collect();
            let x = Tensor::from_vec(perm, (n, c, h, w), &Device::Cpu)
                .unwrap_or_else(|e| panic!("{e}"));
            let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
            let r = tensor(n * c * oh * ow, 11, &[n, c, oh, ow]);
            let xv = Var::from_tensor(&x).unwrap_or_else(|e| panic!("{e}"));
            let y = max_pool3x3s2(xv.as_tensor()).unwrap_or_else(|e| panic!("{e}"));
            let grads = (&y * &r)
                .and_then(|p| p.sum_all())
                .and_then(|l| l.backward())
                .unwrap_or_else(|e| panic!("{e}"));
            let gx = grads.get(xv.as_tensor()).unwrap_or_else(|| panic!("no dx"));
            check(
                "max pool dx",
                &x,
                gx,
                |x| loss(&max_pool3x3s2(x).unwrap_or_else(|e| panic!("{e}")), &r),
                1e-3,
            );
        }
    }
}
