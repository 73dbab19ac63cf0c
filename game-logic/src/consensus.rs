//! Vote counts, the first consensus rule, and image status transitions.
//!
//! An image is *open* until its votes meet the retirement rule (at least
//! `min_labels` votes and a unique top class holding at least `agreement` of
//! them), or until it reaches `max_labels` without that, when it becomes
//! *disputed* and waits for a moderator. Retired and disputed are final for the
//! automatic rule; later votes are still counted but never change the status.

use serde::{Deserialize, Serialize};

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
pub enum ImageStatus {
    /// Still collecting labels; may be offered.
    Open,
    /// Consensus reached with this label; never offered again.
    Retired { label: Emotion },
    /// `max_labels` reached without consensus; waits for review; never offered again.
    Disputed,
    /// Taken out of play (deleted, flagged); never offered again.
    Removed,
}

impl ImageStatus {
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
    #[error("agreement must be above 0.5 and at most 1.0 (got {0} per mille)")]
    AgreementOutOfRange(u32),
}

/// The first consensus rule: retire at `>= min_labels` votes with agreement
/// `>= agreement`; dispute at `max_labels` votes without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusRule {
    min_labels: u32,
    agreement_permille: u32,
    max_labels: u32,
}

impl Default for ConsensusRule {
    fn default() -> Self {
        ConsensusRule {
            min_labels: 3,
            agreement_permille: 700,
            max_labels: 8,
        }
    }
}

impl ConsensusRule {
    /// Builds a rule; `agreement_permille` is the agreement threshold in
    /// thousandths (700 = 70%) and must be in 501..=1000 so the top class is unique.
    pub fn new(
        min_labels: u32,
        agreement_permille: u32,
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
        if !(501..=1000).contains(&agreement_permille) {
            return Err(RuleError::AgreementOutOfRange(agreement_permille));
        }
        Ok(ConsensusRule {
            min_labels,
            agreement_permille,
            max_labels,
        })
    }

    pub fn min_labels(&self) -> u32 {
        self.min_labels
    }

    pub fn max_labels(&self) -> u32 {
        self.max_labels
    }

    pub fn agreement_permille(&self) -> u32 {
        self.agreement_permille
    }

    /// The status the automatic rule gives these counts.
    pub fn evaluate(&self, counts: &VoteCounts) -> ImageStatus {
        let total = counts.total();
        if total >= self.min_labels
            && let Some(top) = counts.unique_top()
            && u64::from(counts.get(top)) * 1000
                >= u64::from(self.agreement_permille) * u64::from(total)
        {
            return ImageStatus::Retired { label: top };
        }
        if total >= self.max_labels {
            ImageStatus::Disputed
        } else {
            ImageStatus::Open
        }
    }

    /// The fewest further votes after which the rule could close the image
    /// (retire it if they all agree with the current top class, or dispute it
    /// at `max_labels`). 0 means the rule already closes it.
    pub fn votes_to_close(&self, counts: &VoteCounts) -> u32 {
        let n = u64::from(counts.total());
        let t = u64::from(counts.max());
        let tau = u64::from(self.agreement_permille);
        let to_dispute = u64::from(self.max_labels).saturating_sub(n);
        // With x more votes for the top class: 1000 (t + x) >= tau (n + x)  <=>  x (1000 - tau) >= tau n - 1000 t.
        let need = (tau * n).saturating_sub(1000 * t);
        let to_agree = if need == 0 {
            0
        } else if tau >= 1000 {
            u64::MAX
        } else {
            need.div_ceil(1000 - tau)
        };
        let to_retire = to_agree.max(u64::from(self.min_labels).saturating_sub(n));
        u32::try_from(to_retire.min(to_dispute)).unwrap_or(u32::MAX)
    }
}

/// An image's votes and status: the state the consensus rule moves.
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
pub enum Transition {
    /// Status unchanged.
    None,
    /// This vote retired the image with this label.
    Retired { label: Emotion },
    /// This vote made the image disputed.
    Disputed,
}

impl ImageTally {
    /// Counts one vote and moves an open image to retired/disputed when the rule says so.
    /// Closed images keep their status (the vote is still counted).
    pub fn record_vote(&mut self, vote: Emotion, rule: &ConsensusRule) -> Transition {
        self.votes.add(vote);
        if !self.status.is_open() {
            return Transition::None;
        }
        self.status = rule.evaluate(&self.votes);
        match self.status {
            ImageStatus::Retired { label } => Transition::Retired { label },
            ImageStatus::Disputed => Transition::Disputed,
            ImageStatus::Open | ImageStatus::Removed => Transition::None,
        }
    }
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
    fn retires_with_enough_agreeing_votes() {
        let rule = ConsensusRule::default();
        assert_eq!(rule.evaluate(&counts(&[(Happy, 2)])), ImageStatus::Open);
        assert_eq!(
            rule.evaluate(&counts(&[(Happy, 3)])),
            ImageStatus::Retired { label: Happy }
        );
        // 3 of 4 = 75% >= 70%
        assert_eq!(
            rule.evaluate(&counts(&[(Happy, 3), (Sad, 1)])),
            ImageStatus::Retired { label: Happy }
        );
        // 2 of 3 = 66% < 70%
        assert_eq!(
            rule.evaluate(&counts(&[(Happy, 2), (Sad, 1)])),
            ImageStatus::Open
        );
    }

    #[test]
    fn disputes_at_max_labels_without_agreement() {
        let rule = ConsensusRule::new(3, 700, 4).unwrap_or_default();
        assert_eq!(
            rule.evaluate(&counts(&[(Happy, 2), (Sad, 2)])),
            ImageStatus::Disputed
        );
        let mut tally = ImageTally::default();
        assert_eq!(tally.record_vote(Happy, &rule), Transition::None);
        assert_eq!(tally.record_vote(Sad, &rule), Transition::None);
        assert_eq!(tally.record_vote(Fear, &rule), Transition::None);
        assert_eq!(tally.record_vote(Angry, &rule), Transition::Disputed);
        // Later votes are counted but do not reopen or retire.
        assert_eq!(tally.record_vote(Happy, &rule), Transition::None);
        assert_eq!(tally.status, ImageStatus::Disputed);
        assert_eq!(tally.votes.total(), 5);
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
            Err(RuleError::AgreementOutOfRange(500))
        );
        assert!(ConsensusRule::new(1, 1000, 1).is_ok());
    }

    #[test]
    fn votes_to_close_examples() {
        let rule = ConsensusRule::default(); // 3, 70%, 8
        assert_eq!(rule.votes_to_close(&VoteCounts::default()), 3);
        assert_eq!(rule.votes_to_close(&counts(&[(Happy, 2)])), 1);
        // 2 happy 1 sad: need (2+x)/(3+x) >= .7 -> x >= 0.33 -> 1
        assert_eq!(rule.votes_to_close(&counts(&[(Happy, 2), (Sad, 1)])), 1);
        // 2 happy 2 sad: (2+x)/(4+x) >= .7 -> x >= 2.67 -> 3
        assert_eq!(rule.votes_to_close(&counts(&[(Happy, 2), (Sad, 2)])), 3);
        // 7 votes spread: 1 to dispute
        assert_eq!(
            rule.votes_to_close(&counts(&[(Happy, 2), (Sad, 2), (Fear, 2), (Angry, 1)])),
            1
        );
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
