//! `POST /api/admin/model`: swap the serving model version without a restart.
//!
//! An admin (token from `POST /api/login`) names a model directory, or none
//! to reload `model.dir`. The model is loaded off the async threads; if it
//! loads, the inference pool swaps to it (requests in flight finish on the
//! old version), and in the background every image without a cached
//! prediction from the new version is classified and the rounds' suggestions
//! switch over image by image as they are ready.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use emofy_game::Role;
use serde::Deserialize;

use crate::actors::coordinator::SuggestionsLoaded;
use crate::app::{Services, classify_missing, suggestions_of};
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::uploads::bearer;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// A model directory on the server; unset: `model.dir` again.
    dir: Option<PathBuf>,
}

/// See the module docs.
pub async fn swap(
    req: HttpRequest,
    body: Option<web::Json<SwapRequest>>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    if claims.role != Role::Admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden));
    }
    let Some(pool) = svc.inference.clone() else {
        return Err(ApiError::with(
            StatusCode::CONFLICT,
            ErrorCode::InvalidMessage,
            "the model is disabled in this server's configuration",
        ));
    };
    let dir = body
        .and_then(|b| b.into_inner().dir)
        .or_else(|| svc.config.model.dir.clone());
    let Some(dir) = dir else {
        return Err(ApiError::with(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            "name a model directory: {\"dir\": \"/models/…\"} (model.dir is not set)",
        ));
    };
    let shown = dir.display().to_string();
    let loaded = web::block(move || emofy_inference::load_model_dir(&dir)).await;
    let model = match loaded {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::warn!(dir = %shown, error = %e, "model swap refused");
            return Err(ApiError::with(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidMessage,
                format!("cannot load {shown}: {e}"),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "model loading task failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
            ));
        }
    };
    let version = model.version().to_owned();
    let previous = pool.swap(model);
    svc.metrics.model_swaps.inc();
    tracing::info!(from = %previous, to = %version, dir = %shown, "model swapped");
    let svc: Arc<Services> = svc.into_inner();
    actix_web::rt::spawn(async move {
        match classify_missing(&pool, svc.images.as_ref()).await {
            Ok(n) => {
                tracing::info!(images = n, model = %pool.version(), "classified for the new model")
            }
            Err(e) => tracing::warn!(error = %e, "classifying for the new model failed"),
        }
        match suggestions_of(&pool.version(), svc.images.as_ref()).await {
            Ok(suggestions) => svc.coordinator.do_send(SuggestionsLoaded { suggestions }),
            Err(e) => tracing::warn!(error = %e, "loading the new model's suggestions failed"),
        }
    });
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "previous": previous,
        "version": version,
        "dir": shown,
    })))
}
