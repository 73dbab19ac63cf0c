//! What every request goes through before and after its handler (one
//! middleware, [`Hygiene`]): the per-address connection limit, the body read
//! deadline, and the browser security headers on every response.
//!
//! * **Connections**: a connection over `net.per_ip_connections` for its
//!   address gets `429 too_many_connections` and is closed.
//! * **Body deadline**: a request body must arrive within
//!   `net.body_timeout_secs` of the request's start; a slower one fails the
//!   read (`408 body_timeout`) and the connection is closed. WebSocket
//!   upgrades are exempt (their body is the socket).
//! * **Headers** (see [`security_headers`]): a Content-Security-Policy per
//!   page, `frame-ancestors 'none'`, `nosniff`, `Referrer-Policy`,
//!   `Permissions-Policy` (the camera only on the contribute page), and
//!   `Cache-Control: no-store` on every authenticated or token-bearing response.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::EitherBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpResponse};
use bytes::Bytes;
use futures_util::Stream;

use crate::error::ErrorCode;
use crate::net::Connection;
use crate::web::errors::ApiError;

/// A payload stream that fails once its deadline passes.
pub struct Deadline<S> {
    inner: S,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl<S> Deadline<S> {
    pub fn new(inner: S, within: Duration) -> Deadline<S> {
        Deadline {
            inner,
            sleep: Box::pin(tokio::time::sleep(within)),
            expired: false,
        }
    }
}

/// The error a body read gets after its deadline.
pub fn body_timeout_error() -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the request body did not arrive in time",
    ))
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(body_timeout_error())));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

use std::future::Future as _;

/// The settings the middleware applies.
#[derive(Debug, Clone)]
pub struct Hygiene {
    pub body_timeout: Duration,
}

fn is_upgrade(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

impl Hygiene {
    /// Runs before the handler: `Some` is the response to send instead.
    pub fn before(&self, req: &mut ServiceRequest) -> Option<HttpResponse> {
        if req.conn_data::<Connection>().is_some_and(|c| c.over_limit) {
            let res = actix_web::ResponseError::error_response(
                &ApiError::code(ErrorCode::TooManyConnections).retry_after(10),
            );
            return Some(res);
        }
        if !is_upgrade(req) {
            let payload = req.take_payload();
            let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
                Box::pin(Deadline::new(payload, self.body_timeout));
            req.set_payload(Payload::Stream { payload: stream });
        }
        None
    }
}

/// Runs [`Hygiene`] around a service call (for `App::wrap_fn`).
pub fn around<S, B>(
    hygiene: &Hygiene,
    mut req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
+ use<S, B>
where
    S: actix_web::dev::Service<
            ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody + 'static,
{
    let path = req.path().to_owned();
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    let refused = hygiene.before(&mut req);
    let fut = match refused {
        None => Ok(srv.call(req)),
        Some(res) => Err(req.into_response(res)),
    };
    async move {
        let mut res = match fut {
            Ok(fut) => fut.await?.map_into_left_body(),
            Err(refusal) => refusal.map_into_right_body(),
        };
        security_headers(&path, authenticated, res.headers_mut());
        Ok(res)
    }
}

/// The page-specific parts of the Content-Security-Policy.
fn csp_for(path: &str, content_type: Option<&str>) -> &'static str {
    let html = content_type.is_some_and(|t| t.starts_with("text/html"));
    if !html {
        // Not a page: nothing may be loaded or run in its context.
        return "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    }
    match path {
        // The contribute page previews photos and crops from memory (blob:)
        // and the camera's snapshot.
        "/contribute.html" => {
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        }
        // Moderators see uploads that are not shown to players; those bytes
        // are fetched with the moderator's token and shown from memory (blob:).
        "/mod.html" => {
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        }
        _ => {
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        }
    }
}

const PERMISSIONS_DEFAULT: &str = "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
const PERMISSIONS_CAMERA: &str = "camera=(self), microphone=(), geolocation=(), payment=(), usb=()";

/// Sets the security headers on a response to `path` (see the module docs).
/// `authenticated`: the request carried credentials.
pub fn security_headers(path: &str, authenticated: bool, headers: &mut HeaderMap) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let set = |h: &mut HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        csp_for(path, content_type.as_deref()),
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(
        headers,
        HeaderName::from_static("permissions-policy"),
        if path == "/contribute.html" {
            PERMISSIONS_CAMERA
        } else {
            PERMISSIONS_DEFAULT
        },
    );
    set(
        headers,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    // Tokens and what they unlock are never cached: not by the browser, not by a proxy.
    if authenticated || path == "/api/login" {
        set(headers, header::CACHE_CONTROL, "no-store");
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_get_their_policy_and_apis_a_closed_one() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        security_headers("/contribute.html", false, &mut h);
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok());
        assert!(csp.is_some_and(|c| c.contains("blob:") && c.contains("frame-ancestors 'none'")));
        assert_eq!(
            h.get("permissions-policy").and_then(|v| v.to_str().ok()),
            Some(PERMISSIONS_CAMERA)
        );
        assert!(h.get(header::CACHE_CONTROL).is_none());

        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        security_headers("/", false, &mut h);
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok());
        assert!(csp.is_some_and(|c| !c.contains("blob:") && !c.contains("unsafe-inline")));

        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        security_headers("/api/uploads", true, &mut h);
        assert_eq!(
            h.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        assert!(
            h.get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("default-src 'none'"))
        );
    }
}
