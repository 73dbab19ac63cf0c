//! Photo filters: the prototype's sixteen, chainable. Pure pixels: an RGB
//! image in, an RGB image out (the HTTP preview is `web::filters`).
//!
//! A chain always runs on a copy scaled down to at most [`PREVIEW_SIDE`]
//! pixels a side: the result is a preview, and the work is bounded whatever
//! the photo's size.

use std::str::FromStr;

use image::{DynamicImage, GrayImage, Luma, Rgb, RgbImage, imageops};
use imageproc::distance_transform::Norm;

/// Longest side of a preview.
pub const PREVIEW_SIDE: u32 = 512;
/// Most filters in one chain.
pub const MAX_CHAIN: usize = 8;

/// One filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Gray,
    Blur,
    Canny,
    Dilate,
    Erode,
    Sepia,
    Cartoonify,
    Negative,
    Emboss,
    Sharpen,
    EdgeEnhance,
    Rainbowify,
    Mirror,
    Flip,
    RotateLeft,
    RotateRight,
}

impl Filter {
    pub const ALL: [Filter; 16] = [
        Filter::Gray,
        Filter::Blur,
        Filter::Canny,
        Filter::Dilate,
        Filter::Erode,
        Filter::Sepia,
        Filter::Cartoonify,
        Filter::Negative,
        Filter::Emboss,
        Filter::Sharpen,
        Filter::EdgeEnhance,
        Filter::Rainbowify,
        Filter::Mirror,
        Filter::Flip,
        Filter::RotateLeft,
        Filter::RotateRight,
    ];

    /// The name used in `chain=`.
    pub fn name(self) -> &'static str {
        match self {
            Filter::Gray => "gray",
            Filter::Blur => "blur",
            Filter::Canny => "canny",
            Filter::Dilate => "dilate",
            Filter::Erode => "erode",
            Filter::Sepia => "sepia",
            Filter::Cartoonify => "cartoonify",
            Filter::Negative => "negative",
            Filter::Emboss => "emboss",
            Filter::Sharpen => "sharpen",
            Filter::EdgeEnhance => "edge_enhance",
            Filter::Rainbowify => "rainbowify",
            Filter::Mirror => "mirror",
            Filter::Flip => "flip",
            Filter::RotateLeft => "rotate_left",
            Filter::RotateRight => "rotate_right",
        }
    }
}

/// A chain that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("unknown filter {0:?}; filters: {names}", names = names())]
    Unknown(String),
    #[error("at most {MAX_CHAIN} filters in a chain (got {0})")]
    TooMany(usize),
    #[error("name at least one filter, e.g. chain=gray,blur; filters: {names}", names = names())]
    Empty,
}

fn names() -> String {
    Filter::ALL.map(Filter::name).join(", ")
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Filter, FilterError> {
        let s = s.trim();
        Filter::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| FilterError::Unknown(s.chars().take(40).collect()))
    }
}

/// Parses `gray,blur,…`.
pub fn parse_chain(s: &str) -> Result<Vec<Filter>, FilterError> {
    let parts: Vec<&str> = s.split(',').filter(|p| !p.trim().is_empty()).collect();
    if parts.is_empty() {
        return Err(FilterError::Empty);
    }
    if parts.len() > MAX_CHAIN {
        return Err(FilterError::TooMany(parts.len()));
    }
    parts.into_iter().map(Filter::from_str).collect()
}

/// Scales down to at most `PREVIEW_SIDE` per side, then applies the chain in order.
pub fn apply_chain(img: &DynamicImage, chain: &[Filter]) -> RgbImage {
    let img = if img.width() > PREVIEW_SIDE || img.height() > PREVIEW_SIDE {
        img.resize(PREVIEW_SIDE, PREVIEW_SIDE, imageops::FilterType::Triangle)
    } else {
        img.clone()
    };
    chain.iter().fold(img.to_rgb8(), |acc, f| apply(&acc, *f))
}

fn gray(img: &RgbImage) -> GrayImage {
    DynamicImage::ImageRgb8(img.clone()).to_luma8()
}

fn to_rgb(g: &GrayImage) -> RgbImage {
    DynamicImage::ImageLuma8(g.clone()).to_rgb8()
}

fn clamp(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

/// One filter.
pub fn apply(img: &RgbImage, f: Filter) -> RgbImage {
    match f {
        Filter::Gray => to_rgb(&gray(img)),
        Filter::Blur => imageops::blur(img, 2.0),
        Filter::Canny => to_rgb(&imageproc::edges::canny(&gray(img), 20.0, 50.0)),
        Filter::Dilate => {
            let mut out = img.clone();
            for c in 0..3 {
                let ch = channel(img, c);
                set_channel(
                    &mut out,
                    c,
                    &imageproc::morphology::dilate(&ch, Norm::LInf, 1),
                );
            }
            out
        }
        Filter::Erode => {
            let mut out = img.clone();
            for c in 0..3 {
                let ch = channel(img, c);
                set_channel(
                    &mut out,
                    c,
                    &imageproc::morphology::erode(&ch, Norm::LInf, 1),
                );
            }
            out
        }
        Filter::Sepia => {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                let [r, g, b] = p.0.map(f32::from);
                *p = Rgb([
                    clamp(0.393 * r + 0.769 * g + 0.189 * b),
                    clamp(0.349 * r + 0.686 * g + 0.168 * b),
                    clamp(0.272 * r + 0.534 * g + 0.131 * b),
                ]);
            }
            out
        }
        Filter::Cartoonify => {
            // Smooth colours, quantise them, and draw the edges in black.
            let smooth = imageproc::filter::median_filter(img, 2, 2);
            let edges = imageproc::edges::canny(&gray(img), 30.0, 80.0);
            let edges = imageproc::morphology::dilate(&edges, Norm::LInf, 1);
            let mut out = smooth;
            for (x, y, p) in out.enumerate_pixels_mut() {
                if edges.get_pixel(x, y).0[0] > 0 {
                    *p = Rgb([0, 0, 0]);
                } else {
                    *p = Rgb(p.0.map(|v| (u16::from(v / 48) * 48 + 24).min(255) as u8));
                }
            }
            out
        }
        Filter::Negative => {
            let mut out = img.clone();
            for p in out.pixels_mut() {
                *p = Rgb(p.0.map(|v| 255 - v));
            }
            out
        }
        Filter::Emboss => {
            let g = DynamicImage::ImageRgb8(img.clone());
            let k = [-2.0, -1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 1.0, 2.0];
            g.filter3x3(&k).to_rgb8()
        }
        Filter::Sharpen => {
            let k = [0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0];
            DynamicImage::ImageRgb8(img.clone()).filter3x3(&k).to_rgb8()
        }
        Filter::EdgeEnhance => {
            let k = [-1.0, -1.0, -1.0, -1.0, 10.0, -1.0, -1.0, -1.0, -1.0];
            let k = k.map(|x| x / 2.0);
            DynamicImage::ImageRgb8(img.clone()).filter3x3(&k).to_rgb8()
        }
        Filter::Rainbowify => {
            // Tint each column with a hue that sweeps across the image.
            let w = img.width().max(1) as f32;
            let mut out = img.clone();
            for (x, _, p) in out.enumerate_pixels_mut() {
                let tint = hue(360.0 * x as f32 / w);
                let l = 0.299 * f32::from(p.0[0])
                    + 0.587 * f32::from(p.0[1])
                    + 0.114 * f32::from(p.0[2]);
                *p = Rgb([0, 1, 2].map(|c| clamp(0.5 * f32::from(p.0[c]) + 0.5 * l * tint[c])));
            }
            out
        }
        Filter::Mirror => imageops::flip_horizontal(img),
        Filter::Flip => imageops::flip_vertical(img),
        Filter::RotateLeft => imageops::rotate270(img),
        Filter::RotateRight => imageops::rotate90(img),
    }
}

/// A fully saturated colour of hue `h` degrees, each channel in 0..=2.
fn hue(h: f32) -> [f32; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    [r * 2.0, g * 2.0, b * 2.0]
}

fn channel(img: &RgbImage, c: usize) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        Luma([img.get_pixel(x, y).0[c]])
    })
}

fn set_channel(img: &mut RgbImage, c: usize, ch: &GrayImage) {
    for (x, y, p) in img.enumerate_pixels_mut() {
        p.0[c] = ch.get_pixel(x, y).0[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| {
            let inside = (12..28).contains(&x) && (8..22).contains(&y);
            if inside {
                Rgb([250, 180, 160])
            } else {
                Rgb([(x * 5) as u8, (y * 7) as u8, 40])
            }
        })
    }

    #[test]
    fn every_filter_keeps_or_turns_the_size() {
        let img = sample();
        for f in Filter::ALL {
            let out = apply(&img, f);
            let dims = if matches!(f, Filter::RotateLeft | Filter::RotateRight) {
                (30, 40)
            } else {
                (40, 30)
            };
            assert_eq!(out.dimensions(), dims, "{}", f.name());
            assert_eq!(f.name().parse::<Filter>(), Ok(f));
        }
    }

    #[test]
    fn filters_do_what_they_say() {
        let img = sample();
        assert_eq!(apply(&apply(&img, Filter::Negative), Filter::Negative), img);
        assert_eq!(apply(&apply(&img, Filter::Mirror), Filter::Mirror), img);
        assert_eq!(apply(&apply(&img, Filter::Flip), Filter::Flip), img);
        let turned = apply(&apply(&img, Filter::RotateLeft), Filter::RotateRight);
        assert_eq!(turned, img);
        assert!(
            apply(&img, Filter::Gray)
                .pixels()
                .all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2])
        );
        let edges = apply(&img, Filter::Canny);
        assert!(edges.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        assert!(
            edges.pixels().any(|p| p.0[0] == 255),
            "the square has edges"
        );
        let (d, e) = (apply(&img, Filter::Dilate), apply(&img, Filter::Erode));
        for (a, b) in d.pixels().zip(e.pixels()) {
            assert!((0..3).all(|c| a.0[c] >= b.0[c]));
        }
        let sepia = apply(&img, Filter::Sepia);
        assert!(sepia.pixels().all(|p| p.0[0] >= p.0[2]), "sepia is warm");
        assert_ne!(apply(&img, Filter::Rainbowify), img);
        assert_ne!(apply(&img, Filter::Cartoonify), img);
        assert_ne!(apply(&img, Filter::Emboss), img);
        assert_ne!(apply(&img, Filter::Sharpen), img);
        assert_ne!(apply(&img, Filter::EdgeEnhance), img);
        assert_ne!(apply(&img, Filter::Blur), img);
    }

    #[test]
    fn chains_parse_and_scale_down() {
        assert_eq!(
            parse_chain("gray, blur,rotate_left"),
            Ok(vec![Filter::Gray, Filter::Blur, Filter::RotateLeft])
        );
        assert_eq!(parse_chain(""), Err(FilterError::Empty));
        assert!(
            matches!(parse_chain("gray,wobble"), Err(FilterError::Unknown(n)) if n == "wobble")
        );
        assert_eq!(
            parse_chain(&["gray"; 9].join(",")),
            Err(FilterError::TooMany(9))
        );
        let big = DynamicImage::ImageRgb8(RgbImage::new(1200, 600));
        let out = apply_chain(&big, &[Filter::RotateRight]);
        assert_eq!(out.dimensions(), (256, 512));
    }
}
