//! Contributed photos: upload with consent, the contributor's own label,
//! listing and deletion (HTTP, `/api/uploads…`, `/api/consent`).
//!
//! A photo is checked before anything is stored: size (streamed, refused past
//! `upload.max_bytes`), type (sniffed from the bytes), dimensions (read from
//! the header before decoding: decompression bombs), a face (SeetaFace
//! detector) and a consent record for the current consent text. Only the
//! face crop is stored, re-encoded as PNG (no EXIF, no GPS), unless the
//! contributor also consents to keeping the whole photo (re-encoded too).
//! The crop is classified before it is stored, so the answer carries the
//! model's guess and a busy model stores nothing.

use std::io::Cursor;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use emofy_game::{Emotion, ImageId, ImageStatus, Millis, PlayerId, PoolEntry, RoundId};
use emofy_inference::face::{FaceBox, FaceDetector, face_square};
use emofy_inference::{InferenceError, Prediction};
use futures_util::StreamExt;
use image::{DynamicImage, ImageFormat, imageops};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::actors::coordinator::{ImageAdded, ImageTallied, ImageWithdrawn, ScoresChanged};
use crate::actors::inference::PoolError;
use crate::app::Services;
use crate::auth::Claims;
use crate::config::UploadConfig;
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::protocol::{ImageRef, Suggestion};
use crate::store::{
    AnswerRecord, Consent, FaceRegion, ImageSource, NewImage, NewUpload, OfferRecord, StoreError,
    UploadCursor, UploadRecord,
};

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

/// An upload refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    NotAnImage(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("no face scoring at least {0} was found")]
    NoFace(f64),
    #[error("cannot encode the crop: {0}")]
    Encode(String),
}

/// A photo turned into what is stored.
#[derive(Debug)]
pub struct ProcessedPhoto {
    pub face: FaceBox,
    /// The face crop as PNG (colour kept), at most `crop_side` pixels square.
    pub crop_png: Vec<u8>,
    pub crop_side: u32,
    /// The whole photo re-encoded as PNG, when asked for.
    pub original_png: Option<Vec<u8>>,
    /// The model's input: the crop as `model_side²` grayscale pixels.
    pub model_input: Vec<u8>,
}

fn png(img: &DynamicImage) -> Result<Vec<u8>, UploadError> {
    let img = match img.color().has_color() {
        true => DynamicImage::ImageRgb8(img.to_rgb8()),
        false => DynamicImage::ImageLuma8(img.to_luma8()),
    };
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| UploadError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a photo, finds the largest face and prepares the crop (CPU-bound: run off the async threads).
pub fn process_photo(
    bytes: &[u8],
    limits: &UploadConfig,
    detector: &FaceDetector,
    model_side: u32,
    keep_original: bool,
) -> Result<ProcessedPhoto, UploadError> {
    let img = emofy_inference::decode_bounded(bytes, limits.max_side).map_err(|e| match e {
        InferenceError::TooLarge(why) => UploadError::TooLarge(why),
        other => UploadError::NotAnImage(other.to_string()),
    })?;
    let face = detector
        .largest_face(&img.to_luma8())
        .ok_or(UploadError::NoFace(limits.min_face_score))?;
    let (x, y, size) = face_square(img.width(), img.height(), &face);
    let square = img.crop_imm(x, y, size, size);
    let stored = if size > limits.crop_side {
        square.resize_exact(
            limits.crop_side,
            limits.crop_side,
            imageops::FilterType::Lanczos3,
        )
    } else {
        square.clone()
    };
    let model_input = imageops::resize(
        &square.to_luma8(),
        model_side,
        model_side,
        imageops::FilterType::Triangle,
    )
    .into_raw();
    Ok(ProcessedPhoto {
        face,
        crop_png: png(&stored)?,
        crop_side: stored.width(),
        original_png: if keep_original {
            Some(png(&img)?)
        } else {
            None
        },
        model_input,
    })
}

/// The signed-in player from `Authorization: Bearer <token>` (the token `welcome` gives).
pub fn bearer(req: &HttpRequest, svc: &Services) -> Result<Claims, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized))?;
    svc.tokens
        .verify(token.trim(), svc.clock.now())
        .map_err(|_| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidToken))
}

/// The model's guess as the API shows it.
#[derive(Debug, Serialize)]
struct PredictionView {
    emotion: Emotion,
    confidence: f32,
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

#[derive(Debug, Serialize)]
struct ConsentView {
    #[serde(flatten)]
    consent: Consent,
    at_ms: Millis,
}

/// An upload as its contributor sees it.
#[derive(Debug, Serialize)]
struct UploadView {
    image: ImageRef,
    created_ms: Millis,
    face: FaceRegion,
    consent: ConsentView,
    kept_original: bool,
    prediction: Option<PredictionView>,
    /// The contributor's own label.
    label: Option<Emotion>,
    votes: u32,
    /// `open`, `retired`, `disputed` or `removed`.
    status: &'static str,
    /// The crowd's consensus once the image retired.
    consensus: Option<Emotion>,
}

fn view(u: &UploadRecord, prediction: Option<&Prediction>) -> UploadView {
    UploadView {
        image: ImageRef {
            id: u.image,
            url: format!("/images/{}.png", u.image),
        },
        created_ms: u.created,
        face: u.face,
        consent: ConsentView {
            consent: u.consent.clone(),
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

/// Reads a multipart field into memory, refusing past `max` bytes.
async fn read_field(field: &mut actix_multipart::Field, max: usize) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::with(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidMessage,
                format!("the upload could not be read: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// `GET /api/consent`: the consent text contributors are shown.
pub async fn consent_text() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "version": CONSENT_VERSION,
        "text": CONSENT_TEXT,
        "scopes": ["show_to_players", "use_for_training", "include_in_exports", "keep_original"],
    }))
}

/// `POST /api/uploads` (multipart: `consent` JSON, `photo` file).
pub async fn create(
    req: HttpRequest,
    payload: Multipart,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let limits = svc.config.upload.clone();
    // Refuse an announced oversized body before reading any of it.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes + 64 * 1024) {
        svc.metrics.upload(ErrorCode::PayloadTooLarge.as_str());
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
        ));
    }
    let player = claims.player;
    let result = create_inner(player, payload, &svc, limits)
        .instrument(tracing::info_span!("upload", player = %player))
        .await;
    match &result {
        Ok(_) => svc.metrics.upload("stored"),
        Err(e) => svc.metrics.upload(e.code.as_str()),
    }
    result
}

type Refusal = ApiError;

fn refuse(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Refusal {
    ApiError::with(status, code, detail)
}

async fn create_inner(
    player: PlayerId,
    mut payload: Multipart,
    svc: &Services,
    limits: UploadConfig,
) -> Result<HttpResponse, Refusal> {
    let now = svc.clock.now();
    let recent = svc
        .uploads
        .uploads_since(player, Millis(now.0.saturating_sub(3_600_000)))
        .await?;
    if recent >= u64::from(limits.per_hour) {
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!("at most {} uploads per hour", limits.per_hour),
        ));
    }
    let mut consent: Option<Consent> = None;
    let mut photo: Option<Vec<u8>> = None;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidMessage,
                format!("not a multipart/form-data upload: {e}"),
            )
        })?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "consent" => {
                let raw = read_field(&mut field, 4096).await?;
                let parsed: Consent = serde_json::from_slice(&raw).map_err(|e| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::ConsentRequired,
                        format!("the consent field is not a valid consent record: {e}"),
                    )
                })?;
                consent = Some(parsed);
            }
            "photo" => {
                let bytes = read_field(&mut field, limits.max_bytes).await?;
                photo = Some(bytes);
            }
            other => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
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
            StatusCode::BAD_REQUEST,
            ErrorCode::ConsentRequired,
            "the upload has no `consent` field",
        ));
    };
    if consent.text_version != CONSENT_VERSION {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::ConsentRequired,
            format!(
                "consent was given to text version {:?}; the current one is {CONSENT_VERSION:?} (GET /api/consent)",
                truncate(&consent.text_version)
            ),
        ));
    }
    if !(consent.show_to_players || consent.use_for_training) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::ConsentRequired,
            "consent must allow at least showing the face to players or using it for training",
        ));
    }
    let Some(photo) = photo else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedImage,
            "the upload has no `photo` field",
        ));
    };
    if photo.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedImage,
            "the photo is empty (0 bytes)",
        ));
    }
    // Decoding a big photo is heavy: a few at a time, the rest are told to retry.
    let Ok(_slot) = svc.upload_slots.clone().try_acquire_owned() else {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TryAgain,
            "too many uploads are being processed; try again in a moment",
        ));
    };
    let detector = svc.faces.clone();
    let side = svc.inference.as_ref().map_or(64, |p| p.input_side());
    let keep = consent.keep_original;
    let lim = limits.clone();
    let processed = web::block(move || process_photo(&photo, &lim, &detector, side, keep))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "upload processing failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
        })?
        .map_err(|e| match e {
            UploadError::NotAnImage(why) => refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedImage,
                why,
            ),
            UploadError::TooLarge(why) => {
                refuse(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::ImageTooLarge, why)
            }
            e @ UploadError::NoFace(_) => refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NoFace,
                e.to_string(),
            ),
            e @ UploadError::Encode(_) => {
                tracing::error!(error = %e, "cannot encode an upload");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
        })?;
    let prediction = match &svc.inference {
        Some(pool) => match pool.classify(processed.model_input.clone()).await {
            Ok(p) => Some(p),
            Err(PoolError::Busy(_)) | Err(PoolError::WorkerLost) => {
                return Err(refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
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
    };
    let image = match svc.uploads.insert_upload(upload, now).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyUploaded,
                "this face crop is already stored",
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
        svc.coordinator.do_send(ImageAdded {
            entry: PoolEntry {
                model_guess: prediction.as_ref().map(|p| p.top()),
                ..PoolEntry::fresh(image, Some(player))
            },
            suggestion: prediction.as_ref().map(|p| Suggestion {
                emotion: p.top(),
                confidence: p.confidence(),
                model: p.model.clone(),
            }),
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

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_id(raw: &str) -> Option<ImageId> {
    raw.parse().ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<usize>,
    /// The `next` value of the previous page.
    after: Option<String>,
}

fn parse_cursor(raw: &str) -> Option<UploadCursor> {
    let (ms, id) = raw.split_once('.')?;
    Some(UploadCursor {
        created: Millis(ms.parse().ok()?),
        image: id.parse().ok()?,
    })
}

/// `GET /api/uploads?limit=&after=`: the caller's uploads, newest first.
pub async fn list(
    req: HttpRequest,
    q: web::Query<PageQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let cursor = match q.after.as_deref().map(parse_cursor) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return Err(ApiError::with(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidMessage,
                "`after` must be the `next` value of a previous page",
            ));
        }
    };
    let rows = svc
        .uploads
        .uploads(claims.player, cursor, limit + 1)
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "uploads": items, "next": next })))
}

/// `GET /api/uploads/{id}`: one of the caller's uploads.
pub async fn show(
    req: HttpRequest,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    let Some(u) = svc.uploads.upload(claims.player, id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    let p = prediction_of(&svc, id).await;
    Ok(HttpResponse::Ok().json(view(&u, p.as_ref())))
}

/// `DELETE /api/uploads/{id}`: erases the upload and takes it out of rounds at once.
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    let deleted = svc
        .uploads
        .delete_upload(claims.player, id, svc.clock.now())
        .await?;
    if !deleted {
        // Someone else's upload reads as absent: ids never reveal who contributed what.
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    }
    svc.coordinator.do_send(ImageWithdrawn { image: id });
    svc.metrics.upload("deleted");
    tracing::info!(player = %claims.player, image = %id, "upload deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    emotion: Emotion,
}

/// `PUT /api/uploads/{id}/label` `{"emotion": "sad"}`: the contributor's own
/// answer to "Select the correct one!", counted as one vote (once).
pub async fn label(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<LabelRequest>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let claims = bearer(&req, &svc)?;
    let Some(id) = parse_id(&path) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    let Some(upload) = svc.uploads.upload(claims.player, id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
    };
    if upload.label.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyLabelled,
        ));
    }
    let shown = prediction_of(&svc, id).await.map(|p| p.top());
    let now = svc.clock.now();
    let limit_ms = svc.config.game.round_seconds * 1000;
    let round = RoundId(uuid::Uuid::new_v4());
    let offer = OfferRecord {
        round,
        player: claims.player,
        image: id,
        shown,
        offered: now,
        deadline: now.plus(limit_ms),
    };
    match svc.rounds.record_offer(offer).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyLabelled,
            ));
        }
        Err(e) => return Err(e.into()),
    }
    // No speed bonus: the contributor labels at leisure.
    let answer = AnswerRecord {
        round,
        player: claims.player,
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
            return Err(ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound));
        }
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyLabelled,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = svc.leaderboard.apply(&outcome.changes).await {
        tracing::warn!(error = %e, "leaderboard update failed");
    }
    if !outcome.changes.is_empty() {
        svc.hub.do_send(crate::actors::hub::ScoresMoved {
            players: outcome.changes.iter().map(|c| c.player).collect(),
        });
    }
    if upload.consent.show_to_players {
        svc.coordinator.do_send(ImageTallied {
            image: id,
            votes: outcome.votes,
            status: outcome.status,
            posterior: outcome.posterior,
        });
    }
    if !outcome.changes.is_empty() {
        svc.coordinator.do_send(ScoresChanged {
            changes: outcome.changes.clone(),
            origin: 0,
        });
    }
    svc.metrics.answer("contributor");
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "image": id,
        "label": body.emotion,
        "shown": shown,
        "agreement": outcome.award.agreement,
        "pending": outcome.pending(),
        "points": outcome.award.points,
        "votes": outcome.votes.total(),
        "status": outcome.status.name(),
    })))
}

/// `POST /api/faces/preview`: the face crop a photo would give, as PNG
/// (body: the photo's bytes; a signed-in player's token). Nothing is stored:
/// the contributor sees the crop before choosing to send it.
pub async fn face_preview(
    req: HttpRequest,
    body: web::Payload,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    bearer(&req, &svc)?;
    let limits = svc.config.upload.clone();
    let photo = crate::http::read_capped(body, limits.max_bytes).await?;
    let Ok(_slot) = svc.upload_slots.clone().try_acquire_owned() else {
        return Err(ApiError::with(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TryAgain,
            "too many photos are being processed; try again in a moment",
        ));
    };
    let detector = svc.faces.clone();
    let side = svc.inference.as_ref().map_or(64, |p| p.input_side());
    let processed = web::block(move || process_photo(&photo, &limits, &detector, side, false))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal))?
        .map_err(|e| match e {
            UploadError::NotAnImage(why) => ApiError::with(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedImage,
                why,
            ),
            UploadError::TooLarge(why) => {
                ApiError::with(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::ImageTooLarge, why)
            }
            e @ UploadError::NoFace(_) => ApiError::with(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::NoFace,
                e.to_string(),
            ),
            UploadError::Encode(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal)
            }
        })?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("Cache-Control", "no-store"))
        .body(processed.crop_png))
}
