//! The upload form: actix-multipart and Emofy's consent/photo reader over an
//! arbitrary body (and boundary), with the real field limits. Every outcome
//! is a form or a documented refusal.
#![no_main]

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use emofy_server::web::uploads::read_upload_form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the boundary, the rest the body, sent in small chunks.
    let (boundary, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"emofy"[..], data),
    };
    let Ok(boundary) = std::str::from_utf8(boundary) else {
        return;
    };
    let Ok(ct) = HeaderValue::from_str(&format!("multipart/form-data; boundary={boundary}")) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, ct);
    let chunks: Vec<Result<bytes::Bytes, actix_web::error::PayloadError>> = body
        .chunks(61)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let multipart = actix_multipart::Multipart::new(&headers, futures_util::stream::iter(chunks));
    let _ = futures_executor::block_on(read_upload_form(multipart, 64 * 1024));
});
