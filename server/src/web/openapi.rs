//! The OpenAPI 3.1 document of every HTTP route, collected from the handlers'
//! own `#[utoipa::path]` annotations as they are registered (so a route
//! cannot be served without being documented), served at
//! `GET /api/openapi.json`.
//!
//! The domain types of `emofy-game` stay free of web concerns: their wire
//! shapes are described here ([`EmotionName`], [`ImageIdText`], …) and named
//! with `value_type` where a response uses them.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// A JSON error: a stable `code` (docs/protocol.md), a human `message`, and
/// sometimes a `detail` naming the limit or field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(value_type = String, example = "not_found")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One of the seven emotions, in class order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmotionName {
    Angry,
    Disgust,
    Fear,
    Happy,
    Neutral,
    Sad,
    Surprise,
}

/// An image id: the SHA-256 of its bytes, 64 lowercase hex digits.
#[derive(Debug, Serialize, ToSchema)]
#[schema(pattern = "^[0-9a-f]{64}$")]
pub struct ImageIdText(pub String);

/// A player's role.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Player,
    Moderator,
    Admin,
}

/// A leaderboard period.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodName {
    AllTime,
    Daily,
    Weekly,
}

/// An image's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Open,
    Retired,
    Disputed,
    Removed,
}

/// One row of a leaderboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardRow {
    pub rank: u64,
    #[schema(value_type = uuid::Uuid)]
    pub player: String,
    pub name: String,
    pub score: u64,
}

/// A player's own standing on a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct Standing {
    pub rank: u64,
    pub score: u64,
}

/// Adds what every operation can answer and the bearer scheme.
struct Common;

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build(),
    )
}

impl Modify for Common {
    fn modify(&self, api: &mut OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token `welcome` or `POST /api/login` gives".to_owned(),
                    ))
                    .build(),
            ),
        );
        for (name, schema) in [
            ("ErrorBody", <ErrorBody as utoipa::PartialSchema>::schema()),
            (
                "EmotionName",
                <EmotionName as utoipa::PartialSchema>::schema(),
            ),
        ] {
            components.schemas.entry(name.to_owned()).or_insert(schema);
        }
        for item in api.paths.paths.values_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, false),
            ];
            for (op, has_body) in ops {
                let Some(op) = op.as_mut() else { continue };
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let r = &mut op.responses.responses;
                if secured {
                    r.entry("401".into()).or_insert_with(|| {
                        error_response("`unauthorized` (no token) / `invalid_token` (malformed, forged or expired)")
                    });
                }
                r.entry("429".into())
                    .or_insert_with(|| error_response("`too_many_connections` or `rate_limited`"));
                r.entry("405".into())
                    .or_insert_with(|| error_response("`method_not_allowed`"));
                if has_body {
                    r.entry("408".into())
                        .or_insert_with(|| error_response("`body_timeout`: the body was too slow"));
                    r.entry("413".into())
                        .or_insert_with(|| error_response("`payload_too_large`"));
                }
            }
        }
    }
}

/// Finishes the collected document: title, version, common responses.
pub fn finish(mut api: OpenApi) -> OpenApi {
    api.info.title = "Emofy".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(
        "The Emofy game server's HTTP API. The play protocol itself runs on the \
         `/ws/play` WebSocket (docs/protocol.md)."
            .into(),
    );
    Common.modify(&mut api);
    api
}

/// The document as served.
#[derive(Debug, Clone)]
pub struct OpenApiJson(pub String);

/// This document.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/api/openapi.json")]
pub async fn openapi_document(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}
