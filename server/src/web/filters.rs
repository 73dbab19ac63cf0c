//! `POST /api/filters?chain=gray,blur`: a filtered preview of a photo (the
//! pure filters are `imaging::filters`). Nothing is stored; a filtered photo
//! becomes a contribution of its own through `POST /api/uploads`.

use actix_web::http::header;
use actix_web::{HttpResponse, post, web};
use image::DynamicImage;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ErrorCode;
use crate::imaging::filters::{apply_chain, parse_chain};
use crate::service::Services;
use crate::web::errors::ApiError;
use crate::web::extract::Caller;
use crate::web::openapi::ErrorBody;
use crate::web::uploads::{decode_refusal, read_capped};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    /// Filters, comma-separated, applied in order (at most 8): gray, blur, canny, dilate,
    /// erode, sepia, cartoonify, negative, emboss, sharpen, edge_enhance, rainbowify,
    /// mirror, flip, rotate_left, rotate_right.
    chain: String,
}

/// The photo in the body, filtered, as a PNG of at most 512 px a side.
#[utoipa::path(
    tag = "uploads",
    params(ChainQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A PNG or JPEG photo"),
    responses(
        (status = 200, description = "The filtered preview", content_type = "image/png"),
        (status = 400, description = "`invalid_message`: an unknown filter or more than 8", body = ErrorBody),
        (status = 413, description = "`payload_too_large` / `image_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_image`", body = ErrorBody),
        (status = 503, description = "`busy` (with `Retry-After`)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/filters")]
pub async fn filter_preview(
    _caller: Caller,
    q: web::Query<ChainQuery>,
    body: web::Payload,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let chain = parse_chain(&q.chain)
        .map_err(|e| ApiError::code(ErrorCode::InvalidMessage).detail(e.to_string()))?;
    let bytes = read_capped(body, svc.config.upload.max_bytes).await?;
    let limits = svc.config.imaging.limits();
    let names: Vec<&str> = chain.iter().map(|f| f.name()).collect();
    tracing::debug!(chain = ?names, bytes = bytes.len(), "filter preview");
    // The header first: a file over the budget is refused without taking a slot.
    emofy_inference::probe(&bytes, &limits).map_err(decode_refusal)?;
    let Some(slot) = svc.image_slots.try_take() else {
        return Err(ApiError::busy(
            svc.image_slots.retry_after_secs,
            "too many images are being processed; try again in a moment",
        ));
    };
    let png = web::block(move || -> Result<Vec<u8>, ApiError> {
        let _slot = slot;
        let img = emofy_inference::decode(&bytes, &limits).map_err(decode_refusal)?;
        let out = apply_chain(&img, &chain);
        drop(img);
        crate::imaging::photo::png(&DynamicImage::ImageRgb8(out))
            .map_err(|_| ApiError::code(ErrorCode::Internal))
    })
    .await
    .map_err(|_| ApiError::code(ErrorCode::TryAgain))??;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(png))
}
