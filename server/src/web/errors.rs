//! One error contract for HTTP: every error a client sees is
//! `{"code", "message"[, "detail"]}` JSON with a documented [`ErrorCode`] —
//! handler refusals, malformed JSON, query strings and paths, bodies that are
//! too large or too slow, unknown routes and wrong methods alike.
//!
//! Client mistakes are logged at DEBUG (malformed requests) or WARN (an
//! unavailable store); only the server's own faults are errors.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;

use crate::error::ErrorCode;
use crate::service::registry::RegistryError;
use crate::store::StoreError;

/// The status a code answers with, unless a handler says otherwise.
pub fn default_status(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::BadJson
        | C::InvalidMessage
        | C::UnknownType
        | C::ConsentRequired
        | C::InvalidUsername
        | C::WeakPassword => StatusCode::BAD_REQUEST,
        C::Unauthorized | C::InvalidToken => StatusCode::UNAUTHORIZED,
        C::Forbidden | C::Banned | C::OriginNotAllowed => StatusCode::FORBIDDEN,
        C::NotFound | C::RoundNotOffered => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        C::AlreadyAnswered
        | C::AlreadyUploaded
        | C::AlreadyLabelled
        | C::AlreadyJoined
        | C::UsernameTaken
        | C::AlreadyRegistered
        | C::PromotionRefused => StatusCode::CONFLICT,
        C::RoundExpired => StatusCode::GONE,
        C::PayloadTooLarge | C::ImageTooLarge | C::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::UnsupportedImage | C::UnsupportedMediaType | C::BinaryNotSupported => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        C::NoFace | C::InvalidName | C::UnsupportedVersion | C::NotJoined => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        C::RateLimited | C::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
        C::TryAgain | C::Busy => StatusCode::SERVICE_UNAVAILABLE,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON error body with a stable code.
#[derive(Debug, Serialize)]
struct ErrorBody {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// An API error: an HTTP status, a stable code and an optional detail.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// `Allow` for `405`.
    pub allow: Option<String>,
}

impl ApiError {
    /// `code` with its [`default_status`].
    pub fn code(code: ErrorCode) -> ApiError {
        ApiError::new(default_status(code), code)
    }

    pub fn new(status: StatusCode, code: ErrorCode) -> ApiError {
        ApiError {
            status,
            code,
            detail: None,
            retry_after: None,
            allow: None,
        }
    }

    pub fn with(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: Some(detail.into()),
            ..ApiError::new(status, code)
        }
    }

    /// Adds a detail.
    pub fn detail(mut self, detail: impl Into<String>) -> ApiError {
        self.detail = Some(detail.into());
        self
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs);
        self
    }

    /// `503 busy` with `Retry-After`.
    pub fn busy(retry_after_secs: u64, detail: impl Into<String>) -> ApiError {
        ApiError::code(ErrorCode::Busy)
            .detail(detail)
            .retry_after(retry_after_secs)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.code.message())?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            res.insert_header((header::ALLOW, v));
        }
        if matches!(
            self.code,
            ErrorCode::BodyTimeout | ErrorCode::TooManyConnections
        ) {
            // The rest of the body is not read, or the connection is one too
            // many: it is not reused.
            res.force_close();
        }
        res.json(ErrorBody {
            code: self.code,
            message: self.code.message().to_owned(),
            detail: self.detail.clone(),
        })
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::warn!(error = %e, "store unavailable");
        ApiError::code(ErrorCode::TryAgain)
    }
}

/// An error response: `{code, message}`.
pub fn error(status: StatusCode, code: ErrorCode) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(status, code))
}

/// `503 try_again` for a store that cannot answer.
pub fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "store unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::TryAgain)
}

/// Whether a payload error is the body deadline (`hygiene::Deadline` ends a
/// slow body with a timed-out I/O error).
pub fn is_body_timeout(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

/// A body read that failed: too slow, cut off, or malformed.
pub fn payload_error(e: &PayloadError) -> ApiError {
    if is_body_timeout(e) {
        return ApiError::code(ErrorCode::BodyTimeout);
    }
    match e {
        PayloadError::Overflow => ApiError::code(ErrorCode::PayloadTooLarge),
        other => ApiError::code(ErrorCode::InvalidMessage)
            .detail(format!("the request body could not be read: {other}")),
    }
}

/// `web::Json` errors.
pub fn json_error(e: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %e, "malformed JSON body");
    let err = match &e {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::code(ErrorCode::PayloadTooLarge)
        }
        JsonPayloadError::ContentType => ApiError::code(ErrorCode::UnsupportedMediaType)
            .detail("send the body as application/json"),
        JsonPayloadError::Deserialize(de) if de.is_syntax() || de.is_eof() => {
            ApiError::code(ErrorCode::BadJson).detail(de.to_string())
        }
        JsonPayloadError::Deserialize(de) => {
            ApiError::code(ErrorCode::InvalidMessage).detail(de.to_string())
        }
        JsonPayloadError::Payload(p) => payload_error(p),
        other => ApiError::code(ErrorCode::InvalidMessage).detail(other.to_string()),
    };
    err.into()
}

/// `web::Query` errors.
pub fn query_error(e: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %e, "malformed query string");
    ApiError::code(ErrorCode::InvalidMessage)
        .detail(format!("bad query string: {e}"))
        .into()
}

/// `web::Path` errors: a path that does not name a resource.
pub fn path_error(e: PathError, _req: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %e, "malformed path");
    ApiError::code(ErrorCode::NotFound).into()
}

/// `web::Bytes` / `String` body errors.
pub fn body_error(e: PayloadError, _req: &HttpRequest) -> actix_web::Error {
    payload_error(&e).into()
}

/// A path no route serves: `404 not_found`, or `405 method_not_allowed`
/// (with `Allow`) when the path exists for other methods.
pub fn no_route(req: &HttpRequest, routes: &crate::web::RouteTable) -> ApiError {
    let allowed = routes.methods_for(req.path());
    if allowed.is_empty() {
        ApiError::code(ErrorCode::NotFound)
    } else {
        let mut e = ApiError::code(ErrorCode::MethodNotAllowed).detail(format!(
            "{} is not served here; use {}",
            req.method(),
            allowed.join(", ")
        ));
        e.allow = Some(allowed.join(", "));
        e
    }
}

/// How a registry action's failure is answered.
pub(crate) fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::Refused(r) => {
            ApiError::code(ErrorCode::PromotionRefused).detail(r.to_string())
        }
        RegistryError::Store(StoreError::Conflict(_)) => ApiError::code(ErrorCode::TryAgain)
            .detail("another promotion or rollback happened at the same time: look again"),
        RegistryError::Store(e) => e.into(),
        other => {
            tracing::error!(error = %other, "model registry");
            ApiError::code(ErrorCode::Internal)
        }
    }
}
