//! Leaderboards and dataset counts over HTTP (the live board is
//! `/ws/leaderboard`, in `web::sockets`).

use actix_web::{HttpResponse, get, web};
use emofy_game::{Period, PlayerId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actors::hub::{LastSnapshot, RememberSnapshot};
use crate::error::ErrorCode;
use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::service::Services;
use crate::store::StoreError;
use crate::web::errors::ApiError;
use crate::web::openapi::{BoardRow, ErrorBody, PeriodName, Standing};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllTimeQuery {
    /// Rows (1–100, default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// Also this player's standing.
    #[param(value_type = Option<uuid::Uuid>)]
    player: Option<PlayerId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllTimeBoard {
    #[schema(example = "all_time")]
    board: &'static str,
    #[schema(value_type = Vec<BoardRow>)]
    top: Vec<LeaderboardRow>,
    #[schema(value_type = Option<Standing>)]
    you: Option<OwnStanding>,
    players: u64,
}

/// The all-time board (the first API; see `/api/leaderboards/{board}`).
#[utoipa::path(
    tag = "leaderboards",
    params(AllTimeQuery),
    responses(
        (status = 200, body = AllTimeBoard),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    )
)]
#[get("/api/leaderboard")]
pub async fn all_time_board(
    q: web::Query<AllTimeQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let board = &svc.leaderboard;
    let bucket = Period::AllTime.bucket(svc.clock.now());
    let top = board.top(&bucket, limit).await?;
    let you = match q.player {
        Some(p) => board.standing(&bucket, p).await?,
        None => None,
    };
    let players = board.count(&bucket).await?;
    Ok(HttpResponse::Ok().json(AllTimeBoard {
        board: "all_time",
        top,
        you,
        players,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
    /// `all_time` (default), `daily` or `weekly`.
    #[param(value_type = Option<PeriodName>)]
    period: Option<Period>,
    /// Rows (1–100, default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// A player: adds their standing and the rows `k` above and below them.
    #[param(value_type = Option<uuid::Uuid>)]
    around: Option<PlayerId>,
    /// Rows above and below `around` (0–25, default 2).
    #[param(minimum = 0, maximum = 25)]
    k: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardView {
    #[schema(example = "global")]
    board: &'static str,
    #[schema(value_type = PeriodName)]
    period: Period,
    /// The period's bucket (`all`, `d2026-11-26`, `w2026-11-23`).
    bucket: String,
    #[schema(value_type = Vec<BoardRow>)]
    top: Vec<LeaderboardRow>,
    players: u64,
    #[schema(value_type = Option<Standing>)]
    you: Option<OwnStanding>,
    #[schema(value_type = Option<Vec<BoardRow>>)]
    around: Option<Vec<LeaderboardRow>>,
    /// The board could not be read; this is the last snapshot this replica saw.
    stale: bool,
}

/// A board: `GET /api/leaderboards/global?period=daily&limit=10&around={player}&k=2`.
#[utoipa::path(
    tag = "leaderboards",
    params(("board" = String, Path, description = "The board: `global`"), BoardQuery),
    responses(
        (status = 200, body = BoardView),
        (status = 400, description = "`invalid_message`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such board", body = ErrorBody),
        (status = 503, description = "`try_again`", body = ErrorBody),
    )
)]
#[get("/api/leaderboards/{board}")]
pub async fn global_board(
    path: web::Path<String>,
    q: web::Query<BoardQuery>,
    svc: web::Data<Services>,
) -> Result<HttpResponse, ApiError> {
    if path.as_str() != "global" {
        return Err(ApiError::code(ErrorCode::NotFound).detail("the only board is \"global\""));
    }
    let period = q.period.unwrap_or(Period::AllTime);
    let limit = q.limit.unwrap_or(10).clamp(1, 100);
    let k = q.k.unwrap_or(2).min(25);
    let bucket = period.bucket(svc.clock.now());
    let board = &svc.leaderboard;
    let stale = svc.board_buffer.as_ref().is_some_and(|b| b.is_stale());
    let read = async {
        let top = board.top(&bucket, limit).await?;
        let players = board.count(&bucket).await?;
        let (you, around) = match q.around {
            Some(p) => (
                board.standing(&bucket, p).await?,
                Some(board.around(&bucket, p, k).await?),
            ),
            None => (None, None),
        };
        Ok::<_, StoreError>((top, players, you, around))
    }
    .await;
    let view = match read {
        Ok((top, players, you, around)) => {
            svc.hub.do_send(RememberSnapshot {
                period,
                bucket: bucket.id.clone(),
                top: top.clone(),
                players,
            });
            BoardView {
                board: "global",
                period,
                bucket: bucket.id.clone(),
                top,
                players,
                you,
                around,
                stale,
            }
        }
        Err(e) => {
            // Unreadable: the hub's last good snapshot, marked stale.
            tracing::warn!(error = %e, "leaderboard unreadable");
            match svc.hub.send(LastSnapshot { period }).await.ok().flatten() {
                Some((id, top, players)) => BoardView {
                    board: "global",
                    period,
                    bucket: id,
                    top: top.into_iter().take(limit).collect(),
                    players,
                    you: None,
                    around: None,
                    stale: true,
                },
                None => return Err(e.into()),
            }
        }
    };
    Ok(HttpResponse::Ok().json(view))
}

/// Counts of players, images by status, labels and rounds.
#[utoipa::path(
    tag = "leaderboards",
    responses(
        (status = 200, body = crate::store::Stats),
        (status = 503, description = "`try_again`", body = ErrorBody),
    )
)]
#[get("/api/stats")]
pub async fn counts(svc: web::Data<Services>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.images.stats().await?))
}
