//! A contributed photo turned into what is stored: decoded within the
//! `[imaging]` limits, the largest face found, a square crop around it
//! re-encoded as PNG without metadata, and the model's grayscale input.
//!
//! Every stored crop carries a random 16-byte private chunk (`emNo`), so two
//! people contributing the same photo store two different images, and nobody
//! can learn from a photo, by its hash, whether it was contributed. Duplicates
//! are found per contributor instead, by [`ProcessedPhoto::fingerprint`].

use std::io::Cursor;

use emofy_game::PlayerId;
use emofy_inference::face::{FaceBox, FaceDetector, face_square};
use emofy_inference::{DecodeLimits, InferenceError};
use image::{DynamicImage, ImageFormat, imageops};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A photo refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("{0}")]
    NotAnImage(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("no face scoring at least {0} was found")]
    NoFace(f64),
    #[error("cannot encode the crop: {0}")]
    Encode(String),
}

/// A photo turned into what is stored.
#[derive(Debug)]
pub struct ProcessedPhoto {
    pub face: FaceBox,
    /// The face crop as PNG (colour kept), at most `crop_side` pixels square, with its random chunk.
    pub crop_png: Vec<u8>,
    pub crop_side: u32,
    /// The whole photo re-encoded as PNG, when asked for.
    pub original_png: Option<Vec<u8>>,
    /// The model's input: the crop as `model_side²` grayscale pixels.
    pub model_input: Vec<u8>,
    /// SHA-256 of the crop's pixels (before the random chunk).
    pixels_hash: [u8; 32],
}

impl ProcessedPhoto {
    /// What finds a contributor's duplicate: the crop's pixels hashed with
    /// the contributor's id (equal for the same photo from the same person
    /// only).
    pub fn fingerprint(&self, contributor: PlayerId) -> String {
        let mut h = Sha256::new();
        h.update(b"emofy-upload-fingerprint-v1");
        h.update(contributor.0.as_bytes());
        h.update(self.pixels_hash);
        hex::encode(h.finalize())
    }
}

/// What a photo is checked against.
#[derive(Debug, Clone, Copy)]
pub struct PhotoRules {
    pub decode: DecodeLimits,
    pub crop_side: u32,
    pub min_face_score: f64,
}

/// PNG bytes of `img` (RGB or grey, 8 bits), without any metadata.
pub fn png(img: &DynamicImage) -> Result<Vec<u8>, PhotoError> {
    let converted;
    let img = match img {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageLuma8(_) => img,
        other if other.color().has_color() => {
            converted = DynamicImage::ImageRgb8(other.to_rgb8());
            &converted
        }
        other => {
            converted = DynamicImage::ImageLuma8(other.to_luma8());
            &converted
        }
    };
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| PhotoError::Encode(e.to_string()))?;
    Ok(out)
}

/// The private ancillary chunk type holding the random bytes.
const NONCE_CHUNK: &[u8; 4] = b"emNo";

/// Inserts a chunk of 16 random bytes right after `IHDR`.
fn with_nonce(png: &[u8]) -> Result<Vec<u8>, PhotoError> {
    // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    const AFTER_IHDR: usize = 8 + 25;
    if png.len() < AFTER_IHDR || &png[12..16] != b"IHDR" {
        return Err(PhotoError::Encode("unexpected PNG layout".into()));
    }
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let mut chunk = Vec::with_capacity(28);
    chunk.extend_from_slice(&(nonce.len() as u32).to_be_bytes());
    chunk.extend_from_slice(NONCE_CHUNK);
    chunk.extend_from_slice(&nonce);
    let crc = crc32fast::hash(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = Vec::with_capacity(png.len() + chunk.len());
    out.extend_from_slice(&png[..AFTER_IHDR]);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[AFTER_IHDR..]);
    Ok(out)
}

/// Decodes a photo, finds the largest face and prepares the crop
/// (CPU-bound: run off the async threads, holding an image slot).
pub fn process_photo(
    bytes: &[u8],
    rules: &PhotoRules,
    detector: &FaceDetector,
    model_side: u32,
    keep_original: bool,
) -> Result<ProcessedPhoto, PhotoError> {
    let img = emofy_inference::decode(bytes, &rules.decode).map_err(|e| match e {
        InferenceError::TooLarge(why) => PhotoError::TooLarge(why),
        other => PhotoError::NotAnImage(other.to_string()),
    })?;
    let face = detector
        .largest_face(&img.to_luma8())
        .ok_or(PhotoError::NoFace(rules.min_face_score))?;
    let (x, y, size) = face_square(img.width(), img.height(), &face);
    let square = img.crop_imm(x, y, size, size);
    let stored = if size > rules.crop_side {
        square.resize_exact(
            rules.crop_side,
            rules.crop_side,
            imageops::FilterType::Lanczos3,
        )
    } else {
        square.clone()
    };
    let model_input = imageops::resize(
        &square.to_luma8(),
        model_side,
        model_side,
        imageops::FilterType::Triangle,
    )
    .into_raw();
    let plain = png(&stored)?;
    let pixels_hash: [u8; 32] = Sha256::digest(stored.as_bytes()).into();
    Ok(ProcessedPhoto {
        face,
        crop_png: with_nonce(&plain)?,
        crop_side: stored.width(),
        original_png: if keep_original {
            Some(png(&img)?)
        } else {
            None
        },
        model_input,
        pixels_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_makes_equal_crops_differ_and_still_decode() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(9, 7, |x, y| {
            image::Rgb([x as u8 * 20, y as u8 * 30, 5])
        }));
        let plain = png(&img).unwrap_or_default();
        let a = with_nonce(&plain).unwrap_or_default();
        let b = with_nonce(&plain).unwrap_or_default();
        assert_ne!(a, b);
        let decoded = emofy_inference::decode(&a, &DecodeLimits::DEFAULT).ok();
        assert_eq!(decoded.map(|d| d.to_rgb8()), Some(img.to_rgb8()));
    }
}
