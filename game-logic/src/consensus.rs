//! Vote counts, the retirement rule, and image status transitions.
//!
//! An image is *open* until its truth posterior (see [`crate::truth`]) is
//! confident: at least `min_labels` counted labels and a top class with
//! posterior probability of at least `confidence`. It becomes *disputed* at
//! `max_labels` counted labels without that, and waits for a moderator.
//! Retired and disputed are final for the automatic rule; later votes are
//! still counted but never change the status. Raw vote counts are kept for
//! display and for the immediate agreement points.

use serde::{Deserialize, Serialize};

use crate::class::Class;
use crate::emotion::{EMOTION_COUNT, Emotion};

/// Votes per emotion, indexed by [`Emotion::index`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VoteCounts(pub [u32; EMOTION_COUNT]);

impl VoteCounts {
    /// Counts with one vote added for `e` (saturating).
    pub fn with_vote(mut self, e: Emotion) -> Self {
        self.add(e);
        self
    }

    /// Adds one vote for `e` (saturating).
    pub fn add(&mut self, e: Emotion) {
        let slot = &mut self.0[e.index()];
        *slot = slot.saturating_add(1);
    }

    /// Votes for `e`.
    pub fn get(&self, e: Emotion) -> u32 {
        self.0[e.index()]
    }

    /// Total number of votes.
    pub fn total(&self) -> u32 {
        self.0.iter().fold(0u32, |a, &b| a.saturating_add(b))
    }

    /// The highest vote count (0 when there are no votes).
    pub fn max(&self) -> u32 {
        self.0.iter().copied().max().unwrap_or(0)
    }

    /// The class with the most votes, if exactly one class has the most and it has at least one.
    pub fn unique_top(&self) -> Option<Emotion> {
        let max = self.max();
        if max == 0 {
            return None;
        }
        let mut tops = Emotion::ALL.into_iter().filter(|e| self.get(*e) == max);
        let first = tops.next()?;
        tops.next().is_none().then_some(first)
    }

    /// Whether `e` is among the classes with the most votes (false when there are no votes).
    pub fn is_plurality(&self, e: Emotion) -> bool {
        let max = self.max();
        max > 0 && self.get(e) == max
    }

    /// Share of votes per class (all zero when there are no votes).
    pub fn distribution(&self) -> [f64; EMOTION_COUNT] {
        let total = self.total();
        let mut out = [0.0; EMOTION_COUNT];
        if total > 0 {
            for (o, c) in out.iter_mut().zip(self.0) {
                *o = f64::from(c) / f64::from(total);
            }
        }
        out
    }
}

/// Where an image stands in the labelling pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ImageStatus<C = Emotion> {
    /// Still collecting labels; may be offered.
    Open,
    /// Consensus reached with this label; never offered again.
    Retired { label: C },
    /// `max_labels` reached without consensus; waits for review; never offered again.
    Disputed,
    /// Taken out of play (deleted, flagged); never offered again.
    Removed,
}

impl<C> ImageStatus<C> {
    /// Whether the image may be offered in a round.
    pub fn is_open(&self) -> bool {
        matches!(self, ImageStatus::Open)
    }

    /// Short stable name: `open`, `retired`, `disputed`, `removed`.
    pub fn name(&self) -> &'static str {
        match self {
            ImageStatus::Open => "open",
            ImageStatus::Retired { .. } => "retired",
            ImageStatus::Disputed => "disputed",
            ImageStatus::Removed => "removed",
        }
    }
}

/// Invalid rule parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("min_labels must be at least 1")]
    MinLabelsZero,
    #[error("max_labels ({max}) must be at least min_labels ({min})")]
    MaxBelowMin { min: u32, max: u32 },
    #[error("confidence must be above 0.5 and at most 1.0 (got {0} per mille)")]
    ConfidenceOutOfRange(u32),
}

/// The retirement rule: retire at `>= min_labels` counted labels once the
/// posterior's top class reaches `confidence`; dispute at `max_labels`
/// counted labels without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusRule {
    min_labels: u32,
    confidence_permille: u32,
    max_labels: u32,
}

impl Default for ConsensusRule {
    fn default() -> Self {
        ConsensusRule {
            min_labels: 3,
            confidence_permille: 900,
            max_labels: 9,
        }
    }
}

impl ConsensusRule {
    /// Builds a rule; `confidence_permille` is the posterior threshold in
    /// thousandths (900 = 0.9) and must be in 501..=1000 so the top class is unique.
    pub fn new(
        min_labels: u32,
        confidence_permille: u32,
        max_labels: u32,
    ) -> Result<Self, RuleError> {
        if min_labels == 0 {
            return Err(RuleError::MinLabelsZero);
        }
        if max_labels < min_labels {
            return Err(RuleError::MaxBelowMin {
                min: min_labels,
                max: max_labels,
            });
        }
        if !(501..=1000).contains(&confidence_permille) {
            return Err(RuleError::ConfidenceOutOfRange(confidence_permille));
        }
        Ok(ConsensusRule {
            min_labels,
            confidence_permille,
            max_labels,
        })
    }

    pub fn min_labels(&self) -> u32 {
        self.min_labels
    }

    pub fn max_labels(&self) -> u32 {
        self.max_labels
    }

    pub fn confidence_permille(&self) -> u32 {
        self.confidence_permille
    }

    /// The status of an open image with this posterior, this many counted
    /// labels, and `support` of them for the posterior's top class. The top
    /// class must have been chosen by at least two people (one when
    /// `min_labels` is 1): the model's guess alone never retires an image.
    pub fn status<C: Class, const K: usize>(
        &self,
        posterior: &[f64; K],
        counted: u32,
        support: u32,
    ) -> ImageStatus<C> {
        let (top, p) = crate::class::top::<C, K>(posterior);
        if counted >= self.min_labels
            && support >= self.min_labels.min(2)
            && p * 1000.0 >= f64::from(self.confidence_permille)
        {
            return ImageStatus::Retired { label: top };
        }
        if counted >= self.max_labels {
            ImageStatus::Disputed
        } else {
            ImageStatus::Open
        }
    }
}

/// An image's votes and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageTally {
    pub votes: VoteCounts,
    pub status: ImageStatus,
}

impl Default for ImageTally {
    fn default() -> Self {
        ImageTally {
            votes: VoteCounts::default(),
            status: ImageStatus::Open,
        }
    }
}

/// What one vote did to an image's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition<C = Emotion> {
    /// Status unchanged.
    None,
    /// This vote retired the image with this label.
    Retired { label: C },
    /// This vote made the image disputed.
    Disputed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    fn counts(v: &[(Emotion, u32)]) -> VoteCounts {
        let mut c = VoteCounts::default();
        for (e, n) in v {
            c.0[e.index()] = *n;
        }
        c
    }

    #[test]
    fn status_follows_the_posterior() {
        let rule = ConsensusRule::default(); // 3, 0.9, 9
        let mut sure = [0.0; crate::EMOTION_COUNT];
        sure[Happy.index()] = 1.0;
        assert_eq!(rule.status::<Emotion, 7>(&sure, 2, 2), ImageStatus::Open);
        assert_eq!(
            rule.status::<Emotion, 7>(&sure, 3, 2),
            ImageStatus::Retired { label: Happy }
        );
        // Confident, but only one person chose it: not enough.
        assert_eq!(rule.status::<Emotion, 7>(&sure, 3, 1), ImageStatus::Open);
        let unsure = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(rule.status::<Emotion, 7>(&unsure, 8, 4), ImageStatus::Open);
        assert_eq!(
            rule.status::<Emotion, 7>(&unsure, 9, 4),
            ImageStatus::Disputed
        );
    }

    #[test]
    fn rule_validation() {
        assert_eq!(ConsensusRule::new(0, 700, 3), Err(RuleError::MinLabelsZero));
        assert_eq!(
            ConsensusRule::new(3, 700, 2),
            Err(RuleError::MaxBelowMin { min: 3, max: 2 })
        );
        assert_eq!(
            ConsensusRule::new(3, 500, 5),
            Err(RuleError::ConfidenceOutOfRange(500))
        );
        assert!(ConsensusRule::new(1, 1000, 1).is_ok());
    }

    #[test]
    fn unique_top_and_plurality() {
        assert_eq!(VoteCounts::default().unique_top(), None);
        assert_eq!(counts(&[(Happy, 2), (Sad, 2)]).unique_top(), None);
        assert!(counts(&[(Happy, 2), (Sad, 2)]).is_plurality(Sad));
        assert!(!counts(&[(Happy, 2), (Sad, 1)]).is_plurality(Sad));
        assert!(!VoteCounts::default().is_plurality(Sad));
    }
}
