//! `POST /api/admin/model`: swap the serving model version without a restart.
//!
//! An admin names a model directory *under `model.models_root`* (`{"dir":
//! "vit-v2"}`), or none to reload `model.dir`. Only directories inside the
//! root are read, after resolving every symbolic link; only regular files,
//! each at most `model.max_file_mib`, within `model.load_timeout_secs`. A name
//! outside the root, a missing one and a symlink leading out all get the same
//! answer, which never echoes a path: the API does not tell what exists on the
//! server. The path is logged, as a structured field.
//!
//! If the model loads, it joins the model registry and becomes its champion
//! (every replica follows at its next poll), the inference pool swaps to it
//! (requests in flight finish on the old version), and in the background
//! every image without a cached prediction from the new version is
//! classified; the rounds' suggestions switch over as they are ready.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorCode;
use crate::service::Services;
use crate::service::registry;
use crate::web::errors::ApiError;
use crate::web::extract::AdminCaller;
use crate::web::openapi::ErrorBody;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    /// A model directory's name under `model.models_root`; unset: `model.dir` again.
    #[schema(max_length = 255)]
    dir: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SwapResponse {
    /// The version that served until now.
    previous: String,
    /// The version serving from now on.
    version: String,
    /// The name asked for (`null`: `model.dir`).
    dir: Option<String>,
}

/// A model directory that is not available: outside the root, missing, not
/// a directory, or a link leading out (all alike, on purpose).
#[derive(Debug, PartialEq, Eq)]
pub struct NotAvailable;

/// The directory `name` names under `root`, resolved: `Err` unless it is a
/// directory inside the root once every symbolic link is followed.
pub fn resolve_under_root(root: &Path, name: &str) -> Result<PathBuf, NotAvailable> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(NotAvailable);
    }
    let root = root.canonicalize().map_err(|_| NotAvailable)?;
    let asked = Path::new(name);
    // Relative names only, without `..`: `vit-v2`, `team/vit-v2`.
    if asked
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(NotAvailable);
    }
    let dir = root.join(asked).canonicalize().map_err(|_| NotAvailable)?;
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(NotAvailable);
    }
    // Each model file must resolve inside the root too (a link to /dev/zero does not).
    for file in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        let p = dir.join(file);
        if std::fs::symlink_metadata(&p).is_ok() {
            let real = p.canonicalize().map_err(|_| NotAvailable)?;
            if !real.starts_with(&root) {
                return Err(NotAvailable);
            }
        }
    }
    Ok(dir)
}

fn not_available() -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::InvalidMessage,
    )
    .detail("no loadable model by that name under the models root")
}

/// Swaps the serving model (admins).
#[utoipa::path(
    tag = "admin",
    request_body(content = SwapRequest, description = "Empty or `{}`: reload `model.dir`"),
    responses(
        (status = 202, body = SwapResponse),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`invalid_message`: the model is disabled", body = ErrorBody),
        (status = 422, description = "`invalid_message`: not a loadable model under the root", body = ErrorBody),
        (status = 503, description = "`try_again`: loading timed out", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/admin/model")]
pub async fn swap_model(
    _caller: AdminCaller,
    req: HttpRequest,
    body: web::Bytes,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let request: SwapRequest = crate::web::extract::json_body(&req, &body)?;
    let Some(pool) = svc.inference.clone() else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            ErrorCode::InvalidMessage,
        )
        .detail("the model is disabled in this server's configuration"));
    };
    let model = &svc.config.model;
    let dir = match &request.dir {
        Some(name) => {
            let Some(root) = &model.models_root else {
                return Err(ApiError::code(ErrorCode::InvalidMessage).detail(
                    "swapping to a named model is off: the operator has not set model.models_root",
                ));
            };
            match resolve_under_root(root, name) {
                Ok(d) => d,
                Err(_) => {
                    tracing::warn!(dir = %name, root = %root.display(), "model swap refused: not a directory under the root");
                    return Err(not_available());
                }
            }
        }
        None => match &model.dir {
            Some(d) => d.clone(),
            None => {
                return Err(ApiError::code(ErrorCode::InvalidMessage).detail(
                    "name a model directory under the models root: {\"dir\": \"…\"} (model.dir is not set)",
                ));
            }
        },
    };
    let max = model.max_file_mib.saturating_mul(1 << 20);
    let shown = dir.display().to_string();
    let load = web::block(move || {
        let files = emofy_inference::ModelFiles::read(&dir, max)?;
        emofy_inference::load_model_files(&files).map(|m| (m, files))
    });
    let loaded = tokio::time::timeout(Duration::from_secs(model.load_timeout_secs), load).await;
    let (model, files) = match loaded {
        Ok(Ok(Ok(m))) => m,
        Ok(Ok(Err(e))) => {
            tracing::warn!(dir = %shown, error = %e, "model swap refused");
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidMessage,
            )
            .detail(format!("not a loadable model: {e}")));
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "model loading task failed");
            return Err(ApiError::code(ErrorCode::Internal));
        }
        Err(_) => {
            tracing::warn!(dir = %shown, "model swap refused: loading timed out");
            return Err(ApiError::code(ErrorCode::TryAgain).detail("loading the model timed out"));
        }
    };
    let version = model.version().to_owned();
    // The registry decides what every replica serves: the installed model
    // joins it and becomes the champion (an operator's act, so no gate).
    let now = crate::clock::now();
    svc.models
        .register_model(registry::installed(&svc.config, &version, files), now)
        .await?;
    let svc: Arc<Services> = svc.into_inner();
    if svc.models.champion().await?.as_deref() != Some(version.as_str()) {
        registry::promote(svc.models.as_ref(), &version, true)
            .await
            .map_err(crate::web::errors::registry_error)?;
    }
    tracing::info!(to = %version, dir = %shown, "model installed");
    let previous = {
        let _one_at_a_time = svc.model_swap.lock().await;
        registry::swap_in(&svc, &pool, model)
    };
    Ok(HttpResponse::Accepted().json(SwapResponse {
        previous,
        version,
        dir: request.dir,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_inside_the_root_resolve() {
        let base = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = base.path().join("models");
        std::fs::create_dir_all(root.join("good")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(base.path().join("outside")).unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve_under_root(&root, "good").is_ok());
        for bad in ["../outside", "/etc", "", "good/../../outside", "missing"] {
            assert_eq!(resolve_under_root(&root, bad), Err(NotAvailable), "{bad:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.path().join("outside"), root.join("escape"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolve_under_root(&root, "escape"), Err(NotAvailable));
            std::os::unix::fs::symlink("/dev/zero", root.join("good/model.safetensors"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolve_under_root(&root, "good"), Err(NotAvailable));
        }
    }
}
