//! Images by content hash: the bytes (`/images/{id}`), public metadata
//! (`/api/images/{id}`) and, for moderators, every label of an image.
//!
//! Contributed photos are biometric data, and nothing here tells who
//! contributed what or whether a face was contributed at all: an upload's
//! metadata is shown to its contributor and moderators only, and the bytes of
//! an upload that is not shown to players (`show_to_players` off) are served
//! only to them; to anyone else both read as `404`. Upload bytes are never
//! cached (`no-store`): what is erased stays erased.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use emofy_game::ImageId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorCode;
use crate::service::Services;
use crate::store::{ImageSource, LabelRecord};
use crate::web::errors::ApiError;
use crate::web::extract::{MaybeCaller, ModeratorCaller};
use crate::web::openapi::{EmotionName, ErrorBody, ImageIdText, StatusName};

pub(crate) fn parse_image_id(raw: &str) -> Option<ImageId> {
    raw.strip_suffix(".png").unwrap_or(raw).parse().ok()
}

fn not_found() -> ApiError {
    ApiError::code(ErrorCode::NotFound)
}

/// Whether `caller` may see the upload behind `image` (`None`: not an upload
/// or erased). Shown uploads are public when `public_if_shown`.
async fn upload_visible(
    svc: &Services,
    image: ImageId,
    caller: &MaybeCaller,
    public_if_shown: bool,
) -> Result<Option<bool>, ApiError> {
    Ok(svc
        .uploads
        .upload_access(image)
        .await?
        .map(|a| (public_if_shown && a.show_to_players) || caller.is_or_moderates(a.contributor)))
}

/// The image's bytes.
#[utoipa::path(
    tag = "images",
    params(("id" = String, Path, description = "The image's SHA-256, optionally with `.png`")),
    responses(
        (status = 200, description = "The image (PNG or JPEG)", content_type = "image/png"),
        (status = 304, description = "Not modified (the `ETag` matched)"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[get("/images/{id}")]
pub async fn image_bytes(
    caller: MaybeCaller,
    req: HttpRequest,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = parse_image_id(&path) else {
        return Err(not_found());
    };
    let upload = upload_visible(&svc, id, &caller, true).await?;
    if upload == Some(false) {
        return Err(not_found());
    }
    let Some((bytes, mime)) = svc.images.image_bytes(id).await? else {
        return Err(not_found());
    };
    if upload.is_some() {
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "private, no-store"))
            .content_type(mime)
            .body(bytes));
    }
    let etag = format!("\"{id}\"");
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    resp.insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::ETAG, etag));
    Ok(if cached {
        resp.finish()
    } else {
        resp.content_type(mime).body(bytes)
    })
}

/// Metadata of an image (never who contributed it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageMetaView {
    #[schema(value_type = ImageIdText)]
    id: ImageId,
    width: u32,
    height: u32,
    #[schema(value_type = String, example = "demo")]
    source: ImageSource,
    #[schema(value_type = Vec<u32>)]
    votes: emofy_game::VoteCounts,
    #[serde(flatten)]
    #[schema(inline)]
    status: StatusView,
}

/// An image's status and, once it retired, its consensus label.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    #[schema(value_type = StatusName)]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EmotionName>)]
    pub label: Option<emofy_game::Emotion>,
}

impl From<emofy_game::ImageStatus> for StatusView {
    fn from(s: emofy_game::ImageStatus) -> Self {
        StatusView {
            status: s.name(),
            label: match s {
                emofy_game::ImageStatus::Retired { label } => Some(label),
                _ => None,
            },
        }
    }
}

/// An image's metadata.
#[utoipa::path(
    tag = "images",
    params(("id" = String, Path, description = "The image's SHA-256")),
    responses(
        (status = 200, body = ImageMetaView),
        (status = 404, description = "`not_found` (also: an upload, to anyone but its contributor and moderators)", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
#[get("/api/images/{id}")]
pub async fn image_meta(
    caller: MaybeCaller,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = parse_image_id(&path) else {
        return Err(not_found());
    };
    let Some(m) = svc.images.image_meta(id).await? else {
        return Err(not_found());
    };
    if m.source == ImageSource::Upload
        && upload_visible(&svc, id, &caller, false).await? != Some(true)
    {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(ImageMetaView {
        id: m.id,
        width: m.width,
        height: m.height,
        source: m.source,
        votes: m.votes,
        status: m.status.into(),
    }))
}

/// A label as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelView {
    #[schema(value_type = uuid::Uuid)]
    round: emofy_game::RoundId,
    image: crate::web::uploads::ImageRefView,
    #[schema(value_type = EmotionName)]
    emotion: emofy_game::Emotion,
    #[schema(value_type = Option<EmotionName>)]
    shown: Option<emofy_game::Emotion>,
    decoy: bool,
    gold: bool,
    points: u32,
    response_ms: u64,
    #[schema(value_type = u64)]
    at_ms: emofy_game::Millis,
    /// Moderators' views only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    player: Option<emofy_game::PlayerId>,
}

impl LabelView {
    pub fn of(l: &LabelRecord, with_player: bool) -> LabelView {
        LabelView {
            round: l.round,
            image: crate::web::uploads::ImageRefView::of(l.image),
            emotion: l.emotion,
            shown: l.shown,
            decoy: l.decoy,
            gold: l.gold,
            points: l.points,
            response_ms: l.response_ms,
            at_ms: l.at,
            player: with_player.then_some(l.player),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LabelsQuery {
    /// Most labels (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageLabels {
    #[schema(value_type = ImageIdText)]
    image: ImageId,
    labels: Vec<LabelView>,
}

/// Every label of an image, oldest first (moderators).
#[utoipa::path(
    tag = "moderation",
    params(("id" = String, Path, description = "The image's SHA-256"), LabelsQuery),
    responses(
        (status = 200, body = ImageLabels),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/images/{id}/labels")]
pub async fn image_labels(
    _caller: ModeratorCaller,
    path: web::Path<String>,
    q: web::Query<LabelsQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = parse_image_id(&path) else {
        return Err(not_found());
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = svc.rounds.image_labels(id, limit).await?;
    Ok(HttpResponse::Ok().json(ImageLabels {
        image: id,
        labels: rows.iter().map(|l| LabelView::of(l, true)).collect(),
    }))
}
