//! CPU kernels of the mini-Xception, as candle custom ops over contiguous
//! f32 memory (inference only, no gradient): a depthwise 3×3 "same"
//! convolution, the dense 3×3 convs, a 3×3 stride-2 "same" max pool with
//! TensorFlow's padding (the extra row/column at the bottom/right) that adds
//! the block's shortcut, the shortcut's subsample, and the 1×1 convs' bias.
//! The training ops (`train::ops`) reuse these loops and add the backward pass.
//! Large layers spread their planes over rayon's threads (`RAYON_NUM_THREADS`).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, InplaceOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// One plane's work, compiled for the widest vector instructions this CPU
/// has (AVX2 where present, detected at run time; SSE2 otherwise) by
/// [`vectorized`]. The loops are written to auto-vectorise, and their
/// arithmetic is plain multiplies and adds in one order (no fused
/// multiply-adds), so every path computes the same numbers.
enum Plane<'a> {
    Depthwise {
        src: &'a [f32],
        dst: &'a mut [f32],
        k: &'a [f32],
        hw: (usize, usize),
    },
    Conv {
        img: &'a [f32],
        dst: &'a mut [f32],
        k: &'a [f32],
        bias: f32,
        hw_ow: (usize, usize, usize),
        pad: usize,
        relu: bool,
    },
    Pool {
        src: &'a [f32],
        dst: &'a mut [f32],
        across: &'a mut [f32],
        w_ow: (usize, usize),
        cols: &'a [std::ops::Range<usize>],
        rows: &'a [std::ops::Range<usize>],
    },
    Bias {
        data: &'a mut [f32],
        bias: &'a [f32],
        plane: usize,
        relu: bool,
    },
}

impl pulp::WithSimd for Plane<'_> {
    type Output = ();

    // Inlined into pulp's per-instruction-set entry points, with every
    // kernel below it, so each is compiled once per instruction set.
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        match self {
            Plane::Depthwise { src, dst, k, hw } => depthwise_plane(src, dst, k, hw),
            Plane::Conv {
                img,
                dst,
                k,
                bias,
                hw_ow,
                pad,
                relu,
            } => conv3x3_plane(img, dst, k, bias, hw_ow, pad, relu),
            Plane::Pool {
                src,
                dst,
                across,
                w_ow,
                cols,
                rows,
            } => pool_plane(src, dst, across, w_ow, cols, rows),
            Plane::Bias {
                data,
                bias,
                plane,
                relu,
            } => bias_planes(data, bias, plane, relu),
        }
    }
}

fn vectorized(work: Plane<'_>) {
    pulp::Arch::new().dispatch(work);
}

/// Planes per parallel task: enough work (≈ 16k multiply-adds) that
/// splitting pays for itself; small layers stay on one thread.
fn min_planes(work_per_plane: usize) -> usize {
    (16_384 / work_per_plane.max(1)).max(1)
}

/// Runs `f` on every `plane`-long plane of `out`, with its index: across
/// rayon's threads when there are several and the layer splits into at
/// least two tasks, else on the calling thread (handing even one task to
/// the pool costs two context switches, more than a small layer's work).
fn each_plane(
    out: &mut [f32],
    plane: usize,
    work_per_plane: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if plane == 0 {
        return;
    }
    let min = min_planes(work_per_plane);
    if rayon::current_num_threads() > 1 && out.len() / plane >= 2 * min {
        out.par_chunks_exact_mut(plane)
            .enumerate()
            .with_min_len(min)
            .for_each(|(i, d)| f(i, d));
    } else {
        for (i, d) in out.chunks_exact_mut(plane).enumerate() {
            f(i, d);
        }
    }
}

pub(crate) fn f32_input<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    name: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        return Err(candle_core::Error::Msg(format!(
            "{name}: f32 input expected"
        )));
    };
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name}: contiguous input expected")))?;
    Ok(&data[start..end])
}

pub(crate) fn dims4(
    layout: &Layout,
    name: &str,
) -> candle_core::Result<(usize, usize, usize, usize)> {
    match layout.shape().dims() {
        [n, c, h, w] => Ok((*n, *c, *h, *w)),
        d => Err(candle_core::Error::Msg(format!(
            "{name}: (N, C, H, W) expected, got {d:?}"
        ))),
    }
}

/// The depthwise 3×3 "same" convolution of `x` (N, C, H, W) with `taps`
/// (C, 3, 3) over plain slices: the kernel behind [`Depthwise3x3`], also
/// used by the training ops' backward pass.
pub(crate) fn depthwise(
    x: &[f32],
    taps: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
) -> Vec<f32> {
    let mut out = vec![0f32; n * c * h * w];
    each_plane(&mut out, h * w, 9 * h * w, |plane_idx, dst| {
        let k = &taps[(plane_idx % c) * 9..(plane_idx % c) * 9 + 9];
        vectorized(Plane::Depthwise {
            src: &x[plane_idx * h * w..(plane_idx + 1) * h * w],
            dst,
            k,
            hw: (h, w),
        });
    });
    out
}

#[inline(always)]
fn depthwise_plane(src: &[f32], dst: &mut [f32], k: &[f32], (h, w): (usize, usize)) {
    for (y, d) in dst.chunks_exact_mut(w).enumerate() {
        // Output row y reads input rows y - 1, y, y + 1.
        for ky in 0..3 {
            let Some(sy) = (y + ky).checked_sub(1).filter(|&sy| sy < h) else {
                continue;
            };
            row3(
                d,
                &src[sy * w..(sy + 1) * w],
                [k[ky * 3], k[ky * 3 + 1], k[ky * 3 + 2]],
                1,
            );
        }
    }
}

/// One kernel row of a 3-wide stride-1 convolution over one image row, all
/// three taps in one pass: `d[x] += k[0]·s[x−pad] + k[1]·s[x+1−pad] +
/// k[2]·s[x+2−pad]`, reading zeros outside `s`. `pad` is 0 ("valid": `s` is
/// two longer than `d`), 1 ("same": equal lengths) or 2 ("full": `s` is two
/// shorter). Slices are cut to equal lengths first, so the loops vectorise.
#[inline(always)]
pub(crate) fn row3(d: &mut [f32], s: &[f32], k: [f32; 3], pad: usize) {
    let [k0, k1, k2] = k;
    match pad {
        0 => {
            let m = d.len().min(s.len().saturating_sub(2));
            let (d, a, b, c) = (&mut d[..m], &s[..m], &s[1..m + 1], &s[2..m + 2]);
            for i in 0..m {
                d[i] += k0 * a[i] + k1 * b[i] + k2 * c[i];
            }
        }
        1 => {
            let m = d.len().min(s.len());
            if m == 0 {
                return;
            }
            if m == 1 {
                d[0] += k1 * s[0];
                return;
            }
            d[0] += k1 * s[0] + k2 * s[1];
            d[m - 1] += k0 * s[m - 2] + k1 * s[m - 1];
            let inner = m - 2;
            let (di, a, b, c) = (
                &mut d[1..1 + inner],
                &s[..inner],
                &s[1..1 + inner],
                &s[2..2 + inner],
            );
            for i in 0..inner {
                di[i] += k0 * a[i] + k1 * b[i] + k2 * c[i];
            }
        }
        _ => {
            // Output x reads s[x + kx − pad]: one tap at a time.
            for (kx, kv) in k.into_iter().enumerate() {
                let x0 = pad.saturating_sub(kx);
                let x1 = d.len().min((s.len() + pad).saturating_sub(kx));
                if x0 >= x1 {
                    continue;
                }
                let src = &s[x0 + kx - pad..x1 + kx - pad];
                for (dv, sv) in d[x0..x1].iter_mut().zip(src) {
                    *dv += kv * sv;
                }
            }
        }
    }
}

/// Depthwise 3×3 convolution, stride 1, zero padding 1. `taps` is (C, 3, 3) row-major.
pub struct Depthwise3x3 {
    pub taps: Vec<f32>,
}

impl CustomOp1 for Depthwise3x3 {
    fn name(&self) -> &'static str {
        "depthwise3x3"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_input(storage, layout, self.name())?;
        let (n, c, h, w) = dims4(layout, self.name())?;
        if self.taps.len() != c * 9 {
            return Err(candle_core::Error::Msg(
                "depthwise3x3: taps do not match channels".into(),
            ));
        }
        let out = depthwise(x, &self.taps, (n, c, h, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, h, w))))
    }
}

/// The dense 3×3 convolution of `x` (N, C, H, W) by `weight` (O, C, 3, 3)
/// with `bias` (O), stride 1, zero padding `pad` (0 "valid", 1 "same", 2
/// "full"), optionally followed by a ReLU, over plain slices: the kernel
/// behind [`Conv3x3`] and the training ops. Returns the output and its plane size.
pub(crate) fn conv3x3(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    weight: &[f32],
    bias: &[f32],
    pad: usize,
    relu: bool,
) -> (Vec<f32>, (usize, usize)) {
    let o = bias.len();
    let (oh, ow) = (h + 2 * pad - 2, w + 2 * pad - 2);
    let mut out = vec![0f32; n * o * oh * ow];
    // One task per output plane (image, output channel).
    each_plane(&mut out, oh * ow, 9 * c * oh * ow, |plane, dst| {
        let (img, oc) = (plane / o, plane % o);
        let img = &x[img * c * h * w..(img + 1) * c * h * w];
        let k = &weight[oc * c * 9..(oc + 1) * c * 9];
        vectorized(Plane::Conv {
            img,
            dst,
            k,
            bias: bias[oc],
            hw_ow: (h, w, ow),
            pad,
            relu,
        });
    });
    (out, (oh, ow))
}

#[inline(always)]
fn conv3x3_plane(
    img: &[f32],
    dst: &mut [f32],
    k: &[f32],
    bias: f32,
    (h, w, ow): (usize, usize, usize),
    pad: usize,
    relu: bool,
) {
    dst.fill(bias);
    // Row by row, so the output row stays in cache while every input
    // channel's three rows stream past it.
    for (y, d) in dst.chunks_exact_mut(ow).enumerate() {
        for (src, k) in img.chunks_exact(h * w).zip(k.chunks_exact(9)) {
            for ky in 0..3 {
                // Output row y reads input row y + ky - pad.
                let Some(sy) = (y + ky).checked_sub(pad).filter(|&sy| sy < h) else {
                    continue;
                };
                row3(
                    d,
                    &src[sy * w..(sy + 1) * w],
                    [k[ky * 3], k[ky * 3 + 1], k[ky * 3 + 2]],
                    pad,
                );
            }
        }
    }
    if relu {
        for v in dst.iter_mut() {
            *v = v.max(0.0);
        }
    }
}

/// Dense 3×3 convolution, stride 1, zero padding `pad` (0: "valid", 1: "same"),
/// with bias and an optional ReLU fused in. `weight` is (O, C, 3, 3) row-major.
pub struct Conv3x3 {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub pad: usize,
    pub relu: bool,
}

impl CustomOp1 for Conv3x3 {
    fn name(&self) -> &'static str {
        "conv3x3"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_input(storage, layout, self.name())?;
        let (n, c, h, w) = dims4(layout, self.name())?;
        let o = self.bias.len();
        if self.weight.len() != o * c * 9
            || self.pad > 1
            || h + 2 * self.pad < 3
            || w + 2 * self.pad < 3
        {
            return Err(candle_core::Error::Msg(
                "conv3x3: weight, padding or input size do not fit".into(),
            ));
        }
        let (out, (oh, ow)) = conv3x3(
            x,
            (n, c, h, w),
            &self.weight,
            &self.bias,
            self.pad,
            self.relu,
        );
        Ok((CpuStorage::F32(out), Shape::from((n, o, oh, ow))))
    }
}

/// The window of output `(oy, ox)` of the 3×3 stride-2 "same" pool over an
/// `h × w` plane: rows and columns, TensorFlow's padding (the smaller half first).
pub(crate) fn pool_window(
    (h, w): (usize, usize),
    (oy, ox): (usize, usize),
) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let top = ((oh - 1) * 2 + 3).saturating_sub(h) / 2;
    let left = ((ow - 1) * 2 + 3).saturating_sub(w) / 2;
    (
        (oy * 2).saturating_sub(top)..(oy * 2 + 3 - top).min(h),
        (ox * 2).saturating_sub(left)..(ox * 2 + 3 - left).min(w),
    )
}

/// The 3×3 stride-2 "same" max pool of `x` (N, C, H, W) over plain slices;
/// returns the output and its plane size.
pub(crate) fn max_pool(
    x: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
) -> (Vec<f32>, (usize, usize)) {
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = vec![f32::NEG_INFINITY; n * c * oh * ow];
    // The windows' columns (the same for every row), then their rows.
    let cols: Vec<_> = (0..ow).map(|ox| pool_window((h, w), (0, ox)).1).collect();
    let rows: Vec<_> = (0..oh).map(|oy| pool_window((h, w), (oy, 0)).0).collect();
    each_plane(&mut out, oh * ow, 9 * oh * ow, |i, dst| {
        let mut across = vec![0f32; h * ow];
        vectorized(Plane::Pool {
            src: &x[i * h * w..(i + 1) * h * w],
            dst,
            across: &mut across,
            w_ow: (w, ow),
            cols: &cols,
            rows: &rows,
        });
    });
    (out, (oh, ow))
}

#[inline(always)]
fn pool_plane(
    src: &[f32],
    dst: &mut [f32],
    across: &mut [f32],
    (w, ow): (usize, usize),
    cols: &[std::ops::Range<usize>],
    rows: &[std::ops::Range<usize>],
) {
    // Separable: each input row's maxima over the windows' columns, then
    // each output row the maximum of its window's rows.
    for (s, a) in src.chunks_exact(w).zip(across.chunks_exact_mut(ow)) {
        for (av, xs) in a.iter_mut().zip(cols) {
            *av = s[xs.clone()]
                .iter()
                .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        }
    }
    for (d, ys) in dst.chunks_exact_mut(ow).zip(rows) {
        for y in ys.clone() {
            for (dv, av) in d.iter_mut().zip(&across[y * ow..(y + 1) * ow]) {
                *dv = dv.max(*av);
            }
        }
    }
}

/// The max pool of the first input plus the second (the residual block's
/// shortcut, already at the pooled size), in one output.
pub struct MaxPoolAdd;

impl CustomOp2 for MaxPoolAdd {
    fn name(&self) -> &'static str {
        "maxpool_add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_input(s1, l1, self.name())?;
        let r = f32_input(s2, l2, self.name())?;
        let (n, c, h, w) = dims4(l1, self.name())?;
        let (mut out, (oh, ow)) = max_pool(x, (n, c, h, w));
        if dims4(l2, self.name())? != (n, c, oh, ow) {
            return Err(candle_core::Error::Msg(
                "maxpool_add: the shortcut does not match the pooled size".into(),
            ));
        }
        for (o, v) in out.iter_mut().zip(r) {
            *o += v;
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

/// Every other row and column of (N, C, H, W), starting at 0 (the stride-2
/// 1×1 shortcut's input), as one contiguous copy.
pub struct Subsample2;

impl CustomOp1 for Subsample2 {
    fn name(&self) -> &'static str {
        "subsample2"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_input(storage, layout, self.name())?;
        let (n, c, h, w) = dims4(layout, self.name())?;
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let mut out = Vec::with_capacity(n * c * oh * ow);
        for plane in x.chunks_exact(h * w) {
            for row in plane.chunks_exact(w).step_by(2) {
                out.extend(row.iter().step_by(2));
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
}

/// Adds a bias per channel to (N, C, H, W) in place, then optionally a
/// ReLU: the 1×1 convs' epilogue after their matrix product, with no new
/// tensor.
pub struct BiasRelu<'a> {
    pub bias: &'a [f32],
    pub relu: bool,
}

impl InplaceOp1 for BiasRelu<'_> {
    fn name(&self) -> &'static str {
        "bias_relu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let CpuStorage::F32(data) = storage else {
            return Err(candle_core::Error::Msg(
                "bias_relu: f32 input expected".into(),
            ));
        };
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("bias_relu: contiguous input expected".into())
        })?;
        let (_, c, h, w) = dims4(layout, self.name())?;
        if c != self.bias.len() {
            return Err(candle_core::Error::Msg(
                "bias_relu: bias does not match channels".into(),
            ));
        }
        vectorized(Plane::Bias {
            data: &mut data[start..end],
            bias: self.bias,
            plane: h * w,
            relu: self.relu,
        });
        Ok(())
    }
}

#[inline(always)]
fn bias_planes(data: &mut [f32], bias: &[f32], plane: usize, relu: bool) {
    for (i, p) in data.chunks_exact_mut(plane).enumerate() {
        let b = bias[i % bias.len()];
        if relu {
            for v in p {
                *v = (*v + b).max(0.0);
            }
        } else {
            for v in p {
                *v += b;
            }
        }
    }
}

/// Applies one of these kernels to `x` (made contiguous first, as they require).
pub fn apply(x: &Tensor, op: &impl CustomOp1) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn naive_depthwise(
        x: &[f32],
        taps: &[f32],
        (n, c, h, w): (usize, usize, usize, usize),
    ) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        for i in 0..n * c {
            let k = &taps[(i % c) * 9..(i % c) * 9 + 9];
            for y in 0..h as i64 {
                for xx in 0..w as i64 {
                    let mut acc = 0f32;
                    for ky in 0..3i64 {
                        for kx in 0..3i64 {
                            let (sy, sx) = (y + ky - 1, xx + kx - 1);
                            if sy >= 0 && sx >= 0 && sy < h as i64 && sx < w as i64 {
                                acc += k[(ky * 3 + kx) as usize]
                                    * x[i * h * w + (sy as usize) * w + sx as usize];
                            }
                        }
                    }
                    out[i * h * w + y as usize * w + xx as usize] = acc;
                }
            }
        }
        out
    }

    fn naive_pool(x: &[f32], (n, c, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
        let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
        let top = (((oh - 1) * 2 + 3).saturating_sub(h) / 2) as i64;
        let left = (((ow - 1) * 2 + 3).saturating_sub(w) / 2) as i64;
        let mut out = Vec::new();
        for i in 0..n * c {
            for oy in 0..oh as i64 {
                for ox in 0..ow as i64 {
                    let mut m = f32::NEG_INFINITY;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let (y, xx) = (oy * 2 - top + dy, ox * 2 - left + dx);
                            if y >= 0 && xx >= 0 && y < h as i64 && xx < w as i64 {
                                m = m.max(x[i * h * w + y as usize * w + xx as usize]);
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn conv3x3_matches_candle_conv2d() {
        for (dims, o, pad, relu) in [
            ((2, 3, 6, 5), 4, 0, false),
            ((1, 2, 4, 4), 3, 1, true),
            ((1, 1, 3, 3), 2, 0, true),
            ((1, 2, 1, 2), 2, 1, false),
            ((2, 1, 2, 1), 1, 1, false),
            ((1, 3, 7, 9), 2, 0, true),
        ] {
            let (n, c, h, w) = dims;
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 31 % 19) as f32 - 9.0) / 4.0)
                .collect();
            let weight: Vec<f32> = (0..o * c * 9)
                .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let bias: Vec<f32> = (0..o).map(|i| i as f32 - 1.0).collect();
            let t = Tensor::from_vec(x, dims, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            let wt = Tensor::from_vec(weight.clone(), (o, c, 3, 3), &Device::Cpu)
                .unwrap_or_else(|e| panic!("{e}"));
            let bt = Tensor::from_vec(bias.clone(), (1, o, 1, 1), &Device::Cpu)
                .unwrap_or_else(|e| panic!("{e}"));
            let mut want = t
                .conv2d(&wt, pad, 1, 1, 1)
                .and_then(|y| y.broadcast_add(&bt))
                .unwrap_or_else(|e| panic!("{e}"));
            if relu {
                want = want.relu().unwrap_or_else(|e| panic!("{e}"));
            }
            let got = apply(
                &t,
                &Conv3x3 {
                    weight,
                    bias,
                    pad,
                    relu,
                },
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.dims(), want.dims());
            let diff = (got - want)
                .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(diff < 1e-4, "{dims:?} pad {pad}: {diff}");
        }
    }

    #[test]
    fn kernels_match_naive_loops_on_odd_even_and_tiny_shapes() {
        for dims in [
            (2, 3, 5, 4),
            (1, 2, 1, 1),
            (1, 1, 2, 7),
            (2, 2, 8, 8),
            (1, 4, 15, 15),
        ] {
            let (n, c, h, w) = dims;
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let taps: Vec<f32> = (0..c * 9)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let t =
                Tensor::from_vec(x.clone(), dims, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
            let d = apply(&t, &Depthwise3x3 { taps: taps.clone() })
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .unwrap_or_else(|e| panic!("{e}"));
            for (a, b) in d.iter().zip(naive_depthwise(&x, &taps, dims)) {
                assert!((a - b).abs() < 1e-5, "{dims:?}: {a} vs {b}");
            }
            assert_eq!(max_pool(&x, dims).0, naive_pool(&x, dims), "{dims:?}");
        }
    }
}
