//! The model's guesses for the image pool: classifying the images without a
//! cached prediction (at start-up and after a model swap) and the round
//! suggestions from the cache.

use std::collections::HashMap;

use emofy_game::ImageId;

use crate::actors::inference::InferencePool;
use crate::protocol::Suggestion;
use crate::store::{ImageStore, StoreError};

/// Why classifying the pool stopped.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("background task failed: {0}")]
    Task(String),
}

/// Classifies, through the inference pool, every image that has no cached
/// prediction from the pool's model, and caches the results.
pub async fn classify_missing(
    pool: &InferencePool,
    images: &dyn ImageStore,
) -> Result<usize, ModelError> {
    let version = pool.version();
    let missing = images.unpredicted_images(&version).await?;
    if missing.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let side = pool.input_side();
    // Stored images were checked on the way in; the bound still holds.
    let limits = emofy_inference::DecodeLimits::DEFAULT;
    let mut done = 0;
    for chunk in missing.chunks(64) {
        let mut raw = Vec::with_capacity(chunk.len());
        for id in chunk {
            if let Some((bytes, _)) = images.image_bytes(*id).await? {
                raw.push((*id, bytes));
            }
        }
        // Decoding and resizing is CPU work too: off the async threads.
        let inputs = tokio::task::spawn_blocking(move || {
            raw.into_iter()
                .map(|(id, bytes)| {
                    let input = emofy_inference::grayscale_input(&bytes, side, &limits);
                    (id, input)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ModelError::Task(e.to_string()))?;
        let jobs = inputs.into_iter().map(|(id, input)| async move {
            let result = match input {
                Ok(pixels) => pool.classify(pixels).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (id, result)
        });
        let mut predicted = Vec::with_capacity(chunk.len());
        for (id, result) in futures_util::future::join_all(jobs).await {
            match result {
                Ok(p) => predicted.push((id, p)),
                Err(e) => tracing::warn!(image = %id, error = %e, "cannot classify image"),
            }
        }
        done += predicted.len();
        images.save_predictions(predicted).await?;
    }
    tracing::info!(
        images = done,
        model = %version,
        ms = started.elapsed().as_millis() as u64,
        "images classified"
    );
    Ok(done)
}

/// The round suggestions for every image `model` has classified.
pub async fn suggestions_of(
    model: &str,
    images: &dyn ImageStore,
) -> Result<HashMap<ImageId, Suggestion>, StoreError> {
    Ok(images
        .predictions(model)
        .await?
        .into_iter()
        .map(|(id, p)| {
            let s = Suggestion {
                emotion: p.top(),
                confidence: p.confidence(),
                model: p.model,
            };
            (id, s)
        })
        .collect())
}
