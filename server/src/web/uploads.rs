//! Contributed photos over HTTP: upload with consent, the contributor's own
//! label, listing, deletion, and the face preview (`/api/uploads…`,
//! `/api/consent`, `/api/faces/preview`).
//!
//! A photo is checked before anything is stored: size (streamed, refused past
//! `upload.max_bytes`), type (sniffed from the bytes), the `[imaging]` budget
//! (read from the header before decoding), a free image slot (`503 busy`
//! otherwise), a face, and a consent record for the current consent text.
//! What is stored is described in `imaging::photo`. The crop is classified
//! before it is stored, so the answer carries the model's guess and a busy
//! model stores nothing.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use emofy_game::{Emotion, ImageId, ImageStatus, Millis, PlayerId, PoolEntry, RoundId};
use emofy_inference::Prediction;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use crate::actors::inference::PoolError;
use crate::error::ErrorCode;
use crate::imaging::photo::{PhotoError, PhotoRules, ProcessedPhoto, process_photo};
use crate::protocol::Suggestion;
use crate::service::Services;
use crate::service::play::after_answer;
use crate::store::{
    AnswerRecord, Consent, FaceRegion, ImageSource, NewImage, NewUpload, OfferRecord, StoreError,
    UploadCursor, UploadRecord,
};
use crate::web::errors::{ApiError, payload_error};
use crate::web::extract::{ActiveCaller, Caller};
use crate::web::openapi::{EmotionName, ErrorBody, ImageIdText, StatusName};

/// The version of the consent text below; an upload must name it.
pub const CONSENT_VERSION: &str = "2026-11-26";

/// What a contributor agrees to, scope by scope.
pub const CONSENT_TEXT: &str = "Your photo shows your face, which is biometric data. Emofy finds the face, \
keeps only a square crop of it (unless you tick \"keep the whole photo\") and removes all photo metadata \
(camera, time, GPS). Choose what the crop may be used for: \
(1) show_to_players — other players see it in rounds and label its emotion; \
(2) use_for_training — it and its consensus label may train Emofy's emotion model; \
(3) include_in_exports — it may be part of dataset exports; \
(4) keep_original — keep the whole photo, re-encoded without metadata. \
You can delete an upload at any time: its bytes are erased at once, it leaves rounds, \
exports and future training, and only the time of your deletion is kept.";

/// Most uploads listed on one page.
const MAX_PAGE: usize = 50;
/// Largest `consent` field.
const MAX_CONSENT_BYTES: usize = 4096;

/// An image reference.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageRefView {
    #[schema(value_type = ImageIdText)]
    pub id: ImageId,
    pub url: String,
}

impl ImageRefView {
    pub fn of(id: ImageId) -> ImageRefView {
        ImageRefView {
            id,
            url: format!("/images/{id}.png"),
        }
    }
}

/// The model's guess as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
struct PredictionView {
    #[schema(value_type = EmotionName)]
    emotion: Emotion,
    confidence: f32,
    /// One probability per emotion name.
    #[schema(value_type = std::collections::HashMap<String, f64>)]
    probabilities: serde_json::Map<String, serde_json::Value>,
    model: String,
}

impl From<&Prediction> for PredictionView {
    fn from(p: &Prediction) -> Self {
        PredictionView {
            emotion: p.top(),
            confidence: p.confidence(),
            probabilities: Emotion::ALL
                .iter()
                .zip(p.probabilities)
                .map(|(e, v)| (e.as_str().to_owned(), serde_json::Value::from(f64::from(v))))
                .collect(),
            model: p.model.clone(),
        }
    }
}

/// The consent given, with its time.
#[derive(Debug, Serialize, ToSchema)]
struct ConsentView {
    show_to_players: bool,
    use_for_training: bool,
    include_in_exports: bool,
    keep_original: bool,
    text_version: String,
    #[schema(value_type = u64)]
    at_ms: Millis,
}

/// Where the face is in the photo.
#[derive(Debug, Serialize, ToSchema)]
struct FaceView {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    score: f64,
}

/// An upload as its contributor sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    image: ImageRefView,
    #[schema(value_type = u64)]
    created_ms: Millis,
    face: FaceView,
    consent: ConsentView,
    kept_original: bool,
    prediction: Option<PredictionView>,
    /// The contributor's own label.
    #[schema(value_type = Option<EmotionName>)]
    label: Option<Emotion>,
    votes: u32,
    #[schema(value_type = StatusName)]
    status: &'static str,
    /// The crowd's consensus once the image retired.
    #[schema(value_type = Option<EmotionName>)]
    consensus: Option<Emotion>,
}

pub(crate) fn view(u: &UploadRecord, prediction: Option<&Prediction>) -> UploadView {
    let c = &u.consent;
    UploadView {
        image: ImageRefView::of(u.image),
        created_ms: u.created,
        face: FaceView {
            x: u.face.x,
            y: u.face.y,
            w: u.face.w,
            h: u.face.h,
            score: u.face.score,
        },
        consent: ConsentView {
            show_to_players: c.show_to_players,
            use_for_training: c.use_for_training,
            include_in_exports: c.include_in_exports,
            keep_original: c.keep_original,
            text_version: c.text_version.clone(),
            at_ms: u.consent_at,
        },
        kept_original: u.has_original,
        prediction: prediction.map(PredictionView::from),
        label: u.label,
        votes: u.votes.total(),
        status: u.status.name(),
        consensus: match u.status {
            ImageStatus::Retired { label } => Some(label),
            _ => None,
        },
    }
}

async fn prediction_of(svc: &Services, image: ImageId) -> Option<Prediction> {
    let pool = svc.inference.as_ref()?;
    match svc.images.prediction(image, &pool.version()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(image = %image, error = %e, "cannot read the cached prediction");
            None
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentText {
    #[schema(example = "2026-11-26")]
    version: &'static str,
    text: &'static str,
    scopes: [&'static str; 4],
}

/// The consent text contributors are shown, and the version an upload must name.
#[utoipa::path(tag = "uploads", responses((status = 200, body = ConsentText)))]
#[get("/api/consent")]
pub async fn consent_text() -> HttpResponse {
    HttpResponse::Ok().json(ConsentText {
        version: CONSENT_VERSION,
        text: CONSENT_TEXT,
        scopes: [
            "show_to_players",
            "use_for_training",
            "include_in_exports",
            "keep_original",
        ],
    })
}

/// What an upload form holds once read.
#[derive(Debug)]
pub struct UploadForm {
    pub consent: Consent,
    pub photo: Vec<u8>,
}

fn refuse(code: ErrorCode, detail: impl Into<String>) -> ApiError {
    ApiError::code(code).detail(detail)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Reads a multipart field into memory, refusing past `max` bytes.
async fn read_field(field: &mut actix_multipart::Field, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        if buf.len() + chunk.len() > max {
            return Err(ApiError::code(ErrorCode::PayloadTooLarge));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    match e {
        actix_multipart::MultipartError::Payload(p) => payload_error(&p),
        other => refuse(
            ErrorCode::InvalidMessage,
            format!("not a readable multipart/form-data upload: {other}"),
        ),
    }
}

/// Reads and checks an upload form: exactly one `consent` (JSON, at most 4
/// KiB, for the current consent text, consenting to at least one use) and one
/// `photo` (at most `max_photo` bytes, not empty). Any other field, or a
/// field twice, is refused.
pub async fn read_upload_form(
    mut payload: Multipart,
    max_photo: usize,
) -> Result<UploadForm, ApiError> {
    let mut consent: Option<Consent> = None;
    let mut photo: Option<Vec<u8>> = None;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(multipart_error)?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "consent" if consent.is_none() => {
                let raw = read_field(&mut field, MAX_CONSENT_BYTES).await?;
                let parsed: Consent = serde_json::from_slice(&raw).map_err(|e| {
                    refuse(
                        ErrorCode::ConsentRequired,
                        format!("the consent field is not a valid consent record: {e}"),
                    )
                })?;
                consent = Some(parsed);
            }
            "photo" if photo.is_none() => {
                photo = Some(read_field(&mut field, max_photo).await?);
            }
            "consent" | "photo" => {
                return Err(refuse(
                    ErrorCode::InvalidMessage,
                    format!("the field `{name}` is given twice"),
                ));
            }
            other => {
                return Err(refuse(
                    ErrorCode::InvalidMessage,
                    format!(
                        "unexpected field {:?}; send `consent` and `photo`",
                        truncate(other)
                    ),
                ));
            }
        }
    }
    let Some(consent) = consent else {
        return Err(refuse(
            ErrorCode::ConsentRequired,
            "the upload has no `consent` field",
        ));
    };
    if consent.text_version != CONSENT_VERSION {
        return Err(refuse(
            ErrorCode::ConsentRequired,
            format!(
                "consent was given to text version {:?}; the current one is {CONSENT_VERSION:?} (GET /api/consent)",
                truncate(&consent.text_version)
            ),
        ));
    }
    if !(consent.show_to_players || consent.use_for_training) {
        return Err(refuse(
            ErrorCode::ConsentRequired,
            "consent must allow at least showing the face to players or using it for training",
        ));
    }
    let Some(photo) = photo else {
        return Err(ApiError::with(
            actix_web::http::StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedImage,
            "the upload has no `photo` field",
        ));
    };
    if photo.is_empty() {
        return Err(ApiError::with(
            actix_web::http::StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedImage,
            "the photo is empty (0 bytes)",
        ));
    }
    Ok(UploadForm { consent, photo })
}

fn photo_rules(svc: &Services) -> PhotoRules {
    PhotoRules {
        decode: svc.config.imaging.limits(),
        crop_side: svc.config.upload.crop_side,
        min_face_score: svc.config.upload.min_face_score,
    }
}

/// The refusal for an image the decoder will not take.
pub fn decode_refusal(e: emofy_inference::InferenceError) -> ApiError {
    match e {
        emofy_inference::InferenceError::TooLarge(why) => refuse(ErrorCode::ImageTooLarge, why),
        other => refuse(ErrorCode::UnsupportedImage, other.to_string()),
    }
}

/// Runs [`process_photo`] in an image slot on the blocking pool.
async fn process(
    svc: &Services,
    photo: Vec<u8>,
    keep_original: bool,
) -> Result<ProcessedPhoto, ApiError> {
    // The header first: a file over the budget is refused without taking a slot.
    emofy_inference::probe(&photo, &svc.config.imaging.limits()).map_err(decode_refusal)?;
    let Some(slot) = svc.image_slots.try_take() else {
        return Err(ApiError::busy(
            svc.image_slots.retry_after_secs,
            "too many photos are being processed; try again in a moment",
        ));
    };
    let detector = svc.faces.clone();
    let side = svc.inference.as_ref().map_or(64, |p| p.input_side());
    let rules = photo_rules(svc);
    let processed = web::block(move || {
        let _slot = slot;
        process_photo(&photo, &rules, &detector, side, keep_original)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "photo processing failed");
        ApiError::code(ErrorCode::Internal)
    })?;
    processed.map_err(|e| match e {
        PhotoError::NotAnImage(why) => refuse(ErrorCode::UnsupportedImage, why),
        PhotoError::TooLarge(why) => refuse(ErrorCode::ImageTooLarge, why),
        e @ PhotoError::NoFace(_) => refuse(ErrorCode::NoFace, e.to_string()),
        e @ PhotoError::Encode(_) => {
            tracing::error!(error = %e, "cannot encode a photo");
            ApiError::code(ErrorCode::Internal)
        }
    })
}

/// The multipart form of an upload (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadFormSchema {
    /// JSON: `{"show_to_players", "use_for_training", "include_in_exports", "keep_original", "text_version"}`.
    consent: String,
    /// The photo: PNG or JPEG.
    #[schema(value_type = String, format = Binary)]
    photo: Vec<u8>,
}

/// Contributes a photo (multipart: `consent` JSON, `photo` file).
#[utoipa::path(
    tag = "uploads",
    request_body(content = UploadFormSchema, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = UploadView),
        (status = 400, description = "`consent_required` / `invalid_message` / `unsupported_image`", body = ErrorBody),
        (status = 403, description = "`banned`: a moderator banned this player", body = ErrorBody),
        (status = 409, description = "`already_uploaded`: you stored this face already", body = ErrorBody),
        (status = 413, description = "`payload_too_large` / `image_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_image`", body = ErrorBody),
        (status = 422, description = "`no_face`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `upload.per_hour`", body = ErrorBody),
        (status = 503, description = "`busy` (with `Retry-After`) / `try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/uploads")]
pub async fn create_upload(
    caller: ActiveCaller,
    req: HttpRequest,
    payload: Multipart,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limits = svc.config.upload.clone();
    // Refuse an announced oversized body before reading any of it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes + 64 * 1024) {
        svc.metrics.upload(ErrorCode::PayloadTooLarge.as_str());
        return Err(ApiError::code(ErrorCode::PayloadTooLarge));
    }
    let player = caller.0.player;
    let result = create_inner(player, payload, &svc)
        .instrument(tracing::info_span!("upload", player = %player))
        .await;
    match &result {
        Ok(_) => svc.metrics.upload("stored"),
        Err(e) => svc.metrics.upload(e.code.as_str()),
    }
    result
}

async fn create_inner(
    player: PlayerId,
    payload: Multipart,
    svc: &Services,
) -> Result<HttpResponse, ApiError> {
    let limits = &svc.config.upload;
    let now = svc.clock.now();
    let recent = svc
        .uploads
        .uploads_since(player, Millis(now.0.saturating_sub(3_600_000)))
        .await?;
    if recent >= u64::from(limits.per_hour) {
        return Err(refuse(
            ErrorCode::RateLimited,
            format!("at most {} uploads per hour", limits.per_hour),
        ));
    }
    let UploadForm { consent, photo } = read_upload_form(payload, limits.max_bytes).await?;
    let keep = consent.keep_original;
    let processed = process(svc, photo, keep).await?;
    let prediction = match &svc.inference {
        Some(pool) => match pool.classify(processed.model_input.clone()).await {
            Ok(p) => Some(p),
            Err(PoolError::Busy(_)) | Err(PoolError::WorkerLost) => {
                return Err(refuse(
                    ErrorCode::TryAgain,
                    "the model is busy; nothing was stored, try again in a moment",
                ));
            }
            Err(PoolError::Model(e)) => {
                tracing::warn!(error = %e, "the model could not classify an upload");
                None
            }
        },
        None => None,
    };
    let face = FaceRegion {
        x: processed.face.x,
        y: processed.face.y,
        w: processed.face.w,
        h: processed.face.h,
        score: processed.face.score,
    };
    let fingerprint = processed.fingerprint(player);
    let upload = NewUpload {
        player,
        crop: NewImage {
            bytes: processed.crop_png,
            mime: "image/png".into(),
            width: processed.crop_side,
            height: processed.crop_side,
            source: ImageSource::Upload,
            source_label: None,
            uploader: Some(player),
        },
        original: processed.original_png,
        face,
        consent: consent.clone(),
        fingerprint,
    };
    let image = match svc.uploads.insert_upload(upload, now).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => {
            return Err(refuse(
                ErrorCode::AlreadyUploaded,
                "you stored this face already",
            ));
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    if let Some(p) = &prediction
        && let Err(e) = svc.images.save_predictions(vec![(image, p.clone())]).await
    {
        // The image is stored; the next start classifies what has no cached prediction.
        tracing::warn!(image = %image, error = %e, "cannot cache the upload's prediction");
    }
    if consent.show_to_players {
        svc.coordinator
            .do_send(crate::actors::coordinator::ImageAdded {
                entry: PoolEntry {
                    model_guess: prediction.as_ref().map(|p| p.top()),
                    ..PoolEntry::fresh(image, Some(player))
                },
                suggestion: prediction.as_ref().map(Suggestion::from),
            });
    }
    tracing::info!(player = %player, image = %image, face_score = face.score, "upload stored");
    let record = UploadRecord {
        image,
        player,
        created: now,
        face,
        consent,
        consent_at: now,
        has_original: keep,
        label: None,
        votes: Default::default(),
        status: ImageStatus::Open,
    };
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/uploads/{image}")))
        .json(view(&record, prediction.as_ref())))
}

fn parse_id(raw: &str) -> Option<ImageId> {
    raw.parse().ok()
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows (1–50, default 20).
    #[param(minimum = 1, maximum = 50)]
    limit: Option<usize>,
    /// The `next` value of the previous page.
    #[param(pattern = r"^[0-9]+\.[0-9a-f]{64}$")]
    after: Option<String>,
}

fn parse_cursor(raw: &str) -> Option<UploadCursor> {
    let (ms, id) = raw.split_once('.')?;
    Some(UploadCursor {
        created: Millis(ms.parse().ok()?),
        image: id.parse().ok()?,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadPage {
    uploads: Vec<UploadView>,
    /// The `after` of the next page; null on the last one.
    next: Option<String>,
}

/// The caller's uploads, newest first.
#[utoipa::path(
    tag = "uploads",
    params(PageQuery),
    responses(
        (status = 200, body = UploadPage),
        (status = 400, description = "`invalid_message`: a bad `after`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/uploads")]
pub async fn list_uploads(
    caller: Caller,
    q: web::Query<PageQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let cursor = match q.after.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return Err(refuse(
                ErrorCode::InvalidMessage,
                "`after` must be the `next` value of a previous page",
            ));
        }
    };
    let rows = svc
        .uploads
        .uploads(caller.0.player, cursor, limit + 1)
        .await?;
    let more = rows.len() > limit;
    let rows = &rows[..rows.len().min(limit)];
    let mut items = Vec::with_capacity(rows.len());
    for u in rows {
        let p = prediction_of(&svc, u.image).await;
        items.push(view(u, p.as_ref()));
    }
    let next = more
        .then(|| rows.last().map(|u| format!("{}.{}", u.created.0, u.image)))
        .flatten();
    Ok(HttpResponse::Ok().json(UploadPage {
        uploads: items,
        next,
    }))
}

/// One of the caller's uploads (another player's reads as `404`).
#[utoipa::path(
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's image id")),
    responses(
        (status = 200, body = UploadView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/uploads/{id}")]
pub async fn show_upload(
    caller: Caller,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::code(ErrorCode::NotFound));
    };
    let Some(u) = svc.uploads.upload(caller.0.player, id).await? else {
        return Err(ApiError::code(ErrorCode::NotFound));
    };
    let p = prediction_of(&svc, id).await;
    Ok(HttpResponse::Ok().json(view(&u, p.as_ref())))
}

/// Erases an upload (its bytes at once: see docs/operations.md) and takes it out of rounds.
#[utoipa::path(
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's image id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[delete("/api/uploads/{id}")]
pub async fn delete_upload(
    caller: Caller,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::code(ErrorCode::NotFound));
    };
    let player = caller.0.player;
    let deleted = svc
        .uploads
        .delete_upload(player, id, svc.clock.now())
        .await?;
    if !deleted {
        // Someone else's upload reads as absent: ids never reveal who contributed what.
        return Err(ApiError::code(ErrorCode::NotFound));
    }
    svc.coordinator
        .do_send(crate::actors::coordinator::ImageWithdrawn { image: id });
    svc.metrics.upload("deleted");
    tracing::info!(player = %player, image = %id, "upload deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    #[schema(value_type = EmotionName)]
    emotion: Emotion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LabelResult {
    #[schema(value_type = ImageIdText)]
    image: ImageId,
    #[schema(value_type = EmotionName)]
    label: Emotion,
    #[schema(value_type = Option<EmotionName>)]
    shown: Option<Emotion>,
    #[schema(value_type = String, example = "first_opinion")]
    agreement: emofy_game::Agreement,
    pending: bool,
    points: u32,
    votes: u32,
    #[schema(value_type = StatusName)]
    status: &'static str,
}

/// The contributor's own answer to "Select the correct one!", counted as one vote (once).
#[utoipa::path(
    tag = "uploads",
    params(("id" = String, Path, description = "The upload's image id")),
    request_body = LabelRequest,
    responses(
        (status = 200, body = LabelResult),
        (status = 400, description = "`bad_json` / `invalid_message`", body = ErrorBody),
        (status = 403, description = "`banned`: a moderator banned this player", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`already_labelled`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[put("/api/uploads/{id}/label")]
pub async fn label_upload(
    caller: ActiveCaller,
    path: web::Path<String>,
    body: web::Json<LabelRequest>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let player = caller.0.player;
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::code(ErrorCode::NotFound));
    };
    let Some(upload) = svc.uploads.upload(player, id).await? else {
        return Err(ApiError::code(ErrorCode::NotFound));
    };
    if upload.label.is_some() {
        return Err(ApiError::code(ErrorCode::AlreadyLabelled));
    }
    let shown = prediction_of(&svc, id).await.map(|p| p.top());
    let now = svc.clock.now();
    let limit_ms = svc.config.game.round_seconds * 1000;
    let round = RoundId(uuid::Uuid::new_v4());
    let offer = OfferRecord {
        round,
        player,
        image: id,
        shown,
        offered: now,
        deadline: now.plus(limit_ms),
    };
    match svc.rounds.record_offer(offer).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(ApiError::code(ErrorCode::AlreadyLabelled)),
        Err(e) => return Err(e.into()),
    }
    // No speed bonus: the contributor labels at leisure.
    let answer = AnswerRecord {
        round,
        player,
        image: id,
        emotion: body.emotion,
        shown,
        decoy: false,
        model_guess: shown,
        response_ms: limit_ms,
        time_limit_ms: limit_ms,
        at: now,
    };
    let outcome = match svc.rounds.record_answer(answer, &svc.rules).await {
        Ok(o) => o,
        Err(StoreError::RoundClosed(_)) | Err(StoreError::NotFound(_)) => {
            return Err(ApiError::code(ErrorCode::NotFound));
        }
        Err(StoreError::Conflict(_)) => return Err(ApiError::code(ErrorCode::AlreadyLabelled)),
        Err(e) => return Err(e.into()),
    };
    after_answer(&svc, id, &outcome, upload.consent.show_to_players, 0).await;
    svc.metrics.answer("contributor");
    Ok(HttpResponse::Ok().json(LabelResult {
        image: id,
        label: body.emotion,
        shown,
        agreement: outcome.award.agreement,
        pending: outcome.pending(),
        points: outcome.award.points,
        votes: outcome.votes.total(),
        status: outcome.status.name(),
    }))
}

/// The face crop a photo would give, as PNG (body: the photo's bytes).
/// Nothing is stored: the contributor sees the crop before choosing to send it.
#[utoipa::path(
    tag = "uploads",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A PNG or JPEG photo"),
    responses(
        (status = 200, description = "The crop", content_type = "image/png"),
        (status = 413, description = "`payload_too_large` / `image_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_image`", body = ErrorBody),
        (status = 422, description = "`no_face`", body = ErrorBody),
        (status = 503, description = "`busy` (with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/faces/preview")]
pub async fn face_preview(
    _caller: Caller,
    body: web::Payload,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let photo = read_capped(body, svc.config.upload.max_bytes).await?;
    if photo.is_empty() {
        return Err(refuse(
            ErrorCode::UnsupportedImage,
            "the photo is empty (0 bytes)",
        ));
    }
    let processed = process(&svc, photo, false).await?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(processed.crop_png))
}

/// Reads a request body of at most `max` bytes: a longer one is refused with
/// `413 payload_too_large` as soon as it passes the limit; a slow one gets
/// `408 body_timeout`.
pub async fn read_capped(mut body: web::Payload, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| payload_error(&e))?;
        if bytes.len() + chunk.len() > max {
            return Err(ApiError::code(ErrorCode::PayloadTooLarge));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
