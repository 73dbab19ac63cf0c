//! Label history over HTTP: a player's own labels (paged) and, for
//! moderators, every label of an image.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use emofy_game::{ImageId, Millis, Role};
use serde::Deserialize;

use crate::app::Services;
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::store::{LabelCursor, LabelRecord};
use crate::uploads::bearer;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    /// The `next` value of the previous page.
    after: Option<String>,
}

fn view(l: &LabelRecord, with_player: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "round": l.round, "image": {"id": l.image, "url": format!("/images/{}.png", l.image)},
        "emotion": l.emotion, "shown": l.shown, "decoy": l.decoy, "gold": l.gold, "points": l.points,
        "response_ms": l.response_ms, "at_ms": l.at,
    });
    if with_player && let Some(o) = v.as_object_mut() {
        o.insert("player".into(), serde_json::json!(l.player));
    }
    v
}

/// `GET /api/me/labels?limit=20&after=`: the caller's labels, newest first.
pub async fn mine(
    req: HttpRequest,
    q: web::Query<PageQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let cursor = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.split_once('.')
                .and_then(|(ms, round)| {
                    Some(LabelCursor {
                        at: Millis(ms.parse().ok()?),
                        round: round.parse().ok()?,
                    })
                })
                .ok_or_else(|| {
                    ApiError::with(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidMessage,
                        "`after` must be the `next` value of a previous page",
                    )
                })?,
        ),
    };
    let rows = svc
        .rounds
        .player_labels(claims.player, cursor, limit + 1)
        .await?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next = more
        .then(|| rows.last().map(|l| format!("{}.{}", l.at.0, l.round)))
        .flatten();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "labels": rows.iter().map(|l| view(l, false)).collect::<Vec<_>>(),
        "next": next,
    })))
}

/// `GET /api/images/{id}/labels?limit=`: every label of an image (moderators).
pub async fn of_image(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    if !Role::can_moderate(claims.role) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden));
    }
    let Ok(id) = path.parse::<ImageId>() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = svc.rounds.image_labels(id, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "image": id,
        "labels": rows.iter().map(|l| view(l, true)).collect::<Vec<_>>(),
    })))
}
