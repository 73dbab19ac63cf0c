//! Face detection (SeetaFace frontal detector via `rustface`, model bundled,
//! BSD-2) and the crop the emotion model reads.
//!
//! Detection runs on a copy scaled so its longer side is between 192 and 640
//! pixels; the largest face scoring at least `min_score` wins; it is squared
//! with a margin, cropped from the original, turned grayscale and resized.

use image::{DynamicImage, GrayImage, imageops};
use serde::Serialize;

use crate::InferenceError;

/// Where a face is, in the original image's pixels, and the detector's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub score: f64,
}

/// The face detector.
#[derive(Clone)]
pub struct FaceDetector {
    model: rustface::Model,
    min_score: f64,
}

const SMALLEST_SIDE: u32 = 192;
const LARGEST_SIDE: u32 = 640;

impl FaceDetector {
    /// The bundled SeetaFace frontal model; faces scoring below `min_score` are ignored (≈5 is a good default).
    pub fn bundled(min_score: f64) -> Result<FaceDetector, InferenceError> {
        let bytes: &[u8] = include_bytes!("../models/seeta-fd-frontal/seeta_fd_frontal_v1.0.bin");
        let model = rustface::read_model(bytes)
            .map_err(|e| InferenceError::Load(format!("face model: {e}")))?;
        Ok(FaceDetector { model, min_score })
    }

    /// The largest face scoring at least `min_score`, if any.
    pub fn largest_face(&self, img: &GrayImage) -> Option<FaceBox> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return None;
        }
        let longer = w.max(h) as f64;
        let scale = if longer < f64::from(SMALLEST_SIDE) {
            f64::from(SMALLEST_SIDE) / longer
        } else if longer > f64::from(LARGEST_SIDE) {
            f64::from(LARGEST_SIDE) / longer
        } else {
            1.0
        };
        let sw = ((f64::from(w) * scale).round() as u32).max(1);
        let sh = ((f64::from(h) * scale).round() as u32).max(1);
        let scaled = if scale == 1.0 {
            img.clone()
        } else {
            imageops::resize(img, sw, sh, imageops::FilterType::Triangle)
        };
        let mut detector = rustface::create_detector_with_model(self.model.clone());
        detector.set_min_face_size(20);
        detector.set_score_thresh(2.0);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        let faces = detector.detect(&rustface::ImageData::new(scaled.as_raw(), sw, sh));
        faces
            .iter()
            .filter(|f| f.score() >= self.min_score)
            .max_by_key(|f| u64::from(f.bbox().width()) * u64::from(f.bbox().height()))
            .map(|f| {
                let b = f.bbox();
                let back = |v: f64| (v / scale).round().max(0.0) as u32;
                let x = back(f64::from(b.x().max(0))).min(w - 1);
                let y = back(f64::from(b.y().max(0))).min(h - 1);
                FaceBox {
                    x,
                    y,
                    w: back(f64::from(b.width())).clamp(1, w - x),
                    h: back(f64::from(b.height())).clamp(1, h - y),
                    score: f.score(),
                }
            })
    }
}

/// The square around `face` with a 20% margin, clamped to a `w × h` image:
/// `(x, y, side)`.
pub fn face_square(w: u32, h: u32, face: &FaceBox) -> (u32, u32, u32) {
    let size = (f64::from(face.w.max(face.h)) * 1.2).round() as u32;
    let size = size.clamp(1, w.min(h).max(1));
    let cx = face.x + face.w / 2;
    let cy = face.y + face.h / 2;
    let x = cx.saturating_sub(size / 2).min(w.saturating_sub(size));
    let y = cy.saturating_sub(size / 2).min(h.saturating_sub(size));
    (x, y, size)
}

/// The model's input for `face`: [`face_square`], grayscale, resized to `side × side`.
pub fn face_crop(img: &DynamicImage, face: &FaceBox, side: u32) -> Vec<u8> {
    let (x, y, size) = face_square(img.width(), img.height(), face);
    let crop = img.crop_imm(x, y, size, size).to_luma8();
    imageops::resize(&crop, side, side, imageops::FilterType::Triangle).into_raw()
}
