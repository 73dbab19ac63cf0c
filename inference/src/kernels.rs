//! CPU kernels for the two element-wise-heavy layers of the mini-Xception,
//! as candle custom ops over contiguous f32 memory (inference only, no
//! gradient): a depthwise 3×3 "same" convolution and a 3×3 stride-2 "same"
//! max pool with TensorFlow's padding (the extra row/column at the bottom/right).
//! The training ops (`train::ops`) reuse these loops and add the backward pass.
//! Large layers spread their planes over rayon's threads (`RAYON_NUM_THREADS`).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Planes per parallel task: enough work (≈ 16k multiply-adds) that
/// splitting pays for itself; small layers stay on one thread.
fn min_planes(work_per_plane: usize) -> usize {
    (16_384 / work_per_plane.max(1)).max(1)
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
    let planes = x
        .par_chunks_exact(h * w)
        .zip(out.par_chunks_exact_mut(h * w))
        .enumerate()
        .with_min_len(min_planes(h * w));
    planes.for_each(|(plane_idx, (src, dst))| {
        let k = &taps[(plane_idx % c) * 9..(plane_idx % c) * 9 + 9];
        for (ky, krow) in k.chunks_exact(3).enumerate() {
            // Output row y reads input row y + ky - 1.
            let (y0, y1) = (usize::from(ky == 0), h - usize::from(ky == 2));
            for y in y0..y1 {
                let s = &src[(y + ky - 1) * w..(y + ky) * w];
                let d = &mut dst[y * w..(y + 1) * w];
                // kx = 0 reads x - 1, kx = 1 reads x, kx = 2 reads x + 1.
                for xx in 1..w {
                    d[xx] += krow[0] * s[xx - 1];
                }
                for xx in 0..w {
                    d[xx] += krow[1] * s[xx];
                }
                for xx in 0..w - 1 {
                    d[xx] += krow[2] * s[xx + 1];
                }
            }
        }
    });
    out
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
    let planes = out
        .par_chunks_exact_mut(oh * ow)
        .enumerate()
        .with_min_len(min_planes(c * oh * ow));
    planes.for_each(|(plane, dst)| {
        let (img, oc) = (plane / o, plane % o);
        let img = &x[img * c * h * w..(img + 1) * c * h * w];
        dst.fill(bias[oc]);
        for (ic, src) in img.chunks_exact(h * w).enumerate() {
            let k = &weight[(oc * c + ic) * 9..(oc * c + ic) * 9 + 9];
            for ky in 0..3 {
                // Output row y reads input row y + ky - pad.
                let y0 = pad.saturating_sub(ky);
                let y1 = oh.min((h + pad).saturating_sub(ky));
                for kx in 0..3 {
                    let wgt = k[ky * 3 + kx];
                    let x0 = pad.saturating_sub(kx);
                    let x1 = ow.min((w + pad).saturating_sub(kx));
                    if x0 >= x1 {
                        continue;
                    }
                    for y in y0..y1 {
                        let sy = y + ky - pad;
                        let s = &src[sy * w + x0 + kx - pad..sy * w + x1 + kx - pad];
                        let d = &mut dst[y * ow + x0..y * ow + x1];
                        for (dv, sv) in d.iter_mut().zip(s) {
                            *dv += wgt * sv;
                        }
                    }
                }
            }
        }
        if relu {
            for v in dst.iter_mut() {
                *v = v.max(0.0);
            }
        }
    });
    (out, (oh, ow))
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
    let planes = x
        .par_chunks_exact(h * w)
        .zip(out.par_chunks_exact_mut(oh * ow))
        .with_min_len(min_planes(h * w));
    planes.for_each(|(src, dst)| {
        for oy in 0..oh {
            for ox in 0..ow {
                let (ys, xs) = pool_window((h, w), (oy, ox));
                let mut m = f32::NEG_INFINITY;
                for y in ys {
                    for v in &src[y * w + xs.start..y * w + xs.end] {
                        m = m.max(*v);
                    }
                }
                dst[oy * ow + ox] = m;
            }
        }
    });
    (out, (oh, ow))
}

/// 3×3 max pool, stride 2, "same" padding the TensorFlow way.
pub struct MaxPool3x3S2Same;

impl CustomOp1 for MaxPool3x3S2Same {
    fn name(&self) -> &'static str {
        "maxpool3x3s2same"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_input(storage, layout, self.name())?;
        let (n, c, h, w) = dims4(layout, self.name())?;
        let (out, (oh, ow)) = max_pool(x, (n, c, h, w));
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
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
            let p = apply(&t, &MaxPool3x3S2Same)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p, naive_pool(&x, dims), "{dims:?}");
        }
    }
}
