//! Error codes sent to clients, and the server's internal error types.
//!
//! An [`ErrorCode`] is part of the protocol: its snake_case name is stable and
//! documented in `docs/protocol.md` (a test checks every code is there).

use serde::{Deserialize, Serialize};

/// Stable error codes a client can receive (WebSocket `error` frames and HTTP error bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownType,
    InvalidMessage,
    FrameTooLarge,
    BinaryNotSupported,
    UnsupportedVersion,
    NotJoined,
    AlreadyJoined,
    InvalidName,
    InvalidToken,
    RoundNotOffered,
    RoundExpired,
    AlreadyAnswered,
    RateLimited,
    TryAgain,
    NotFound,
    Unauthorized,
    Internal,
    PayloadTooLarge,
    UnsupportedImage,
    ImageTooLarge,
    NoFace,
    ConsentRequired,
    AlreadyUploaded,
    AlreadyLabelled,
    Forbidden,
    Banned,
    InvalidUsername,
    WeakPassword,
    UsernameTaken,
    AlreadyRegistered,
    Busy,
    BodyTimeout,
    MethodNotAllowed,
    OriginNotAllowed,
    TooManyConnections,
    UnsupportedMediaType,
    PromotionRefused,
}

impl ErrorCode {
    /// Every code, for documentation checks.
    pub const ALL: [ErrorCode; 38] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::InvalidMessage,
        ErrorCode::FrameTooLarge,
        ErrorCode::BinaryNotSupported,
        ErrorCode::UnsupportedVersion,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::InvalidName,
        ErrorCode::InvalidToken,
        ErrorCode::RoundNotOffered,
        ErrorCode::RoundExpired,
        ErrorCode::AlreadyAnswered,
        ErrorCode::RateLimited,
        ErrorCode::TryAgain,
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Internal,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedImage,
        ErrorCode::ImageTooLarge,
        ErrorCode::NoFace,
        ErrorCode::ConsentRequired,
        ErrorCode::AlreadyUploaded,
        ErrorCode::AlreadyLabelled,
        ErrorCode::Forbidden,
        ErrorCode::Banned,
        ErrorCode::InvalidUsername,
        ErrorCode::WeakPassword,
        ErrorCode::UsernameTaken,
        ErrorCode::AlreadyRegistered,
        ErrorCode::Busy,
        ErrorCode::BodyTimeout,
        ErrorCode::MethodNotAllowed,
        ErrorCode::OriginNotAllowed,
        ErrorCode::TooManyConnections,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PromotionRefused,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::RoundNotOffered => "round_not_offered",
            ErrorCode::RoundExpired => "round_expired",
            ErrorCode::AlreadyAnswered => "already_answered",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TryAgain => "try_again",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Internal => "internal",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedImage => "unsupported_image",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::NoFace => "no_face",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::AlreadyUploaded => "already_uploaded",
            ErrorCode::AlreadyLabelled => "already_labelled",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Banned => "banned",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::AlreadyRegistered => "already_registered",
            ErrorCode::Busy => "busy",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PromotionRefused => "promotion_refused",
        }
    }

    /// The human message.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "The message is not valid JSON.",
            ErrorCode::UnknownType => "The message type is not known to this server.",
            ErrorCode::InvalidMessage => "The message has missing or invalid fields.",
            ErrorCode::FrameTooLarge => "The message is larger than the server accepts.",
            ErrorCode::BinaryNotSupported => "Binary frames are not supported; send JSON text.",
            ErrorCode::UnsupportedVersion => "This protocol version is not supported.",
            ErrorCode::NotJoined => "Send hello before anything else.",
            ErrorCode::AlreadyJoined => "This connection has already joined.",
            ErrorCode::InvalidName => "That display name is not allowed.",
            ErrorCode::InvalidToken => {
                "The session token is invalid or expired; join again with a name."
            }
            ErrorCode::RoundNotOffered => "That round is not open on this connection.",
            ErrorCode::RoundExpired => "The time for that round ran out.",
            ErrorCode::AlreadyAnswered => "That round was already answered.",
            ErrorCode::RateLimited => "Too many messages; slow down.",
            ErrorCode::TryAgain => {
                "The server could not save that right now; nothing was recorded. Try again."
            }
            ErrorCode::NotFound => "Not found.",
            ErrorCode::Unauthorized => "Sign-in required or credentials wrong.",
            ErrorCode::Internal => "Something went wrong on the server.",
            ErrorCode::PayloadTooLarge => "The upload is larger than the server accepts.",
            ErrorCode::UnsupportedImage => "The file is not a readable PNG or JPEG image.",
            ErrorCode::ImageTooLarge => "The image has too many pixels; send a smaller photo.",
            ErrorCode::NoFace => "No face was found in the photo; nothing was stored.",
            ErrorCode::ConsentRequired => {
                "An upload needs a consent record for the current consent text."
            }
            ErrorCode::AlreadyUploaded => "This face is already stored.",
            ErrorCode::AlreadyLabelled => "You already labelled this image.",
            ErrorCode::Forbidden => "Your role may not do that.",
            ErrorCode::Banned => "A moderator banned this player.",
            ErrorCode::InvalidUsername => {
                "A username is 3 to 64 characters: letters a-z, digits, '_', '.' and '-'."
            }
            ErrorCode::WeakPassword => {
                "Choose a password of 8 to 128 characters that is not a common one."
            }
            ErrorCode::UsernameTaken => "That username is taken.",
            ErrorCode::AlreadyRegistered => "This player has an account already; sign in.",
            ErrorCode::Busy => {
                "The server is working on as many images as it can; try again shortly."
            }
            ErrorCode::BodyTimeout => "The request body did not arrive in time.",
            ErrorCode::MethodNotAllowed => "That method is not allowed on this path.",
            ErrorCode::OriginNotAllowed => "Connections from that web page are not allowed.",
            ErrorCode::TooManyConnections => "Too many open connections from your network address.",
            ErrorCode::UnsupportedMediaType => "The request body has the wrong content type.",
            ErrorCode::PromotionRefused => {
                "The model registry refused that promotion or rollback; nothing changed."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde() {
        for c in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(serde_json::Value::from(c.as_str()))
            );
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../docs/protocol.md");
        for c in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("`{}`", c.as_str())),
                "{} missing from docs/protocol.md",
                c.as_str()
            );
        }
    }
}
