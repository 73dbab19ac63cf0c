//! A player's own label history, paged newest first.

use actix_web::{HttpResponse, get, web};
use emofy_game::Millis;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorCode;
use crate::service::Services;
use crate::store::LabelCursor;
use crate::web::errors::ApiError;
use crate::web::extract::Caller;
use crate::web::images::LabelView;
use crate::web::openapi::ErrorBody;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows (1–100, default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// The `next` value of the previous page.
    #[param(pattern = r"^[0-9]+\.[0-9a-f-]{36}$")]
    after: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelPage {
    labels: Vec<LabelView>,
    /// The `after` of the next page; null on the last one.
    next: Option<String>,
}

fn parse_cursor(raw: &str) -> Option<LabelCursor> {
    let (ms, round) = raw.split_once('.')?;
    Some(LabelCursor {
        at: Millis(ms.parse().ok()?),
        round: round.parse().ok()?,
    })
}

/// The caller's labels, newest first.
#[utoipa::path(
    tag = "play",
    params(PageQuery),
    responses(
        (status = 200, body = LabelPage),
        (status = 400, description = "`invalid_message`: a bad `after`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/me/labels")]
pub async fn my_labels(
    caller: Caller,
    q: web::Query<PageQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let cursor = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(parse_cursor(raw).ok_or_else(|| {
            ApiError::code(ErrorCode::InvalidMessage)
                .detail("`after` must be the `next` value of a previous page")
        })?),
    };
    let rows = svc
        .rounds
        .player_labels(caller.0.player, cursor, limit + 1)
        .await?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let next = more
        .then(|| rows.last().map(|l| format!("{}.{}", l.at.0, l.round)))
        .flatten();
    Ok(HttpResponse::Ok().json(LabelPage {
        labels: rows.iter().map(|l| LabelView::of(l, false)).collect(),
        next,
    }))
}
