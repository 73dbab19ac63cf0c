//! `GET /api/me/export`: everything Emofy holds about the signed-in player,
//! as one JSON document (GDPR Art. 15 access and Art. 20 portability):
//! the profile and totals, the account's username, the reliability record
//! (how much their labels weigh, automatic flags, a moderator's decision),
//! every label with its time, and every live upload with its consent
//! history. Sign-in tokens are signed, not stored: there is no session
//! record to export (the document says so).
//!
//! The labels are read in pages of [`PAGE`]; the document grows with the
//! player's own data only (at most one label per image).

use actix_web::{HttpResponse, get, web};
use emofy_game::Millis;
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::Services;
use crate::store::{ConsentEvent, LabelCursor, PlayerRecord, UploadCursor};
use crate::web::errors::ApiError;
use crate::web::extract::Caller;
use crate::web::images::LabelView;
use crate::web::openapi::ErrorBody;
use crate::web::uploads::UploadView;

/// Rows per store read.
const PAGE: usize = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedUpload {
    upload: UploadView,
    /// Oldest first: when consent was given (with its scopes) and revoked.
    #[schema(value_type = Vec<Object>)]
    consent_log: Vec<ConsentEvent>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedSessions {
    #[schema(value_type = Vec<Object>)]
    stored: Vec<()>,
    note: &'static str,
}

/// The export document.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalExport {
    /// `emofy-export-v1`.
    format: &'static str,
    #[schema(value_type = u64)]
    exported_ms: Millis,
    /// Id, display name, role, when the player was created, score and streaks.
    #[schema(value_type = Object)]
    player: PlayerRecord,
    /// The account's username (`null` for a guest).
    username: Option<String>,
    /// The reliability record truth inference keeps (`null` before any label).
    #[schema(value_type = Option<Object>)]
    reliability: Option<emofy_game::Reliability>,
    /// Every label, newest first.
    labels: Vec<LabelView>,
    /// Every upload not deleted, newest first.
    uploads: Vec<ExportedUpload>,
    sessions: ExportedSessions,
}

/// Everything held about the caller.
#[utoipa::path(
    tag = "play",
    responses(
        (status = 200, body = PersonalExport),
        (status = 401, description = "`unauthorized` / `invalid_token`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/me/export")]
pub async fn export(caller: Caller, svc: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    let me = caller.0.player;
    let Some(player) = svc.players.player(me).await? else {
        return Err(ApiError::code(crate::error::ErrorCode::InvalidToken));
    };
    let username = svc.players.username_of(me).await?;
    let reliability = svc
        .review
        .reliabilities_of(&[me])
        .await?
        .into_iter()
        .next()
        .map(|(_, r)| r);
    let mut labels = Vec::new();
    let mut cursor = None;
    loop {
        let page = svc.rounds.player_labels(me, cursor, PAGE).await?;
        labels.extend(page.iter().map(|l| LabelView::of(l, false)));
        match page.last() {
            Some(l) if page.len() == PAGE => {
                cursor = Some(LabelCursor {
                    at: l.at,
                    round: l.round,
                })
            }
            _ => break,
        }
    }
    let mut uploads = Vec::new();
    let mut cursor = None;
    loop {
        let page = svc.uploads.uploads(me, cursor, PAGE).await?;
        for u in &page {
            uploads.push(ExportedUpload {
                upload: crate::web::uploads::view(u, None),
                consent_log: svc.uploads.consent_log(u.image).await?,
            });
        }
        match page.last() {
            Some(u) if page.len() == PAGE => {
                cursor = Some(UploadCursor {
                    created: u.created,
                    image: u.image,
                })
            }
            _ => break,
        }
    }
    tracing::info!(player = %me, labels = labels.len(), uploads = uploads.len(), "personal data exported");
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"emofy-export.json\"",
        ))
        .json(PersonalExport {
            format: "emofy-export-v1",
            exported_ms: svc.clock.now(),
            player,
            username,
            reliability,
            labels,
            uploads,
            sessions: ExportedSessions {
                stored: Vec::new(),
                note: "sign-in tokens are signed and expire; Emofy stores no session records",
            },
        }))
}
