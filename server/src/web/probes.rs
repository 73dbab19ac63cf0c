//! Probes and metrics: `/healthz` (the process answers), `/readyz` (the store
//! answers and the pool is loaded), `/metrics` (Prometheus).
//!
//! `/metrics` is for operators, not the public: on the main port it answers
//! loopback clients only, unless `metrics.token` is set (then anyone with
//! `Authorization: Bearer <token>`); with `metrics.bind` it is served on that
//! address instead and the main port answers `404`.

use actix_web::http::header::ContentType;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::coordinator::PoolSize;
use crate::error::ErrorCode;
use crate::service::Services;
use crate::web::errors::ApiError;
use crate::web::openapi::ErrorBody;

/// Liveness.
#[utoipa::path(tag = "meta", responses((status = 200, description = "`ok`", content_type = "text/plain")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    open_images: Option<usize>,
}

/// Readiness: the store answers and the image pool is loaded.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, body = Ready), (status = 503, description = "Not ready", body = Ready))
)]
#[get("/readyz")]
pub async fn readyz(svc: web::Data<Services>) -> HttpResponse {
    let store = svc.images.image_count().await;
    let pool = svc.coordinator.send(PoolSize).await;
    match (store, pool) {
        (Ok(images), Ok(pool)) => HttpResponse::Ok().json(Ready {
            ready: true,
            images: Some(images),
            open_images: Some(pool.open),
        }),
        (store, pool) => {
            tracing::warn!(
                store_ok = store.is_ok(),
                coordinator_ok = pool.is_ok(),
                "not ready"
            );
            HttpResponse::ServiceUnavailable().json(Ready {
                ready: false,
                images: None,
                open_images: None,
            })
        }
    }
}

/// Whether this request may read `/metrics` on the main port.
fn metrics_allowed(req: &HttpRequest, svc: &Services) -> bool {
    if svc.config.metrics.bind.is_some() {
        return false;
    }
    if let Some(token) = &svc.config.metrics.token {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        return crate::auth::constant_time_eq(given.trim().as_bytes(), token.as_bytes());
    }
    // No token: only a client on this machine (a sidecar, an operator's curl).
    req.peer_addr().is_some_and(|p| p.ip().is_loopback())
        && !req.headers().contains_key("x-forwarded-for")
}

/// The metrics page.
pub fn render(svc: &Services) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(svc.metrics.render())
}

/// Prometheus metrics (operators: see the module docs for who may read them).
#[utoipa::path(
    tag = "meta",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 404, description = "`not_found`: not served to this client", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[get("/metrics")]
pub async fn metrics_page(
    req: HttpRequest,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    if !metrics_allowed(&req, &svc) {
        return Err(ApiError::code(ErrorCode::NotFound));
    }
    Ok(render(&svc))
}
