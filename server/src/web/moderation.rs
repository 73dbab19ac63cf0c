//! Moderator review: `/api/moderation/*`, for moderators and admins only
//! (anonymous: 401, players: 403).
//!
//! * `GET queue?limit=` — disputed and uncertain images, ranked by
//!   uncertainty × model disagreement × the contributors' reliability, with
//!   the vote distribution, the posterior, the model's probabilities and
//!   every label with the suggestion it was shown. The ranking covers the
//!   `moderation.queue_candidates` most recently changed candidates
//!   ([`crate::service::review`]: four store reads per request).
//! * `POST images/{id}` — accept, override (the label becomes gold and the
//!   image's labellers settle) or flag (out of play).
//! * `POST players/{id}` — ban, clear or reset. A moderator may not ban or
//!   reset another moderator or an admin; an admin may.
//! * `GET players?flagged=true&limit=` — the reliability table.
//! * `POST /api/admin/players/{id}/role` — an admin sets a player's role
//!   (audited); it takes effect on the player's next request, whatever
//!   their token says (the extractors read the role from the store).
//! * `GET audit?limit=` — every moderator action, newest first.
//! * `GET stats?days=14` — labels per UTC day, images per status, retired
//!   images per class.

use actix_web::{HttpResponse, get, post, web};
use emofy_game::{Emotion, ImageId, PlayerId, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actors::coordinator::ImageModerated;
use crate::error::ErrorCode;
use crate::service::Services;
use crate::service::play::publish_score_changes;
use crate::service::review::{self, QueueBounds};
use crate::store::{AuditEntry, ImageAction, PlayerAction, StoreError};
use crate::web::errors::ApiError;
use crate::web::extract::{AdminCaller, ModeratorCaller};
use crate::web::openapi::{EmotionName, ErrorBody, ImageIdText, RoleName, StatusName};

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::code(ErrorCode::NotFound),
        StoreError::Conflict(d) => ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            ErrorCode::InvalidMessage,
        )
        .detail(d),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// Rows (1–1000; the queue shows at most 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Only flagged players (the players table).
    flagged: Option<bool>,
}

/// One label as a moderator sees it.
#[derive(Debug, Serialize, ToSchema)]
struct QueueLabel {
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    #[schema(value_type = EmotionName)]
    emotion: Emotion,
    #[schema(value_type = Option<EmotionName>)]
    shown: Option<Emotion>,
    decoy: bool,
    gold: bool,
    response_ms: u64,
    counted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct QueueItem {
    #[schema(value_type = ImageIdText)]
    image: ImageId,
    url: String,
    /// An upload: its bytes need the moderator's token (fetch, then show).
    upload: bool,
    #[schema(value_type = StatusName)]
    status: &'static str,
    /// Higher is reviewed sooner.
    priority: f64,
    #[schema(value_type = Vec<u32>)]
    votes: emofy_game::VoteCounts,
    #[schema(value_type = Option<Vec<f64>>)]
    posterior: Option<[f64; 7]>,
    #[schema(value_type = Option<EmotionName>)]
    crowd: Option<Emotion>,
    #[schema(value_type = Option<EmotionName>)]
    model_guess: Option<Emotion>,
    #[schema(value_type = Option<Vec<f64>>)]
    model_probabilities: Option<Vec<f32>>,
    contributors_reliability: f64,
    labels: Vec<QueueLabel>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Queue {
    items: Vec<QueueItem>,
}

/// The review queue, highest priority first.
#[utoipa::path(
    tag = "moderation",
    params(Limit),
    responses(
        (status = 200, body = Queue),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/moderation/queue")]
pub async fn review_queue(
    _caller: ModeratorCaller,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let bounds = QueueBounds {
        candidates: svc.config.moderation.queue_candidates,
        labels: svc.config.moderation.queue_labels,
        limit: q.limit.unwrap_or(20).clamp(1, 100),
    };
    let model = svc.inference.as_ref().map(|m| m.version());
    let entries = review::review_queue(
        svc.review.as_ref(),
        svc.rounds.as_ref(),
        svc.images.as_ref(),
        model.as_deref(),
        bounds,
    )
    .await
    .map_err(store_error)?;
    let items = entries
        .into_iter()
        .map(|e| {
            let c = e.candidate;
            QueueItem {
                image: c.meta.id,
                url: format!("/images/{}", c.meta.id),
                upload: c.meta.source == crate::store::ImageSource::Upload,
                status: c.meta.status.name(),
                priority: e.rank.priority,
                votes: c.meta.votes,
                posterior: c.posterior,
                crowd: e.rank.crowd.map(|(e, _)| e),
                model_guess: c.model_guess,
                model_probabilities: e.model_probabilities,
                contributors_reliability: e.rank.mean_reliability,
                labels: e
                    .labels
                    .into_iter()
                    .map(|(l, counted)| QueueLabel {
                        player: l.player,
                        emotion: l.emotion,
                        shown: l.shown,
                        decoy: l.decoy,
                        gold: l.gold,
                        response_ms: l.response_ms,
                        counted,
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Queue { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageModeration {
    #[schema(value_type = ImageIdText)]
    image: ImageId,
    #[schema(value_type = StatusName)]
    status: &'static str,
    #[schema(value_type = Option<EmotionName>)]
    gold: Option<Emotion>,
    /// Labellers paid because the image retired now.
    settled: usize,
}

/// Accept, override or flag an image.
#[utoipa::path(
    tag = "moderation",
    params(("id" = String, Path, description = "The image id")),
    request_body = ImageAction,
    responses(
        (status = 200, body = ImageModeration),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_message`: out of play or unlabelled", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/moderation/images/{id}")]
pub async fn moderate_image(
    caller: ModeratorCaller,
    path: web::Path<String>,
    body: web::Json<ImageAction>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let moderator = caller.0.player;
    let id: ImageId = path
        .parse()
        .map_err(|_| ApiError::code(ErrorCode::NotFound))?;
    let action = body.into_inner();
    if let ImageAction::Flag { reason } = &action
        && (reason.is_empty() || reason.chars().count() > 200)
    {
        return Err(ApiError::code(ErrorCode::InvalidMessage)
            .detail("reason: 1 to 200 characters, e.g. not_a_face or inappropriate"));
    }
    let done = svc
        .review
        .moderate_image(id, action.clone(), moderator, svc.clock.now(), &svc.rules)
        .await
        .map_err(store_error)?;
    tracing::info!(image = %id, moderator = %moderator, action = action.name(), status = done.status.name(), "image moderated");
    crate::metrics::Metrics::count(&svc.metrics.moderation, action.name());
    svc.coordinator.do_send(ImageModerated {
        image: id,
        status: done.status,
        gold: done.gold.is_some(),
    });
    publish_score_changes(&svc, &done.changes, 0).await;
    Ok(HttpResponse::Ok().json(ImageModeration {
        image: id,
        status: done.status.name(),
        gold: done.gold,
        settled: done.changes.len(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlayerBody {
    action: PlayerAction,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlayerModeration {
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    #[schema(value_type = String, example = "banned")]
    moderation: emofy_game::Moderation,
    #[schema(value_type = Option<String>, example = "same_button")]
    flag: Option<emofy_game::SpamFlag>,
    counts: bool,
}

/// Ban, clear or reset a player.
#[utoipa::path(
    tag = "moderation",
    params(("id" = uuid::Uuid, Path, description = "The player id")),
    request_body = PlayerBody,
    responses(
        (status = 200, body = PlayerModeration),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`: a player, or a moderator acting on a moderator or admin", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/moderation/players/{id}")]
pub async fn moderate_player(
    caller: ModeratorCaller,
    path: web::Path<String>,
    body: web::Json<PlayerBody>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let me = caller.0;
    let id: PlayerId = path
        .parse()
        .map_err(|_| ApiError::code(ErrorCode::NotFound))?;
    // Only an admin acts on the moderating roles (a moderator cannot silence a peer).
    if me.role != Role::Admin
        && matches!(body.action, PlayerAction::Ban | PlayerAction::Reset)
        && let Some(target) = svc.players.player(id).await?
        && target.role.can_moderate()
    {
        return Err(ApiError::code(ErrorCode::Forbidden)
            .detail("only an admin may ban or reset a moderator or an admin"));
    }
    let r = svc
        .review
        .moderate_player(id, body.action, me.player, svc.clock.now())
        .await
        .map_err(store_error)?;
    tracing::info!(player = %id, moderator = %me.player, action = body.action.name(), "player moderated");
    crate::metrics::Metrics::count(&svc.metrics.moderation, body.action.name());
    Ok(HttpResponse::Ok().json(PlayerModeration {
        player: id,
        moderation: r.moderation,
        flag: r.flag,
        counts: r.counts(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = RoleName)]
    role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleChange {
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    #[schema(value_type = RoleName)]
    from: Role,
    #[schema(value_type = RoleName)]
    role: Role,
}

/// Sets a player's role (admins): a moderator demoted, a player promoted.
/// Audited as `set_role`; effective on the player's next request on every
/// replica.
#[utoipa::path(
    tag = "moderation",
    params(("id" = uuid::Uuid, Path, description = "The player id")),
    request_body = RoleBody,
    responses(
        (status = 200, body = RoleChange),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden` / `banned`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/admin/players/{id}/role")]
pub async fn set_role(
    caller: AdminCaller,
    path: web::Path<String>,
    body: web::Json<RoleBody>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let me = caller.0;
    let id: PlayerId = path
        .parse()
        .map_err(|_| ApiError::code(ErrorCode::NotFound))?;
    let role = body.role;
    let from = svc
        .review
        .set_role(id, role, me.player, svc.clock.now())
        .await
        .map_err(store_error)?;
    tracing::info!(player = %id, admin = %me.player, from = from.as_str(), role = role.as_str(), "role set");
    crate::metrics::Metrics::count(&svc.metrics.moderation, "set_role");
    Ok(HttpResponse::Ok().json(RoleChange {
        player: id,
        from,
        role,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct PlayerRow {
    #[schema(value_type = uuid::Uuid)]
    player: PlayerId,
    name: String,
    answers: u32,
    accuracy: f64,
    copy_rate: f64,
    gold: u32,
    gold_right: u32,
    decoys: u32,
    decoys_followed: u32,
    fast: u32,
    /// Answers on faces whose answer was known before theirs, and how many were right.
    checks: u32,
    checks_right: u32,
    /// Shown they can be trusted (their labels weigh in full and can retire images).
    established: bool,
    /// What one of their labels weighs (newcomers less, until checked).
    weight: f64,
    #[schema(value_type = Option<String>)]
    flag: Option<emofy_game::SpamFlag>,
    why: Option<&'static str>,
    #[schema(value_type = String)]
    moderation: emofy_game::Moderation,
    counts: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlayersTable {
    players: Vec<PlayerRow>,
}

/// The reliability table.
#[utoipa::path(
    tag = "moderation",
    params(Limit),
    responses(
        (status = 200, body = PlayersTable),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/moderation/players")]
pub async fn reliability_table(
    _caller: ModeratorCaller,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let rows = svc
        .review
        .reliabilities(
            q.flagged.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await
        .map_err(store_error)?;
    let players = rows
        .into_iter()
        .map(|p| {
            let r = p.reliability;
            PlayerRow {
                player: p.player,
                name: p.name,
                answers: r.answers,
                accuracy: r.accuracy(),
                copy_rate: r.copy_rate(),
                gold: r.gold,
                gold_right: r.gold_right,
                decoys: r.decoys,
                decoys_followed: r.decoys_followed,
                fast: r.fast,
                checks: r.checks,
                checks_right: r.checks_right,
                established: r.established(&svc.rules.trust),
                weight: r.weight(&svc.rules.trust),
                flag: r.flag,
                why: r.flag.map(|f| f.explain()),
                moderation: r.moderation,
                counts: r.counts(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(PlayersTable { players }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
}

/// Every moderator action, newest first.
#[utoipa::path(
    tag = "moderation",
    params(Limit),
    responses(
        (status = 200, body = AuditLog),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/moderation/audit")]
pub async fn audit_log(
    _caller: ModeratorCaller,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let entries = svc
        .review
        .audit_log(q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(AuditLog { entries }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Days {
    /// Days of labels per day (1–366, default 14).
    #[param(minimum = 1, maximum = 366)]
    days: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    day: String,
    labels: u64,
}

#[derive(Debug, Serialize, ToSchema)]
struct StatusCounts {
    open: u64,
    retired: u64,
    disputed: u64,
    removed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetCharts {
    labels_per_day: Vec<DayCount>,
    status: StatusCounts,
    /// Retired images per emotion name.
    #[schema(value_type = std::collections::HashMap<String, u64>)]
    retired_per_class: serde_json::Map<String, serde_json::Value>,
    labels: u64,
    players: u64,
}

/// The dataset's charts.
#[utoipa::path(
    tag = "moderation",
    params(Days),
    responses(
        (status = 200, body = DatasetCharts),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/moderation/stats")]
pub async fn dataset_charts(
    _caller: ModeratorCaller,
    q: web::Query<Days>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let days = q.days.unwrap_or(14).clamp(1, 366);
    let now = svc.clock.now();
    // The start of the UTC day `days - 1` days ago.
    let start_of_today = now.0 - now.0 % 86_400_000;
    let since = emofy_game::Millis(start_of_today.saturating_sub((days - 1) * 86_400_000));
    let d = svc.review.dataset_stats(since).await.map_err(store_error)?;
    let s = svc.images.stats().await.map_err(store_error)?;
    let retired_per_class = Emotion::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), d.retired_per_class[e.index()].into()))
        .collect();
    Ok(HttpResponse::Ok().json(DatasetCharts {
        labels_per_day: d
            .labels_per_day
            .iter()
            .map(|(day, n)| DayCount {
                day: day.clone(),
                labels: *n,
            })
            .collect(),
        status: StatusCounts {
            open: s.open,
            retired: s.retired,
            disputed: s.disputed,
            removed: s.removed,
        },
        retired_per_class,
        labels: s.labels,
        players: s.players,
    }))
}
