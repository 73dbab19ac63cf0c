//! A deterministic procedural face generator for the demo image pool.
//!
//! These faces are **synthetic**: simple drawings of a face making one of the
//! seven expressions, varied in face shape, skin tone, hair, glasses, noise and
//! lighting, in colour or grayscale. Each carries the emotion it was drawn to
//! show (its `source_label`). There is no permissively licensed set of real
//! labelled faces to ship, and nothing may be downloaded at run time, so this
//! pool lets a fresh server be played at once. Real data comes in with
//! `emofy import`.

use std::io::Cursor;

use emofy_game::Emotion;
use image::{ImageBuffer, ImageFormat, Luma, Rgb};

/// Side of a generated image in pixels.
pub const SIDE: u32 = 96;

/// One generated face.
#[derive(Debug, Clone)]
pub struct DemoFace {
    pub emotion: Emotion,
    pub png: Vec<u8>,
    pub grayscale: bool,
}

/// The generator's draws ([`emofy_game::rng::SplitMix64`]) in the shapes drawing needs.
#[derive(Debug, Clone)]
pub struct Rng(emofy_game::rng::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(emofy_game::rng::SplitMix64(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        let i = (self.next_u64() % items.len() as u64) as usize;
        items.get(i).copied()
    }
}

type Color = [f32; 3];

struct Canvas {
    side: usize,
    px: Vec<Color>,
}

#[derive(Clone, Copy)]
struct Pt(f32, f32);

impl Canvas {
    fn new(side: usize, fill: impl Fn(f32, f32) -> Color) -> Canvas {
        let mut px = Vec::with_capacity(side * side);
        for y in 0..side {
            for x in 0..side {
                px.push(fill(x as f32 / side as f32, y as f32 / side as f32));
            }
        }
        Canvas { side, px }
    }

    /// Paints `color` where the signed distance `sdf` is negative, antialiased over one pixel,
    /// visiting only the box `[x0, x1] × [y0, y1]`.
    fn paint(
        &mut self,
        bbox: (f32, f32, f32, f32),
        color: Color,
        opacity: f32,
        sdf: impl Fn(f32, f32) -> f32,
    ) {
        let s = self.side as i64;
        let clampi = |v: f32| (v.floor() as i64).clamp(0, s - 1) as usize;
        let (x0, y0, x1, y1) = (
            clampi(bbox.0 - 2.0),
            clampi(bbox.1 - 2.0),
            clampi(bbox.2 + 2.0),
            clampi(bbox.3 + 2.0),
        );
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d = sdf(x as f32 + 0.5, y as f32 + 0.5);
                let a = (0.5 - d).clamp(0.0, 1.0) * opacity;
                if a > 0.0 {
                    let p = &mut self.px[y * self.side + x];
                    for c in 0..3 {
                        p[c] = p[c] * (1.0 - a) + color[c] * a;
                    }
                }
            }
        }
    }

    fn ellipse(&mut self, c: Pt, rx: f32, ry: f32, color: Color) {
        self.paint(
            (c.0 - rx, c.1 - ry, c.0 + rx, c.1 + ry),
            color,
            1.0,
            |x, y| ellipse_sdf(x - c.0, y - c.1, rx, ry),
        );
    }

    fn stroke(&mut self, pts: &[Pt], width: f32, color: Color) {
        if pts.is_empty() {
            return;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in pts {
            x0 = x0.min(p.0);
            y0 = y0.min(p.1);
            x1 = x1.max(p.0);
            y1 = y1.max(p.1);
        }
        let r = width / 2.0;
        self.paint((x0 - r, y0 - r, x1 + r, y1 + r), color, 1.0, |x, y| {
            let mut d = f32::MAX;
            for w in pts.windows(2) {
                d = d.min(segment_distance(Pt(x, y), w[0], w[1]));
            }
            if pts.len() == 1 {
                d = ((x - pts[0].0).powi(2) + (y - pts[0].1).powi(2)).sqrt();
            }
            d - r
        });
    }
}

fn ellipse_sdf(dx: f32, dy: f32, rx: f32, ry: f32) -> f32 {
    let k = ((dx / rx).powi(2) + (dy / ry).powi(2)).sqrt();
    (k - 1.0) * rx.min(ry)
}

fn segment_distance(p: Pt, a: Pt, b: Pt) -> f32 {
    let (abx, aby) = (b.0 - a.0, b.1 - a.1);
    let len2 = abx * abx + aby * aby;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * abx + (p.1 - a.1) * aby) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * abx - p.0, a.1 + t * aby - p.1);
    (qx * qx + qy * qy).sqrt()
}

/// Points along the quadratic Bézier a → (control c) → b.
fn bezier(a: Pt, c: Pt, b: Pt, n: usize) -> Vec<Pt> {
    (0..=n)
        .map(|i| {
            let t = i as f32 / n as f32;
            let u = 1.0 - t;
            Pt(
                u * u * a.0 + 2.0 * u * t * c.0 + t * t * b.0,
                u * u * a.1 + 2.0 * u * t * c.1 + t * t * b.1,
            )
        })
        .collect()
}

const SKIN: [Color; 6] = [
    [0.96, 0.84, 0.74],
    [0.91, 0.74, 0.60],
    [0.80, 0.60, 0.45],
    [0.66, 0.47, 0.33],
    [0.50, 0.34, 0.24],
    [0.36, 0.24, 0.17],
];
const HAIR: [Color; 6] = [
    [0.10, 0.08, 0.07],
    [0.28, 0.18, 0.10],
    [0.55, 0.38, 0.20],
    [0.85, 0.72, 0.45],
    [0.60, 0.60, 0.62],
    [0.55, 0.20, 0.10],
];

fn shade(c: Color, k: f32) -> Color {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Expression parameters: brow lift, inner-brow lift, eye openness, mouth curve, mouth opening, asymmetry.
struct Expression {
    brow_y: f32,
    brow_inner: f32,
    eye_open: f32,
    mouth_curve: f32,
    mouth_open: f32,
    mouth_width: f32,
    asym: f32,
    wrinkle: bool,
}

fn expression(e: Emotion) -> Expression {
    let base = Expression {
        brow_y: 0.0,
        brow_inner: 0.0,
        eye_open: 1.0,
        mouth_curve: 0.0,
        mouth_open: 0.0,
        mouth_width: 1.0,
        asym: 0.0,
        wrinkle: false,
    };
    match e {
        Emotion::Neutral => base,
        Emotion::Happy => Expression {
            brow_y: 0.5,
            eye_open: 0.75,
            mouth_curve: 1.0,
            mouth_open: 1.0,
            mouth_width: 1.2,
            ..base
        },
        Emotion::Sad => Expression {
            brow_y: 0.2,
            brow_inner: 1.0,
            eye_open: 0.75,
            mouth_curve: -0.8,
            mouth_width: 0.9,
            ..base
        },
        Emotion::Angry => Expression {
            brow_y: -1.0,
            brow_inner: -1.3,
            eye_open: 0.65,
            mouth_curve: -0.25,
            mouth_open: 0.15,
            mouth_width: 0.95,
            ..base
        },
        Emotion::Surprise => Expression {
            brow_y: 2.0,
            brow_inner: 0.2,
            eye_open: 1.5,
            mouth_open: 1.0,
            mouth_width: 0.6,
            ..base
        },
        Emotion::Fear => Expression {
            brow_y: 1.4,
            brow_inner: 1.0,
            eye_open: 1.45,
            mouth_curve: -0.35,
            mouth_open: 1.0,
            mouth_width: 1.15,
            ..base
        },
        Emotion::Disgust => Expression {
            brow_y: -0.6,
            brow_inner: -0.6,
            eye_open: 0.6,
            mouth_curve: -0.5,
            mouth_open: 0.1,
            mouth_width: 0.95,
            asym: 1.0,
            wrinkle: true,
        },
    }
}

/// Draws the face with index `index` of the pool seeded by `seed`. The
/// emotion cycles through the seven classes so the pool is balanced.
pub fn generate(seed: u64, index: u32) -> Result<DemoFace, image::ImageError> {
    let mut rng = Rng::new(seed ^ (u64::from(index).wrapping_mul(0xA24B_AED4_963E_E407)));
    let emotion = Emotion::ALL[(index % 7) as usize];
    let ex = expression(emotion);
    let s = SIDE as f32;
    let grayscale = rng.chance(0.4);

    // Background: a soft two-colour gradient.
    let bg_a = [
        rng.range(0.2, 0.9),
        rng.range(0.2, 0.9),
        rng.range(0.2, 0.9),
    ];
    let bg_b = shade(bg_a, rng.range(0.5, 0.9));
    let mut cv = Canvas::new(SIDE as usize, |_, y| {
        [
            bg_a[0] + (bg_b[0] - bg_a[0]) * y,
            bg_a[1] + (bg_b[1] - bg_a[1]) * y,
            bg_a[2] + (bg_b[2] - bg_a[2]) * y,
        ]
    });

    let cx = s * 0.5 + rng.range(-4.0, 4.0);
    let cy = s * 0.54 + rng.range(-3.0, 3.0);
    let rx = s * rng.range(0.28, 0.36);
    let ry = s * rng.range(0.36, 0.42);
    let skin = rng.pick(&SKIN).unwrap_or(SKIN[0]);
    let hair = rng.pick(&HAIR).unwrap_or(HAIR[0]);
    let long_hair = rng.chance(0.4);
    let bald = rng.chance(0.1);

    if long_hair && !bald {
        cv.ellipse(Pt(cx, cy + ry * 0.15), rx * 1.25, ry * 1.1, hair);
    }
    // Neck and face.
    cv.paint(
        (cx - rx * 0.45, cy, cx + rx * 0.45, s),
        shade(skin, 0.85),
        1.0,
        |x, y| ((x - cx).abs() - rx * 0.4).max(cy + ry * 0.5 - y),
    );
    cv.ellipse(Pt(cx, cy), rx, ry, skin);
    // Ears.
    cv.ellipse(Pt(cx - rx, cy), rx * 0.14, ry * 0.2, shade(skin, 0.9));
    cv.ellipse(Pt(cx + rx, cy), rx * 0.14, ry * 0.2, shade(skin, 0.9));
    if !bald {
        // Hair cap: the part of a larger ellipse above the hairline.
        let hairline = cy - ry * rng.range(0.45, 0.62);
        cv.paint(
            (cx - rx * 1.1, cy - ry * 1.2, cx + rx * 1.1, hairline + 2.0),
            hair,
            1.0,
            |x, y| {
                ellipse_sdf(x - cx, y - (cy - ry * 0.08), rx * 1.08, ry * 1.05).max(y - hairline)
            },
        );
    }

    let dark = [0.12, 0.09, 0.08];
    let eye_y = cy - ry * 0.12;
    let eye_dx = rx * 0.42;
    let eye_rx = rx * 0.2;
    let eye_ry = ry * 0.085 * ex.eye_open;
    let iris = rng
        .pick(&[
            [0.25, 0.15, 0.08],
            [0.2, 0.35, 0.55],
            [0.25, 0.4, 0.25],
            [0.1, 0.1, 0.1],
        ])
        .unwrap_or(dark);
    let brow_w = (s * 0.02).max(1.6);
    for side in [-1.0f32, 1.0] {
        let ex_c = Pt(cx + side * eye_dx, eye_y);
        cv.ellipse(ex_c, eye_rx, eye_ry.max(0.8), [0.97, 0.97, 0.95]);
        let ir = (eye_rx * 0.5).min(eye_ry.max(1.0) * 1.1);
        cv.ellipse(ex_c, ir, ir, iris);
        cv.ellipse(ex_c, ir * 0.45, ir * 0.45, [0.02, 0.02, 0.02]);
        // Brows: outer and inner ends; inner lift raises/lowers the end near the nose.
        let asym = if side > 0.0 { ex.asym } else { 0.0 };
        let base_y = eye_y - ry * 0.2 - ex.brow_y * ry * 0.05 + asym * ry * 0.05;
        let outer = Pt(cx + side * (eye_dx + eye_rx * 1.1), base_y + ry * 0.01);
        let inner = Pt(
            cx + side * (eye_dx - eye_rx * 1.0),
            base_y - ex.brow_inner * ry * 0.07,
        );
        let mid = Pt(
            (outer.0 + inner.0) / 2.0,
            (outer.1 + inner.1) / 2.0 - ry * 0.03 * (1.0 + ex.brow_y.max(0.0) * 0.5),
        );
        cv.stroke(&bezier(outer, mid, inner, 8), brow_w, shade(hair, 0.8));
    }
    // Nose.
    let nose_top = Pt(cx, eye_y + ry * 0.05);
    let nose_tip = Pt(cx + rx * 0.06, cy + ry * 0.22);
    cv.stroke(
        &[nose_top, nose_tip, Pt(cx - rx * 0.08, cy + ry * 0.25)],
        1.4,
        shade(skin, 0.7),
    );
    if ex.wrinkle {
        for k in [-1.0f32, 1.0] {
            cv.stroke(
                &[
                    Pt(cx + k * rx * 0.08, eye_y + ry * 0.06),
                    Pt(cx + k * rx * 0.14, eye_y + ry * 0.12),
                ],
                1.0,
                shade(skin, 0.65),
            );
        }
    }
    // Mouth.
    let my = cy + ry * 0.48;
    let mw = rx * 0.42 * ex.mouth_width;
    let lip = [0.55, 0.22, 0.22];
    let left = Pt(
        cx - mw,
        my - ex.mouth_curve * ry * 0.1 + ex.asym * ry * 0.06,
    );
    let right = Pt(
        cx + mw,
        my - ex.mouth_curve * ry * 0.1 - ex.asym * ry * 0.04,
    );
    let ctrl = Pt(cx, my + ex.mouth_curve * ry * 0.14);
    if ex.mouth_open > 0.05 {
        let open_h = ry * 0.16 * ex.mouth_open;
        if ex.mouth_curve.abs() < 0.1 && ex.mouth_width < 0.8 {
            // Round "O" mouth.
            cv.ellipse(Pt(cx, my), mw * 0.8, open_h, [0.25, 0.06, 0.06]);
        } else {
            let upper = bezier(left, Pt(cx, ctrl.1 - open_h * 0.6), right, 14);
            let lower = bezier(left, Pt(cx, ctrl.1 + open_h * 1.2), right, 14);
            let (lo, hi) = (upper.clone(), lower.clone());
            let x0 = left.0.min(right.0);
            let x1 = left.0.max(right.0);
            let y0 = upper
                .iter()
                .chain(&lower)
                .map(|p| p.1)
                .fold(f32::MAX, f32::min);
            let y1 = upper
                .iter()
                .chain(&lower)
                .map(|p| p.1)
                .fold(f32::MIN, f32::max);
            let interp = |curve: &[Pt], x: f32| -> f32 {
                for w in curve.windows(2) {
                    if (w[0].0..=w[1].0).contains(&x) {
                        let t = if w[1].0 > w[0].0 {
                            (x - w[0].0) / (w[1].0 - w[0].0)
                        } else {
                            0.0
                        };
                        return w[0].1 + t * (w[1].1 - w[0].1);
                    }
                }
                f32::NAN
            };
            cv.paint((x0, y0, x1, y1), [0.25, 0.06, 0.06], 1.0, |x, y| {
                let a = interp(&lo, x);
                let b = interp(&hi, x);
                if a.is_nan() || b.is_nan() {
                    return 1.0;
                }
                (a - y).max(y - b)
            });
            if ex.mouth_curve > 0.5 {
                // Teeth along the upper lip.
                cv.stroke(
                    &bezier(
                        Pt(left.0 + mw * 0.2, left.1 + 1.0),
                        Pt(cx, ctrl.1 - open_h * 0.2),
                        Pt(right.0 - mw * 0.2, right.1 + 1.0),
                        10,
                    ),
                    2.2,
                    [0.95, 0.95, 0.92],
                );
            }
            cv.stroke(&upper, 1.3, lip);
            cv.stroke(&lower, 1.3, lip);
        }
    } else {
        cv.stroke(&bezier(left, ctrl, right, 14), 1.8, lip);
    }

    // Glasses.
    if rng.chance(0.2) {
        let frame = [0.08, 0.08, 0.1];
        for side in [-1.0f32, 1.0] {
            let c = Pt(cx + side * eye_dx, eye_y);
            let r = eye_rx * 1.35;
            cv.paint((c.0 - r, c.1 - r, c.0 + r, c.1 + r), frame, 1.0, |x, y| {
                (((x - c.0).powi(2) + (y - c.1).powi(2)).sqrt() - r).abs() - 0.8
            });
        }
        cv.stroke(
            &[
                Pt(cx - eye_dx + eye_rx * 1.35, eye_y),
                Pt(cx + eye_dx - eye_rx * 1.35, eye_y),
            ],
            1.4,
            frame,
        );
    }

    // Lighting from a random side, then noise.
    let light_angle = rng.range(0.0, std::f32::consts::TAU);
    let (lx, ly) = (light_angle.cos(), light_angle.sin());
    let strength = rng.range(0.05, 0.35);
    let noise = rng.range(0.0, 0.06);
    let side = SIDE as usize;
    for (i, p) in cv.px.iter_mut().enumerate() {
        let x = (i % side) as f32 / s - 0.5;
        let y = (i / side) as f32 / s - 0.5;
        let k = 1.0 + strength * (x * lx + y * ly) * 2.0;
        let n = (rng.unit() - 0.5) * 2.0 * noise;
        for c in p.iter_mut() {
            *c = (*c * k + n).clamp(0.0, 1.0);
        }
    }

    let to8 = |v: f32| (v * 255.0).round() as u8;
    let mut png = Vec::new();
    if grayscale {
        let img = ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
            let p = cv.px[(y * SIDE + x) as usize];
            Luma([to8(0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])])
        });
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    } else {
        let img = ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
            let p = cv.px[(y * SIDE + x) as usize];
            Rgb([to8(p[0]), to8(p[1]), to8(p[2])])
        });
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    }
    Ok(DemoFace {
        emotion,
        png,
        grayscale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_balanced_and_distinct() {
        let faces: Vec<_> = (0..21).filter_map(|i| generate(7, i).ok()).collect();
        assert_eq!(faces.len(), 21);
        let again = generate(7, 3).map(|f| f.png).ok();
        assert_eq!(again.as_ref(), Some(&faces[3].png));
        let distinct: HashSet<_> = faces.iter().map(|f| f.png.clone()).collect();
        assert_eq!(distinct.len(), 21);
        for e in Emotion::ALL {
            assert_eq!(faces.iter().filter(|f| f.emotion == e).count(), 3);
        }
        for f in &faces {
            let img = image::load_from_memory(&f.png)
                .map(|i| (i.width(), i.height()))
                .ok();
            assert_eq!(img, Some((SIDE, SIDE)));
        }
    }
}
