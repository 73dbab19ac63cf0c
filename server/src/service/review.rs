//! The moderators' review queue: loads every candidate's evidence in a fixed
//! number of batched reads (candidates, their labels, the labellers'
//! reliabilities, the shown images' predictions), lets
//! [`emofy_game::review`] rank them, and returns the top of the queue.

use std::collections::{HashMap, HashSet};

use emofy_game::review::{self, ReviewFacts, ReviewRank};
use emofy_game::{ImageId, PlayerId, Reliability};

use crate::store::{ImageStore, LabelRecord, ReviewCandidate, ReviewStore, RoundStore, StoreError};

/// How much the queue reads.
#[derive(Debug, Clone, Copy)]
pub struct QueueBounds {
    /// Candidates ranked (the most recently changed).
    pub candidates: usize,
    /// Labels read per candidate.
    pub labels: usize,
    /// Entries returned.
    pub limit: usize,
}

/// One queued image with what a moderator needs to decide.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub candidate: ReviewCandidate,
    pub rank: ReviewRank,
    /// Oldest first, each with whether its author's labels count.
    pub labels: Vec<(LabelRecord, bool)>,
    /// The serving model's probabilities, if it classified the image.
    pub model_probabilities: Option<Vec<f32>>,
}

/// The review queue, highest priority first: four store reads whatever the
/// number of candidates or labels.
pub async fn review_queue(
    review: &dyn ReviewStore,
    rounds: &dyn RoundStore,
    images: &dyn ImageStore,
    model: Option<&str>,
    bounds: QueueBounds,
) -> Result<Vec<QueueEntry>, StoreError> {
    let candidates = review.review_candidates(bounds.candidates).await?;
    let ids: Vec<ImageId> = candidates.iter().map(|c| c.meta.id).collect();
    let mut labels = rounds.labels_of_images(&ids, bounds.labels).await?;
    let players: Vec<PlayerId> = labels
        .values()
        .flatten()
        .map(|l| l.player)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let reliabilities: HashMap<PlayerId, Reliability> = review
        .reliabilities_of(&players)
        .await?
        .into_iter()
        .collect();
    let default_accuracy = Reliability::<7>::default().accuracy();
    let ranks: Vec<ReviewRank> = candidates
        .iter()
        .map(|c| {
            let of = labels.get(&c.meta.id).map(Vec::as_slice).unwrap_or(&[]);
            review::rank(&ReviewFacts {
                disputed: matches!(c.meta.status, emofy_game::ImageStatus::Disputed),
                posterior: c.posterior,
                model_guess: c.model_guess,
                contributor_accuracy: of
                    .iter()
                    .map(|l| {
                        reliabilities
                            .get(&l.player)
                            .map_or(default_accuracy, Reliability::accuracy)
                    })
                    .collect(),
            })
        })
        .collect();
    let order = review::order(&ranks, bounds.limit);
    let shown: Vec<ImageId> = order.iter().map(|&i| ids[i]).collect();
    let mut predictions = match model {
        Some(m) if !shown.is_empty() => images.predictions_of(&shown, m).await?,
        _ => HashMap::new(),
    };
    let mut candidates: Vec<Option<ReviewCandidate>> = candidates.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| {
            let candidate = candidates.get_mut(i)?.take()?;
            let id = candidate.meta.id;
            let labels = labels
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    let counted = reliabilities.get(&l.player).is_none_or(Reliability::counts);
                    (l, counted)
                })
                .collect();
            Some(QueueEntry {
                candidate,
                rank: ranks[i],
                labels,
                model_probabilities: predictions.remove(&id).map(|p| p.probabilities.to_vec()),
            })
        })
        .collect())
}
