//! Who is calling: extractors for the signed-in caller, so a handler states
//! what it needs in its signature and the refusal is the same everywhere.
//!
//! | extractor | no token | bad or expired token | role too low |
//! | --- | --- | --- | --- |
//! | [`Caller`] | 401 `unauthorized` | 401 `invalid_token` | — |
//! | [`ModeratorCaller`] | 401 `unauthorized` | 401 `invalid_token` | 403 `forbidden` (banned: 403 `banned`) |
//! | [`AdminCaller`] | 401 `unauthorized` | 401 `invalid_token` | 403 `forbidden` (banned: 403 `banned`) |
//! | [`ActiveCaller`] | 401 `unauthorized` | 401 `invalid_token` | banned: 403 `banned` |
//! | [`MaybeCaller`] | anonymous | 401 `invalid_token` | — |
//!
//! The token is the one `welcome` or `POST /api/login` gives, sent as
//! `Authorization: Bearer <token>`. It says who the caller is; what they may
//! do comes from the store on every privileged request ([`Standing`]): the
//! moderator and admin extractors, and [`ActiveCaller`] for what a banned
//! player may no longer do, read the player's current role and ban, so a
//! demotion or a ban takes effect on the next request on every replica. A
//! token of an erased player is `invalid_token`.

use std::future::{Ready, ready};

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use emofy_game::{Role, Standing};
use futures_util::future::LocalBoxFuture;

use crate::auth::Claims;
use crate::error::ErrorCode;
use crate::service::Services;
use crate::web::errors::ApiError;

/// The token in `Authorization`, if any (`Err` for a header that is not a bearer token).
fn bearer_token(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Some(t.trim()))
        .ok_or_else(|| ApiError::code(ErrorCode::InvalidToken))
}

fn claims(req: &HttpRequest) -> Result<Option<Claims>, ApiError> {
    let Some(token) = bearer_token(req)? else {
        return Ok(None);
    };
    let svc = req
        .app_data::<web::Data<Services>>()
        .ok_or_else(|| ApiError::code(ErrorCode::Internal))?;
    svc.tokens
        .verify(token, svc.clock.now())
        .map(Some)
        .map_err(|_| ApiError::code(ErrorCode::InvalidToken))
}

fn required(req: &HttpRequest) -> Result<Claims, ApiError> {
    claims(req)?.ok_or_else(|| ApiError::code(ErrorCode::Unauthorized))
}

/// Where the player stands now, by the store.
async fn standing(svc: &Services, player: emofy_game::PlayerId) -> Result<Standing, ApiError> {
    let role = svc.players.player(player).await?.map(|p| p.role);
    let banned = crate::store::is_banned(svc.review.as_ref(), player).await?;
    Ok(Standing::of(role, banned))
}

/// The caller's claims with their current role, if the store says they may
/// act with at least `needed`.
fn privileged(
    req: &HttpRequest,
    needed: Role,
) -> LocalBoxFuture<'static, Result<Claims, ApiError>> {
    let claims = required(req);
    let svc = req.app_data::<web::Data<Services>>().cloned();
    Box::pin(async move {
        let claims = claims?;
        let svc = svc.ok_or_else(|| ApiError::code(ErrorCode::Internal))?;
        let now = standing(&svc, claims.player).await?;
        match now {
            Standing::Gone => Err(ApiError::code(ErrorCode::InvalidToken)),
            Standing::Banned => Err(ApiError::code(ErrorCode::Banned)),
            Standing::Active(_) => now
                .permits(needed)
                .map(|role| Claims { role, ..claims })
                .ok_or_else(|| ApiError::code(ErrorCode::Forbidden)),
        }
    })
}

/// Any signed-in player.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Claims);

/// A moderator or an admin.
#[derive(Debug, Clone, Copy)]
pub struct ModeratorCaller(pub Claims);

/// An admin.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller(pub Claims);

/// A signed-in player a moderator has not banned (uploads: a banned
/// player's faces are not shown to others).
#[derive(Debug, Clone, Copy)]
pub struct ActiveCaller(pub Claims);

/// A signed-in player, or anonymous.
#[derive(Debug, Clone, Copy)]
pub struct MaybeCaller(pub Option<Claims>);

impl MaybeCaller {
    /// Whether the caller is `player`, or may moderate.
    pub fn is_or_moderates(&self, player: emofy_game::PlayerId) -> bool {
        self.0
            .is_some_and(|c| c.player == player || c.role.can_moderate())
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(required(req).map(Caller))
    }
}

impl FromRequest for ModeratorCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let f = privileged(req, Role::Moderator);
        Box::pin(async move { f.await.map(ModeratorCaller) })
    }
}

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let f = privileged(req, Role::Admin);
        Box::pin(async move { f.await.map(AdminCaller) })
    }
}

impl FromRequest for ActiveCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let f = privileged(req, Role::Player);
        Box::pin(async move { f.await.map(ActiveCaller) })
    }
}

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(claims(req).map(MaybeCaller))
    }
}

/// An optional JSON body: empty (or whitespace) is the default; anything
/// else must be `application/json` and parse.
pub(crate) fn json_body<T: Default + serde::de::DeserializeOwned>(
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bytes.is_empty() && !content_type.starts_with("application/json") {
        return Err(ApiError::code(ErrorCode::UnsupportedMediaType)
            .detail("send the body as application/json"));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            ErrorCode::BadJson
        } else {
            ErrorCode::InvalidMessage
        };
        ApiError::code(code).detail(e.to_string())
    })
}
