//! HTTP routes: the play socket, images by content hash, JSON API, probes,
//! metrics and the static web client.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use emofy_game::{ImageId, Period, PlayerId, Role};
use serde::{Deserialize, Serialize};

use crate::actors::coordinator::PoolSize;
use crate::actors::hub::{LastSnapshot, RememberSnapshot};
use crate::actors::session::PlayerSession;
use crate::actors::viewer::BoardViewer;
use crate::app::Services;
use crate::auth::{Claims, verify_password};
use crate::error::ErrorCode;

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/play", web::get().to(play_socket))
        .route("/ws/leaderboard", web::get().to(board_socket))
        .route("/api/leaderboards/{board}", web::get().to(leaderboards))
        .route("/images/{id}", web::get().to(image))
        .route("/api/images/{id}", web::get().to(image_meta))
        .route(
            "/api/images/{id}/labels",
            web::get().to(crate::history::of_image),
        )
        .route("/api/me/labels", web::get().to(crate::history::mine))
        .route("/api/leaderboard", web::get().to(leaderboard))
        .route("/api/stats", web::get().to(stats))
        .route("/api/login", web::post().to(login))
        .route("/api/consent", web::get().to(crate::uploads::consent_text))
        .route("/api/uploads", web::post().to(crate::uploads::create))
        .route("/api/uploads", web::get().to(crate::uploads::list))
        .route("/api/uploads/{id}", web::get().to(crate::uploads::show))
        .route(
            "/api/uploads/{id}",
            web::delete().to(crate::uploads::delete),
        )
        .route(
            "/api/uploads/{id}/label",
            web::put().to(crate::uploads::label),
        )
        .route("/api/admin/model", web::post().to(crate::model_admin::swap))
        .route("/api/filters", web::post().to(crate::filters::preview))
        .route(
            "/api/faces/preview",
            web::post().to(crate::uploads::face_preview),
        )
        .route(
            "/api/moderation/queue",
            web::get().to(crate::moderation::queue),
        )
        .route(
            "/api/moderation/images/{id}",
            web::post().to(crate::moderation::image),
        )
        .route(
            "/api/moderation/players/{id}",
            web::post().to(crate::moderation::player),
        )
        .route(
            "/api/moderation/players",
            web::get().to(crate::moderation::players),
        )
        .route(
            "/api/moderation/audit",
            web::get().to(crate::moderation::audit),
        )
        .route(
            "/api/moderation/stats",
            web::get().to(crate::moderation::stats),
        )
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/", web::get().to(index))
        .route("/{file}", web::get().to(static_file));
}

/// A JSON error body with a stable code.
#[derive(Debug, Serialize)]
struct ErrorBody {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// An error response: `{code, message}`.
pub(crate) fn error(status: actix_web::http::StatusCode, code: ErrorCode) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        code,
        message: code.message().to_owned(),
        detail: None,
    })
}

/// An API error: an HTTP status, a stable code and an optional detail.
/// Renders as the same JSON body as [`error`] / [`error_with`].
#[derive(Debug)]
pub struct ApiError {
    pub status: actix_web::http::StatusCode,
    pub code: ErrorCode,
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: actix_web::http::StatusCode, code: ErrorCode) -> ApiError {
        ApiError {
            status,
            code,
            detail: None,
        }
    }

    pub fn with(
        status: actix_web::http::StatusCode,
        code: ErrorCode,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            detail: Some(detail.into()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.code.message())?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            code: self.code,
            message: self.code.message().to_owned(),
            detail: self.detail.clone(),
        })
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::warn!(error = %e, "store unavailable");
        ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TryAgain,
        )
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "store unavailable");
    error(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TryAgain,
    )
}

async fn play_socket(
    req: HttpRequest,
    stream: web::Payload,
    svc: web::Data<Services>,
) -> actix_web::Result<HttpResponse> {
    let max = svc.config.session.max_frame_bytes;
    let session = PlayerSession::new(svc.into_inner());
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(max)
        .start()
}

fn parse_image_id(raw: &str) -> Option<ImageId> {
    raw.strip_suffix(".png").unwrap_or(raw).parse().ok()
}

async fn image(
    req: HttpRequest,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> HttpResponse {
    let Some(id) = parse_image_id(&path) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, ErrorCode::NotFound);
    };
    let etag = format!("\"{id}\"");
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    match svc.images.image_bytes(id).await {
        Ok(Some((bytes, mime))) => {
            let mut resp = if cached {
                HttpResponse::NotModified()
            } else {
                HttpResponse::Ok()
            };
            resp.insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
                .insert_header((header::ETAG, etag))
                .insert_header(("X-Content-Type-Options", "nosniff"));
            if cached {
                resp.finish()
            } else {
                resp.content_type(mime).body(bytes)
            }
        }
        Ok(None) => error(actix_web::http::StatusCode::NOT_FOUND, ErrorCode::NotFound),
        Err(e) => unavailable(e),
    }
}

/// Public metadata of an image (no uploader identity).
#[derive(Debug, Serialize)]
struct ImageMetaView {
    id: ImageId,
    width: u32,
    height: u32,
    source: crate::store::ImageSource,
    votes: emofy_game::VoteCounts,
    #[serde(flatten)]
    status: emofy_game::ImageStatus,
}

async fn image_meta(path: web::Path<String>, svc: web::Data<Services>) -> HttpResponse {
    let Some(id) = parse_image_id(&path) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, ErrorCode::NotFound);
    };
    match svc.images.image_meta(id).await {
        Ok(Some(m)) => HttpResponse::Ok().json(ImageMetaView {
            id: m.id,
            width: m.width,
            height: m.height,
            source: m.source,
            votes: m.votes,
            status: m.status,
        }),
        Ok(None) => error(actix_web::http::StatusCode::NOT_FOUND, ErrorCode::NotFound),
        Err(e) => unavailable(e),
    }
}

#[derive(Debug, Deserialize)]
struct LeaderboardQuery {
    limit: Option<usize>,
    player: Option<PlayerId>,
}

/// The all-time board (kept for clients of the first API; see `/api/leaderboards/{board}`).
async fn leaderboard(
    q: web::Query<LeaderboardQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let board = &svc.leaderboard;
    let bucket = Period::AllTime.bucket(svc.clock.now());
    let top = board.top(&bucket, limit).await?;
    let you = match q.player {
        Some(p) => board.standing(&bucket, p).await?,
        None => None,
    };
    let players = board.count(&bucket).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "board": "all_time", "top": top, "you": you, "players": players
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardQuery {
    period: Option<Period>,
    limit: Option<usize>,
    /// A player: adds their standing and the rows `k` above and below them.
    around: Option<PlayerId>,
    k: Option<usize>,
}

/// `GET /api/leaderboards/{board}?period=daily&limit=10&around={player}&k=2`.
async fn leaderboards(
    path: web::Path<String>,
    q: web::Query<BoardQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    use actix_web::http::StatusCode;
    if path.as_str() != "global" {
        return Err(ApiError::with(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "the only board is \"global\"",
        ));
    }
    let period = q.period.unwrap_or(Period::AllTime);
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let k = q.k.unwrap_or(2).min(25);
    let bucket = period.bucket(svc.clock.now());
    let board = &svc.leaderboard;
    let stale = svc.board_buffer.as_ref().is_some_and(|b| b.is_stale());
    let read = async {
        let top = board.top(&bucket, limit).await?;
        let players = board.count(&bucket).await?;
        let (you, around) = match q.around {
            Some(p) => (
                board.standing(&bucket, p).await?,
                Some(board.around(&bucket, p, k).await?),
            ),
            None => (None, None),
        };
        Ok::<_, crate::store::StoreError>((top, players, you, around))
    }
    .await;
    let body = match read {
        Ok((top, players, you, around)) => {
            svc.hub.do_send(RememberSnapshot {
                period,
                bucket: bucket.id.clone(),
                top: top.clone(),
                players,
            });
            serde_json::json!({
            "board": "global", "period": period, "bucket": bucket.id, "top": top,
            "players": players, "you": you, "around": around, "stale": stale,
            })
        }
        Err(e) => {
            // Unreadable: the hub's last good snapshot, marked stale.
            tracing::warn!(error = %e, "leaderboard unreadable");
            match svc.hub.send(LastSnapshot { period }).await.ok().flatten() {
                Some((id, top, players)) => serde_json::json!({
                    "board": "global", "period": period, "bucket": id,
                    "top": top.into_iter().take(limit).collect::<Vec<_>>(),
                    "players": players, "you": null, "around": null, "stale": true,
                }),
                None => return Err(e.into()),
            }
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

async fn board_socket(
    req: HttpRequest,
    stream: web::Payload,
    svc: web::Data<Services>,
) -> actix_web::Result<HttpResponse> {
    let viewer = BoardViewer::new(svc.into_inner());
    ws::WsResponseBuilder::new(viewer, &req, stream)
        .frame_size(4096)
        .start()
}

async fn stats(svc: web::Data<Services>) -> HttpResponse {
    match svc.images.stats().await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(e) => unavailable(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(body: web::Json<LoginRequest>, svc: web::Data<Services>) -> HttpResponse {
    let LoginRequest { username, password } = body.into_inner();
    let account = match svc.players.account(&username).await {
        Ok(a) => a,
        Err(e) => return unavailable(e),
    };
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
        return error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
        );
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
    HttpResponse::Ok().json(serde_json::json!({
        "token": token, "player": account.player, "role": account.role, "expires_ms": expires,
        "moderator": Role::can_moderate(account.role),
    }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("ok")
}

async fn readyz(svc: web::Data<Services>) -> HttpResponse {
    let store = svc.images.image_count().await;
    let pool = svc.coordinator.send(PoolSize).await;
    match (store, pool) {
        (Ok(images), Ok(pool)) => HttpResponse::Ok().json(serde_json::json!({
            "ready": true, "images": images, "open_images": pool.open
        })),
        (store, pool) => {
            tracing::warn!(
                store_ok = store.is_ok(),
                coordinator_ok = pool.is_ok(),
                "not ready"
            );
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "ready": false }))
        }
    }
}

async fn metrics(svc: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(svc.metrics.render())
}

const INDEX: &str = include_str!("../../web-client/index.html");
const PLAY_JS: &str = include_str!("../../web-client/play.js");
const STYLE: &str = include_str!("../../web-client/style.css");
const BOARD: &str = include_str!("../../web-client/board.html");
const BOARD_JS: &str = include_str!("../../web-client/board.js");
const BOARD_LOGIC_JS: &str = include_str!("../../web-client/board-logic.js");
const MOD: &str = include_str!("../../web-client/mod.html");
const MOD_JS: &str = include_str!("../../web-client/mod.js");
const MOD_LOGIC_JS: &str = include_str!("../../web-client/mod-logic.js");
const CONTRIBUTE: &str = include_str!("../../web-client/contribute.html");
const CONTRIBUTE_JS: &str = include_str!("../../web-client/contribute.js");
const CONTRIBUTE_LOGIC_JS: &str = include_str!("../../web-client/contribute-logic.js");

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(INDEX)
}

async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, mime) = match path.as_str() {
        "index.html" => (INDEX, "text/html; charset=utf-8"),
        "play.js" => (PLAY_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "board.html" => (BOARD, "text/html; charset=utf-8"),
        "board.js" => (BOARD_JS, "text/javascript; charset=utf-8"),
        "board-logic.js" => (BOARD_LOGIC_JS, "text/javascript; charset=utf-8"),
        "mod.html" => (MOD, "text/html; charset=utf-8"),
        "mod.js" => (MOD_JS, "text/javascript; charset=utf-8"),
        "mod-logic.js" => (MOD_LOGIC_JS, "text/javascript; charset=utf-8"),
        "contribute.html" => (CONTRIBUTE, "text/html; charset=utf-8"),
        "contribute.js" => (CONTRIBUTE_JS, "text/javascript; charset=utf-8"),
        "contribute-logic.js" => (CONTRIBUTE_LOGIC_JS, "text/javascript; charset=utf-8"),
        _ => return error(actix_web::http::StatusCode::NOT_FOUND, ErrorCode::NotFound),
    };
    HttpResponse::Ok()
        .content_type(mime)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// Reads a request body of at most `max` bytes: a longer one is refused with
/// `413 payload_too_large` as soon as it passes the limit.
pub async fn read_capped(
    mut body: actix_web::web::Payload,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                ErrorCode::InvalidMessage,
            )
        })?;
        if bytes.len() + chunk.len() > max {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
