//! Accounts: a guest turns into an account (`POST /api/accounts`: the same
//! player, score, streaks, labels and uploads, now reachable from any
//! device), and signing in to one, within abuse
//! limits: per client address (`net.logins_per_ip_per_minute`), and per
//! account a soft lockout with backoff (`auth.login`, decided by
//! [`emofy_game::login`]; at most 100 guesses per hour per account, and
//! never a lasting lockout of the owner). An unknown username costs one
//! password check like a known one (against a dummy hash), so the answer's
//! time does not tell which usernames exist. Every attempt is logged
//! (username, client address, outcome; never the password) and counted
//! (`emofy_logins_total`, `emofy_password_checks_total`).

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse, post, web};
use emofy_game::login::LoginGate;
use emofy_game::{PlayerId, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{hash_password, verify_password};
use crate::error::ErrorCode;
use crate::service::Services;
use crate::store::StoreError;
use crate::web::errors::ApiError;
use crate::web::extract::ActiveCaller;
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

/// The hash an unknown username's password is checked against: the same
/// argon2id work as a real account, computed once.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("emofy: no such account")
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$invalid$invalid".into())
    })
}

/// `429 rate_limited` with `Retry-After` (whole seconds, at least 1).
fn too_many(retry_after_ms: u64, detail: &str) -> ApiError {
    ApiError::code(ErrorCode::RateLimited)
        .retry_after(retry_after_ms.div_ceil(1000).max(1))
        .detail(detail.to_owned())
}

/// Checks `password` against `hash` on the blocking pool (argon2 is
/// deliberately slow), counted.
async fn check(svc: &Services, password: String, hash: String) -> bool {
    svc.metrics.password_checks.inc();
    web::block(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Hashes a new password on the blocking pool.
async fn hashed(password: String) -> Result<String, ApiError> {
    web::block(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::code(ErrorCode::Internal))?
        .map_err(|_| ApiError::code(ErrorCode::Internal))
}

/// Attempts to take an account's turn before a check, at most this many
/// times against concurrent attempts (then: try again shortly).
const CLAIM_TRIES: usize = 4;

/// One password attempt on `username` within the account's soft lockout:
/// the account if the password is right (its failures cleared), `None` if
/// not (or no such account: checked against a dummy hash all the same);
/// `429` while the account waits. Counted and logged.
async fn checked_attempt(
    svc: &Services,
    username: &str,
    password: String,
    address: &str,
) -> Result<Option<crate::store::AccountRecord>, ApiError> {
    let outcome = |o: &str| crate::metrics::Metrics::count(&svc.metrics.logins, o);
    let rules = svc.config.auth.login;
    // Usernames are keyed normalized (older accounts by their exact spelling).
    let normalized = emofy_game::account::Username::parse(username).ok();
    let mut account = match &normalized {
        Some(u) => svc.players.account(u.as_str()).await?,
        None => None,
    };
    let username = match (&account, &normalized) {
        (Some(_), Some(u)) => u.as_str().to_owned(),
        _ => {
            if normalized.as_ref().is_none_or(|u| u.as_str() != username) {
                account = svc.players.account(username).await?;
            }
            username.to_owned()
        }
    };
    // Take the account's turn (the attempt counts as failed until it succeeds).
    let mut claimed = false;
    for _ in 0..CLAIM_TRIES {
        let Some(a) = &account else { break };
        let now = svc.clock.now();
        if let LoginGate::Wait { retry_after_ms } = rules.gate(a.failures, now) {
            outcome("locked");
            tracing::warn!(username = %username, client = %address, failures = a.failures.count, "sign-in refused: account locked for now");
            return Err(too_many(
                retry_after_ms,
                "too many failed sign-ins for this account; wait and try again",
            ));
        }
        let next = rules.failed(a.failures, now);
        if svc
            .players
            .claim_login_attempt(&username, a.failures, next)
            .await?
        {
            claimed = true;
            break;
        }
        account = svc.players.account(&username).await?;
    }
    if account.is_some() && !claimed {
        outcome("locked");
        return Err(too_many(
            1_000,
            "sign-in attempts for this account are queued; try again",
        ));
    }
    let hash = account
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |a| a.password_hash.clone());
    let ok = check(svc, password, hash).await;
    let Some(account) = account.filter(|_| ok) else {
        outcome("wrong");
        tracing::warn!(username = %username, client = %address, "sign-in failed");
        return Ok(None);
    };
    svc.players.clear_login_failures(&account.username).await?;
    Ok(Some(account))
}

/// Signs in: a token for `Authorization: Bearer`.
#[utoipa::path(
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: wrong username or password", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`): too many attempts from this address, or for this account (its soft lockout; the right password waits too)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    )
)]
#[post("/api/login")]
pub async fn login(
    req: HttpRequest,
    body: web::Json<LoginRequest>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    let client = svc.proxies.client_of(&req);
    let address = client.map(|c| c.to_string()).unwrap_or_default();
    let outcome = |o: &str| crate::metrics::Metrics::count(&svc.metrics.logins, o);
    if !svc.logins.allow(client) {
        outcome("rate_limited");
        tracing::warn!(username = %username, client = %address, "sign-in refused: too many attempts from this address");
        return Err(too_many(
            60_000 / u64::from(svc.config.net.logins_per_ip_per_minute.max(1)),
            "too many sign-in attempts from your address",
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES || username.len() > 64 {
        outcome("wrong");
        return Err(ApiError::code(ErrorCode::Unauthorized));
    }
    let Some(account) = checked_attempt(&svc, &username, password, &address).await? else {
        return Err(ApiError::code(ErrorCode::Unauthorized));
    };
    outcome("ok");
    tracing::info!(player = %account.player, client = %address, "signed in");
    let (token, expires) = svc.issue_token(account.player, account.role);
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        player: account.player,
        role: account.role,
        expires_ms: expires.0,
        moderator: Role::can_moderate(account.role),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–64 characters: letters, digits, `_`, `.`, `-`; compared without case.
    #[schema(max_length = 256)]
    username: String,
    /// 8–128 characters, not a common password; no other rules.
    #[schema(max_length = 1024)]
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// The normalized username (what to sign in with).
    username: String,
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    token: String,
    expires_ms: u64,
}

/// Turns the signed-in guest into an account: the same player (score,
/// streaks, labels, uploads), now signed in with a username and password
/// from any device.
#[utoipa::path(
    tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 400, description = "`bad_json` / `invalid_message` / `invalid_username` / `weak_password` (too short, too long or a common password)", body = ErrorBody),
        (status = 401, description = "`unauthorized` / `invalid_token`", body = ErrorBody),
        (status = 403, description = "`banned`", body = ErrorBody),
        (status = 409, description = "`username_taken` / `already_registered`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/accounts")]
pub async fn register(
    caller: ActiveCaller,
    body: web::Json<RegisterRequest>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let me = caller.0;
    let RegisterRequest { username, password } = body.into_inner();
    let username = emofy_game::account::Username::parse(&username)
        .map_err(|e| ApiError::code(ErrorCode::InvalidUsername).detail(e.to_string()))?;
    if let Some(problem) = emofy_game::account::password_problem(&password) {
        return Err(ApiError::code(ErrorCode::WeakPassword).detail(problem.to_string()));
    }
    if svc.players.username_of(me.player).await?.is_some() {
        return Err(ApiError::code(ErrorCode::AlreadyRegistered));
    }
    let hash = hashed(password).await?;
    match svc
        .players
        .register_account(me.player, username.as_str(), &hash, svc.clock.now())
        .await
    {
        Ok(()) => {}
        // The player may have registered in a concurrent request; else the name is taken.
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::code(
                if svc.players.username_of(me.player).await?.is_some() {
                    ErrorCode::AlreadyRegistered
                } else {
                    ErrorCode::UsernameTaken
                },
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(player = %me.player, "account registered");
    let (token, expires) = svc.issue_token(me.player, me.role);
    Ok(HttpResponse::Created().json(RegisterResponse {
        username: username.as_str().to_owned(),
        player: me.player,
        token,
        expires_ms: expires.0,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(max_length = 1024)]
    current: String,
    /// 8–128 characters, not a common password.
    #[schema(max_length = 1024)]
    new: String,
}

/// Changes the signed-in account's password: the current one is checked
/// like a sign-in (the same lockout counts it).
#[utoipa::path(
    tag = "accounts",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "`bad_json` / `invalid_message` / `weak_password`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: the current password is wrong; `invalid_token`", body = ErrorBody),
        (status = 409, description = "`invalid_message`: a guest has no password (register first)", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (with `Retry-After`): the account's soft lockout", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/me/password")]
pub async fn change_password(
    req: HttpRequest,
    caller: crate::web::extract::Caller,
    body: web::Json<PasswordChange>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let me = caller.0.player;
    let PasswordChange { current, new } = body.into_inner();
    let Some(username) = svc.players.username_of(me).await? else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            ErrorCode::InvalidMessage,
        )
        .detail("a guest has no password: save your progress as an account first"));
    };
    if current.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::code(ErrorCode::Unauthorized));
    }
    if let Some(problem) = emofy_game::account::password_problem(&new) {
        return Err(ApiError::code(ErrorCode::WeakPassword).detail(problem.to_string()));
    }
    let address = svc
        .proxies
        .client_of(&req)
        .map(|c| c.to_string())
        .unwrap_or_default();
    match checked_attempt(&svc, &username, current, &address).await? {
        Some(a) if a.player == me => {}
        _ => return Err(ApiError::code(ErrorCode::Unauthorized)),
    }
    let hash = hashed(new).await?;
    svc.players.set_password(&username, &hash).await?;
    tracing::info!(player = %me, "password changed");
    Ok(HttpResponse::NoContent().finish())
}
