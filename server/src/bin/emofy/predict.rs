//! `emofy predict`: the model's guess for the face in each image.

use std::path::{Path, PathBuf};

use anyhow::bail;
use emofy_game::Emotion;
use emofy_inference::Classifier;
use emofy_inference::face::{FaceDetector, face_crop};
use emofy_server::{Config, app};

/// `emofy predict`: the configured model (`model.dir` or the bundled
/// mini-Xception, as the server loads it), the upload face threshold and the
/// `[imaging]` decode limits.
pub fn predict(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let Some(model) = app::load_model(config)? else {
        bail!("the model is disabled in the configuration (model.enabled = false)");
    };
    let detector = FaceDetector::bundled(config.upload.min_face_score)?;
    let limits = config.imaging.limits();
    let mut failed = false;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let doc = match predict_file(file, model.as_ref(), &detector, &limits) {
            Ok(v) => v,
            Err(why) => {
                failed = true;
                serde_json::json!({"file": name, "error": why})
            }
        };
        out.push(doc);
    }
    let doc = if out.len() == 1 {
        out.remove(0)
    } else {
        serde_json::Value::Array(out)
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if failed {
        bail!("some files could not be read");
    }
    Ok(())
}

fn predict_file(
    path: &Path,
    model: &dyn Classifier,
    detector: &FaceDetector,
    limits: &emofy_inference::DecodeLimits,
) -> Result<serde_json::Value, String> {
    // A file larger than the decode budget cannot decode within it.
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > limits.max_bytes {
        return Err(format!(
            "{size} bytes is over the {}-byte limit",
            limits.max_bytes
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let img = emofy_inference::decode(&bytes, limits).map_err(|e| e.to_string())?;
    let file = path.display().to_string();
    let Some(face) = detector.largest_face(&img.to_luma8()) else {
        return Ok(serde_json::json!({
            "file": file, "face": null, "emotion": null, "probabilities": null,
            "model": model.version(), "note": "no face found"
        }));
    };
    let crop = face_crop(&img, &face, model.input_side());
    let p = model.classify(&crop).map_err(|e| e.to_string())?;
    let probabilities: serde_json::Map<String, serde_json::Value> = Emotion::ALL
        .iter()
        .map(|e| {
            (
                e.as_str().to_owned(),
                serde_json::json!(p.probabilities[e.index()]),
            )
        })
        .collect();
    Ok(serde_json::json!({
        "file": file, "face": face, "emotion": p.top(), "probabilities": probabilities, "model": p.model
    }))
}
