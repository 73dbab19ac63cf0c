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

/// The most recent labels a comparison with the model reads.
pub const VERSUS_WINDOW: usize = 500;

/// The serving model, as players see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServingModel {
    version: String,
    /// Accuracy on the frozen test split when the gate judged it (`null`
    /// for a model an operator installed).
    test_accuracy: Option<f64>,
}

/// The caller's answers against the serving model's guesses, over their
/// most recent labels, on faces whose truth is settled (verified, or
/// retired with a consensus) and that the model has a guess for.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersusModelView {
    /// `null` when no model serves.
    model: Option<ServingModel>,
    /// The most recent labels read (at most this many).
    window: usize,
    faces: u32,
    you_right: u32,
    model_right: u32,
    you_beat_model: u32,
    model_beat_you: u32,
    /// `you_beat_model / faces`; `null` with no faces.
    beat_share: Option<f64>,
}

/// "You beat the model on 64% of faces."
#[utoipa::path(
    tag = "play",
    responses(
        (status = 200, body = VersusModelView),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/me/versus-model")]
pub async fn versus_model(
    caller: Caller,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let version = match &svc.inference {
        Some(pool) => Some(pool.version()),
        None => svc.models.champion().await?,
    };
    let model = match &version {
        Some(v) => Some(ServingModel {
            version: v.clone(),
            test_accuracy: svc.models.model(v).await?.and_then(|m| m.test_accuracy),
        }),
        None => None,
    };
    let mut labels = Vec::new();
    let mut cursor = None;
    while labels.len() < VERSUS_WINDOW {
        let page = svc
            .rounds
            .player_labels(
                caller.0.player,
                cursor,
                100.min(VERSUS_WINDOW - labels.len()),
            )
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some(LabelCursor {
            at: last.at,
            round: last.round,
        });
        let short = page.len() < 100;
        labels.extend(page);
        if short {
            break;
        }
    }
    let mut ids: Vec<_> = labels.iter().map(|l| l.image).collect();
    ids.sort_unstable();
    ids.dedup();
    let guesses = match &version {
        Some(v) => svc.images.predictions_of(&ids, v).await?,
        None => Default::default(),
    };
    let metas = svc.images.image_metas(&ids).await?;
    let answered: Vec<_> = labels
        .iter()
        .filter_map(|l| {
            let meta = metas.get(&l.image)?;
            Some(emofy_game::versus::Answered {
                answer: l.emotion,
                model: guesses.get(&l.image).map(|p| p.top()),
                gold: meta.gold,
                status: meta.status,
            })
        })
        .collect();
    let v = emofy_game::versus::versus_model(&answered);
    Ok(HttpResponse::Ok().json(VersusModelView {
        model,
        window: VERSUS_WINDOW,
        faces: v.faces,
        you_right: v.you_right,
        model_right: v.model_right,
        you_beat_model: v.you_beat_model,
        model_beat_you: v.model_beat_you,
        beat_share: v.beat_share,
    }))
}
