//! Moderator review: a REST API under `/api/moderation/`, for moderators and
//! admins only (anonymous: 401, players: 403).
//!
//! * `GET /api/moderation/queue?limit=` — disputed and uncertain images,
//!   ranked by uncertainty × model disagreement × the contributors'
//!   reliability, with the vote distribution, the posterior, the model's
//!   probabilities and every label with the suggestion it was shown (and
//!   whether that suggestion was a decoy). The ranking covers the 500 most
//!   recently changed candidates.
//! * `POST /api/moderation/images/{id}` — `{"action": "accept"}`,
//!   `{"action": "override", "label": "sad"}` (the label becomes gold and the
//!   image's labellers settle), or `{"action": "flag", "reason": "not_a_face"}`
//!   (out of play).
//! * `POST /api/moderation/players/{id}` — `{"action": "ban" | "clear" | "reset"}`.
//! * `GET /api/moderation/players?flagged=true&limit=` — the reliability table,
//!   with the reason of each automatic flag.
//! * `GET /api/moderation/audit?limit=` — every moderator action, newest first.
//! * `GET /api/moderation/stats?days=14` — the dataset's charts: labels per
//!   UTC day, images per status, retired images per class.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use emofy_game::{Emotion, ImageId, ImageStatus, PlayerId, Reliability};
use serde::{Deserialize, Serialize};

use crate::actors::coordinator::{ImageModerated, ScoresChanged};
use crate::actors::hub::ScoresMoved;
use crate::app::Services;
use crate::auth::Claims;
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::store::{ImageAction, LabelRecord, PlayerAction, StoreError};
use crate::uploads::bearer;

fn moderator(req: &HttpRequest, svc: &Services) -> Result<Claims, ApiError> {
    let claims = bearer(req, svc)?;
    if !claims.role.can_moderate() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden));
    }
    Ok(claims)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound),
        StoreError::Conflict(d) => {
            ApiError::with(StatusCode::CONFLICT, ErrorCode::InvalidMessage, d)
        }
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: Option<usize>,
    flagged: Option<bool>,
}

/// One label as a moderator sees it.
#[derive(Debug, Serialize)]
struct LabelView {
    player: PlayerId,
    emotion: Emotion,
    shown: Option<Emotion>,
    decoy: bool,
    gold: bool,
    response_ms: u64,
    counted: bool,
}

#[derive(Debug, Serialize)]
struct QueueItem {
    image: ImageId,
    url: String,
    status: &'static str,
    /// Higher is reviewed sooner.
    priority: f64,
    votes: emofy_game::VoteCounts,
    posterior: Option<[f64; 7]>,
    crowd: Option<Emotion>,
    model_guess: Option<Emotion>,
    model_probabilities: Option<Vec<f32>>,
    contributors_reliability: f64,
    labels: Vec<LabelView>,
}

/// `GET /api/moderation/queue`
pub async fn queue(
    req: HttpRequest,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    moderator(&req, &svc)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let candidates = svc
        .review
        .review_candidates(500)
        .await
        .map_err(store_error)?;
    let model = svc.inference.as_ref().map(|m| m.version());
    let mut items = Vec::new();
    for c in candidates {
        let labels: Vec<LabelRecord> = svc
            .rounds
            .image_labels(c.meta.id, 100)
            .await
            .map_err(store_error)?;
        let players: Vec<PlayerId> = labels.iter().map(|l| l.player).collect();
        let reliabilities: std::collections::HashMap<PlayerId, Reliability> = svc
            .review
            .reliabilities_of(&players)
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        let views: Vec<LabelView> = labels
            .iter()
            .map(|l| LabelView {
                player: l.player,
                emotion: l.emotion,
                shown: l.shown,
                decoy: l.decoy,
                gold: l.gold,
                response_ms: l.response_ms,
                counted: reliabilities.get(&l.player).is_none_or(Reliability::counts),
            })
            .collect();
        let accuracy: Vec<f64> = labels
            .iter()
            .map(|l| {
                reliabilities
                    .get(&l.player)
                    .map_or_else(|| Reliability::default().accuracy(), Reliability::accuracy)
            })
            .collect();
        let mean_reliability = if accuracy.is_empty() {
            0.0
        } else {
            accuracy.iter().sum::<f64>() / accuracy.len() as f64
        };
        let crowd = c.posterior.map(|p| emofy_game::truth::map(&p));
        let uncertainty = crowd.map_or(1.0, |(_, p)| 1.0 - p);
        let disagrees = match (crowd, c.model_guess) {
            (Some((e, _)), Some(g)) => e != g,
            _ => false,
        };
        // Disputed images first; then uncertain ones where the crowd contradicts
        // the model, weighted by how far the contributors are trusted.
        let disputed = matches!(c.meta.status, ImageStatus::Disputed);
        let priority = (if disputed { 1.0 } else { 0.0 })
            + uncertainty * (if disagrees { 2.0 } else { 1.0 }) * (0.5 + mean_reliability);
        let model_probabilities = match &model {
            Some(v) => svc
                .images
                .prediction(c.meta.id, v)
                .await
                .map_err(store_error)?
                .map(|p| p.probabilities.to_vec()),
            None => None,
        };
        items.push(QueueItem {
            image: c.meta.id,
            url: format!("/images/{}", c.meta.id),
            status: c.meta.status.name(),
            priority,
            votes: c.meta.votes,
            posterior: c.posterior,
            crowd: crowd.map(|(e, _)| e),
            model_guess: c.model_guess,
            model_probabilities,
            contributors_reliability: mean_reliability,
            labels: views,
        });
    }
    items.sort_by(|a, b| b.priority.total_cmp(&a.priority));
    items.truncate(limit);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `POST /api/moderation/images/{id}`
pub async fn image(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ImageAction>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = moderator(&req, &svc)?;
    let id: ImageId = path
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound))?;
    let action = body.into_inner();
    if let ImageAction::Flag { reason } = &action
        && (reason.is_empty() || reason.len() > 200)
    {
        return Err(ApiError::with(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidMessage,
            "reason: 1 to 200 characters, e.g. not_a_face or inappropriate",
        ));
    }
    let done = svc
        .review
        .moderate_image(
            id,
            action.clone(),
            claims.player,
            svc.clock.now(),
            &svc.rules,
        )
        .await
        .map_err(store_error)?;
    tracing::info!(image = %id, moderator = %claims.player, action = ?action, status = done.status.name(), "image moderated");
    crate::metrics::Metrics::count(&svc.metrics.moderation, action.name());
    svc.coordinator.do_send(ImageModerated {
        image: id,
        status: done.status,
        gold: done.gold.is_some(),
    });
    if !done.changes.is_empty() {
        if let Err(e) = svc.leaderboard.apply(&done.changes).await {
            tracing::warn!(error = %e, "leaderboard update failed");
        }
        svc.hub.do_send(ScoresMoved {
            players: done.changes.iter().map(|c| c.player).collect(),
        });
        svc.coordinator.do_send(ScoresChanged {
            changes: done.changes.clone(),
            origin: 0,
        });
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "image": id,
        "status": done.status.name(),
        "gold": done.gold,
        "settled": done.changes.len(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerBody {
    action: PlayerAction,
}

/// `POST /api/moderation/players/{id}`
pub async fn player(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<PlayerBody>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = moderator(&req, &svc)?;
    let id: PlayerId = path
        .parse()
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound))?;
    let r = svc
        .review
        .moderate_player(id, body.action, claims.player, svc.clock.now())
        .await
        .map_err(store_error)?;
    tracing::info!(player = %id, moderator = %claims.player, action = ?body.action, "player moderated");
    crate::metrics::Metrics::count(&svc.metrics.moderation, body.action.name());
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "player": id,
        "moderation": r.moderation,
        "flag": r.flag,
        "counts": r.counts(),
    })))
}

#[derive(Debug, Serialize)]
struct PlayerRow {
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
    flag: Option<emofy_game::SpamFlag>,
    why: Option<&'static str>,
    moderation: emofy_game::Moderation,
    counts: bool,
}

/// `GET /api/moderation/players`
pub async fn players(
    req: HttpRequest,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    moderator(&req, &svc)?;
    let rows = svc
        .review
        .reliabilities(
            q.flagged.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await
        .map_err(store_error)?;
    let rows: Vec<PlayerRow> = rows
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
                flag: r.flag,
                why: r.flag.map(|f| f.explain()),
                moderation: r.moderation,
                counts: r.counts(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "players": rows })))
}

/// `GET /api/moderation/audit`
pub async fn audit(
    req: HttpRequest,
    q: web::Query<Limit>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    moderator(&req, &svc)?;
    let entries = svc
        .review
        .audit_log(q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Days {
    days: Option<u64>,
}

/// `GET /api/moderation/stats`
pub async fn stats(
    req: HttpRequest,
    q: web::Query<Days>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    moderator(&req, &svc)?;
    let days = q.days.unwrap_or(14).clamp(1, 366);
    let now = svc.clock.now();
    // The start of the UTC day `days - 1` days ago.
    let start_of_today = now.0 - now.0 % 86_400_000;
    let since = emofy_game::Millis(start_of_today.saturating_sub((days - 1) * 86_400_000));
    let d = svc.review.dataset_stats(since).await.map_err(store_error)?;
    let s = svc.images.stats().await.map_err(store_error)?;
    let per_class: serde_json::Map<String, serde_json::Value> = Emotion::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), d.retired_per_class[e.index()].into()))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "labels_per_day": d.labels_per_day.iter().map(|(day, n)| serde_json::json!({"day": day, "labels": n})).collect::<Vec<_>>(),
        "status": {"open": s.open, "retired": s.retired, "disputed": s.disputed, "removed": s.removed},
        "retired_per_class": per_class,
        "labels": s.labels,
        "players": s.players,
    })))
}
