//! What follows a recorded answer or score change, wherever it came from (a
//! round on the play socket, a contributor's own label, a moderator's
//! settlement): one place, so every path tells the same actors the same thing.

use emofy_game::ImageId;

use crate::actors::coordinator::{ImageTallied, ScoresChanged};
use crate::actors::hub::ScoresMoved;
use crate::service::Services;
use crate::store::{AnswerOutcome, ScoreChange};

/// Applies score changes to the leaderboard (the store already holds them:
/// a failure here is caught up by the ledger replay), tells the live board
/// hub, and tells the changed players' other sessions (`origin`: the session
/// that caused them, which reports its own points itself; 0 for none).
pub async fn publish_score_changes(svc: &Services, changes: &[ScoreChange], origin: u64) {
    if changes.is_empty() {
        return;
    }
    if let Err(e) = svc.leaderboard.apply(changes).await {
        tracing::warn!(error = %e, "leaderboard update failed");
    }
    svc.hub.do_send(ScoresMoved {
        players: changes.iter().map(|c| c.player).collect(),
    });
    svc.coordinator.do_send(ScoresChanged {
        changes: changes.to_vec(),
        origin,
    });
}

/// After an answer was recorded: its score changes (see
/// [`publish_score_changes`]) and, for an image in play, its new tally to the
/// coordinator's pool.
pub async fn after_answer(
    svc: &Services,
    image: ImageId,
    outcome: &AnswerOutcome,
    in_play: bool,
    origin: u64,
) {
    publish_score_changes(svc, &outcome.changes, origin).await;
    if in_play {
        svc.coordinator.do_send(ImageTallied {
            image,
            votes: outcome.votes,
            status: outcome.status,
            posterior: outcome.posterior,
        });
    }
}
