//! The model registry over HTTP: `GET /api/admin/models` (moderators: the
//! versions, their states, test accuracy and the gate's decisions, for the
//! console's chart), `POST /api/admin/models/{version}/promote` and
//! `POST /api/admin/models/rollback` (admins). A promotion or rollback is
//! written to the registry, served on this replica at once, and on every
//! other replica at its next poll (`model.registry_poll_ms`).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorCode;
use crate::service::Services;
use crate::service::registry;
use crate::store::ModelRecord;
use crate::web::errors::ApiError;
use crate::web::extract::{AdminCaller, ModeratorCaller};
use crate::web::openapi::ErrorBody;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    /// Versions, newest first (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// One version as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelRow {
    version: String,
    parent: Option<String>,
    architecture: String,
    /// `candidate`, `champion`, `retired` or `rolled_back`.
    state: String,
    #[schema(value_type = u64)]
    created_ms: u64,
    #[schema(value_type = u64)]
    state_ms: u64,
    replaced: Option<String>,
    gate_passed: bool,
    /// Accuracy on the frozen test split when it was judged.
    test_accuracy: Option<f64>,
    /// The parent's accuracy on the same test images.
    parent_test_accuracy: Option<f64>,
    /// The gate's decision: McNemar p, wins each way, refusals (`null` for an installed model).
    #[schema(value_type = Option<Object>)]
    gate: serde_json::Value,
    /// Faces per split and class the model learned from and was tested on.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

impl ModelRow {
    fn of(r: ModelRecord) -> ModelRow {
        let gate = &r.card["gate"];
        ModelRow {
            parent_test_accuracy: r.card["champion"]["test"]["accuracy"].as_f64(),
            gate: if gate.is_null() {
                serde_json::Value::Null
            } else {
                serde_json::json!({
                    "promote": gate["promote"],
                    "p_value": gate["p_value"],
                    "candidate_only": gate["candidate_only"],
                    "champion_only": gate["champion_only"],
                    "refusals": gate["refusals"],
                })
            },
            data: serde_json::json!({
                "counts": r.card["data"]["counts"],
                "excluded": r.card["data"]["excluded"],
                "label_set_hash": r.card["data"]["label_set_hash"],
            }),
            version: r.version,
            parent: r.parent,
            architecture: r.architecture,
            state: r.state.as_str().to_owned(),
            created_ms: r.created.0,
            state_ms: r.state_at.0,
            replaced: r.replaced,
            gate_passed: r.gate_passed,
            test_accuracy: r.test_accuracy,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsPage {
    /// The registry's champion.
    champion: Option<String>,
    /// What this replica serves now (differs from `champion` only until its next poll).
    serving: Option<String>,
    models: Vec<ModelRow>,
}

/// The registry's versions (moderators).
#[utoipa::path(
    tag = "admin",
    params(ModelsQuery),
    responses(
        (status = 200, body = ModelsPage),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/admin/models")]
pub async fn list_models(
    _caller: ModeratorCaller,
    q: web::Query<ModelsQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let models = svc.models.models(limit).await?;
    Ok(HttpResponse::Ok().json(ModelsPage {
        champion: svc.models.champion().await?,
        serving: svc.inference.as_ref().map(|p| p.version()),
        models: models.into_iter().map(ModelRow::of).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Promote a candidate the gate refused, or a version that was rolled back.
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryChange {
    /// The champion before.
    previous: Option<String>,
    /// The champion now (this replica serves it already).
    champion: String,
}

fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Applies a registry change and serves the new champion on this replica.
async fn serve_change(
    svc: web::Data<Services>,
    plan: emofy_game::registry::RegistryPlan,
) -> Result<HttpResponse, ApiError> {
    let svc: Arc<Services> = svc.into_inner();
    if let Err(e) = registry::serve(&svc, &plan.champion).await {
        // The registry changed; this replica retries at its next poll.
        tracing::warn!(model = %plan.champion, error = %e, "cannot serve the new champion yet");
    }
    Ok(HttpResponse::Ok().json(RegistryChange {
        previous: plan.expected_champion,
        champion: plan.champion,
    }))
}

/// Makes a version the champion on every replica (admins).
#[utoipa::path(
    tag = "admin",
    params(("version" = String, Path, description = "The model version")),
    request_body(content = PromoteRequest, description = "Empty or `{}`: no force"),
    responses(
        (status = 200, body = RegistryChange),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`promotion_refused`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/admin/models/{version}/promote")]
pub async fn promote_model(
    _caller: AdminCaller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let version = path.into_inner();
    if !valid_version(&version) {
        return Err(ApiError::code(ErrorCode::InvalidMessage)
            .detail("a version is 1–128 letters, digits, '-', '_' or '.'"));
    }
    let request: PromoteRequest = crate::web::extract::json_body(&req, &body)?;
    let plan = registry::promote(svc.models.as_ref(), &version, request.force)
        .await
        .map_err(crate::web::errors::registry_error)?;
    serve_change(svc, plan).await
}

/// Takes the champion back: the version it replaced serves again (admins).
#[utoipa::path(
    tag = "admin",
    responses(
        (status = 200, body = RegistryChange),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`promotion_refused`: nothing to roll back to", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/admin/models/rollback")]
pub async fn rollback_model(
    _caller: AdminCaller,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let plan = registry::rollback(svc.models.as_ref())
        .await
        .map_err(crate::web::errors::registry_error)?;
    serve_change(svc, plan).await
}
