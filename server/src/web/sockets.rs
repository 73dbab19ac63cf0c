//! The WebSocket endpoints (`/ws/play`, `/ws/leaderboard`) and the transport
//! checks in front of their actors: the `Origin` allow-list, and a frame
//! guard that reads each frame's header and refuses one that announces more
//! than the frame limit at once, before its payload arrives.
//!
//! This file and the two actors are the only code that knows the
//! actix-web-actors transport.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_web_actors::ws;
use bytes::Bytes;
use futures_util::Stream;

use crate::actors::session::PlayerSession;
use crate::actors::viewer::BoardViewer;
use crate::error::ErrorCode;
use crate::service::Services;
use crate::web::errors::ApiError;

/// Whether a WebSocket handshake may proceed: no `Origin` (not a browser),
/// the server's own host, or an origin in `net.allowed_origins` (`*`: any).
pub fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    // `scheme://host[:port]`, compared with the Host the browser connected to.
    origin
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
}

/// Passes WebSocket bytes through unchanged while following the frame
/// boundaries; a frame whose header announces more than `max` payload bytes
/// ends the stream with an error at once and sets the shared flag, so the
/// actor can close with 1009 instead of waiting for (and buffering) a payload
/// that may never come.
pub struct FrameGuard<S> {
    inner: S,
    max: u64,
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
    oversized: Arc<AtomicBool>,
    failed: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max: usize, oversized: Arc<AtomicBool>) -> FrameGuard<S> {
        FrameGuard {
            inner,
            max: max as u64,
            header: [0; 14],
            have: 0,
            remaining: 0,
            oversized,
            failed: false,
        }
    }

    /// The header's total length and payload length once enough bytes are in.
    fn parse_header(&self) -> Option<(usize, u64)> {
        if self.have < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let len7 = self.header[1] & 0x7F;
        let (ext, len) = match len7 {
            126 => {
                if self.have < 4 {
                    return None;
                }
                (
                    2,
                    u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                )
            }
            127 => {
                if self.have < 10 {
                    return None;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.header[2..10]);
                (8, u64::from_be_bytes(b))
            }
            n => (0, u64::from(n)),
        };
        Some((2 + ext + if masked { 4 } else { 0 }, len))
    }

    /// Follows `chunk`; `false` when a frame is over the limit.
    pub fn follow(&mut self, chunk: &[u8]) -> bool {
        let mut i = 0;
        while i < chunk.len() {
            if self.remaining > 0 {
                let skip = self.remaining.min((chunk.len() - i) as u64);
                self.remaining -= skip;
                i += skip as usize;
                continue;
            }
            // Inside a header: take bytes until its length is known.
            self.header[self.have] = chunk[i];
            self.have += 1;
            i += 1;
            if let Some((header_len, payload)) = self.parse_header() {
                if payload > self.max {
                    return false;
                }
                if self.have >= header_len {
                    self.have = 0;
                    self.remaining = payload;
                }
            }
        }
        true
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.follow(&chunk) {
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    self.failed = true;
                    self.oversized.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(PayloadError::Overflow)))
                }
            }
            other => other,
        }
    }
}

fn refuse_origin(req: &HttpRequest, svc: &Services) -> Option<HttpResponse> {
    if origin_allowed(req, &svc.config.net.allowed_origins) {
        return None;
    }
    tracing::info!(
        origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("?"),
        "websocket refused: origin not allowed"
    );
    Some(actix_web::ResponseError::error_response(&ApiError::code(
        ErrorCode::OriginNotAllowed,
    )))
}

/// The play socket: protocol v1 (`docs/protocol.md`).
#[utoipa::path(
    tag = "play",
    responses(
        (status = 101, description = "Switching to the WebSocket play protocol (docs/protocol.md)"),
        (status = 400, description = "Not a WebSocket handshake", body = crate::web::openapi::ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = crate::web::openapi::ErrorBody),
    )
)]
#[get("/ws/play")]
pub async fn play_socket(
    req: HttpRequest,
    stream: web::Payload,
    svc: web::Data<Services>,
) -> actix_web::Result<HttpResponse> {
    if let Some(refused) = refuse_origin(&req, &svc) {
        return Ok(refused);
    }
    let max = svc.config.session.max_frame_bytes;
    let oversized = Arc::new(AtomicBool::new(false));
    let client = svc.proxies.client_of(&req);
    let session = PlayerSession::new(svc.into_inner(), client, oversized.clone());
    ws::WsResponseBuilder::new(session, &req, FrameGuard::new(stream, max, oversized))
        .frame_size(max)
        .start()
}

/// Largest frame a board viewer may send.
pub const VIEWER_FRAME_BYTES: usize = 4096;

/// The live leaderboard socket (`docs/protocol.md`, Leaderboards).
#[utoipa::path(
    tag = "leaderboards",
    responses(
        (status = 101, description = "Switching to the live leaderboard protocol"),
        (status = 400, description = "Not a WebSocket handshake", body = crate::web::openapi::ErrorBody),
        (status = 403, description = "`origin_not_allowed`", body = crate::web::openapi::ErrorBody),
    )
)]
#[get("/ws/leaderboard")]
pub async fn board_socket(
    req: HttpRequest,
    stream: web::Payload,
    svc: web::Data<Services>,
) -> actix_web::Result<HttpResponse> {
    if let Some(refused) = refuse_origin(&req, &svc) {
        return Ok(refused);
    }
    let oversized = Arc::new(AtomicBool::new(false));
    let viewer = BoardViewer::new(svc.into_inner(), oversized.clone());
    ws::WsResponseBuilder::new(
        viewer,
        &req,
        FrameGuard::new(stream, VIEWER_FRAME_BYTES, oversized),
    )
    .frame_size(VIEWER_FRAME_BYTES)
    .start()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize) -> FrameGuard<futures_util::stream::Empty<Result<Bytes, PayloadError>>> {
        FrameGuard::new(
            futures_util::stream::empty(),
            max,
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// A masked client frame with `len` payload bytes.
    fn frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x81];
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_split() {
        let mut bytes = frame(10);
        bytes.extend(frame(300));
        bytes.extend(frame(0));
        bytes.extend(frame(125));
        for split in [1, 2, 3, 7, 64, bytes.len()] {
            let mut g = guard(300);
            assert!(bytes.chunks(split).all(|c| g.follow(c)), "split {split}");
            assert_eq!((g.have, g.remaining), (0, 0));
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload() {
        let mut g = guard(4096);
        // The header alone of a frame claiming 2^63 − 1 bytes.
        let mut head = vec![0x81, 0x80 | 127];
        head.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
        assert!(!g.follow(&head));
        let mut g = guard(4096);
        assert!(!g.follow(&frame(4097)[..8]));
        let mut g = guard(4096);
        assert!(g.follow(&frame(4096)));
    }
}
