//! Signing in to an account (moderators and admins today).

use actix_web::{HttpResponse, post, web};
use emofy_game::{PlayerId, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Claims, verify_password};
use crate::error::ErrorCode;
use crate::service::Services;
use crate::web::errors::ApiError;
use crate::web::openapi::{ErrorBody, RoleName};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 64)]
    username: String,
    #[schema(max_length = 1024)]
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    token: String,
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    #[schema(value_type = RoleName)]
    role: Role,
    expires_ms: u64,
    moderator: bool,
}

/// Longest password verified (argon2 over megabytes is a denial of service).
const MAX_PASSWORD_BYTES: usize = 1024;

/// Signs in: a token for `Authorization: Bearer`.
#[utoipa::path(
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: wrong username or password", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    )
)]
#[post("/api/login")]
pub async fn login(
    body: web::Json<LoginRequest>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    if password.len() > MAX_PASSWORD_BYTES || username.len() > 64 {
        return Err(ApiError::code(ErrorCode::Unauthorized));
    }
    let account = svc.players.account(&username).await?;
    // Verify on the blocking pool: argon2 is deliberately slow.
    let verified = match account {
        Some(a) => {
            let hash = a.password_hash.clone();
            let ok = web::block(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false);
            ok.then_some(a)
        }
        None => None,
    };
    let Some(account) = verified else {
        return Err(ApiError::code(ErrorCode::Unauthorized));
    };
    let expires = svc
        .clock
        .now()
        .plus(svc.config.auth.token_ttl_hours.saturating_mul(3_600_000));
    let token = svc.tokens.issue(&Claims {
        player: account.player,
        role: account.role,
        expires,
    });
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        player: account.player,
        role: account.role,
        expires_ms: expires.0,
        moderator: Role::can_moderate(account.role),
    }))
}
