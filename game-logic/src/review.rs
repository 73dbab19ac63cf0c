//! The moderation queue's order: which image a moderator should look at first.
//!
//! Disputed images (the crowd could not settle them) always come first. The
//! others are ranked by how unsure the crowd is, doubled where the crowd's
//! best guess contradicts the model, and weighted by how far the people who
//! labelled the image are trusted: an uncertain image labelled by reliable
//! players is a hard case worth a moderator's time; one labelled by
//! unreliable players mostly needs more labels.

use crate::Emotion;
use crate::truth;

/// What the queue knows about one candidate image.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewFacts {
    /// The crowd could not settle the image.
    pub disputed: bool,
    /// The crowd's posterior over the true class, if any label counted.
    pub posterior: Option<[f64; crate::EMOTION_COUNT]>,
    /// The model's guess, if the image was classified.
    pub model_guess: Option<Emotion>,
    /// Expected accuracy of each label's author (one entry per label).
    pub contributor_accuracy: Vec<f64>,
}

/// Where one candidate stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReviewRank {
    /// Higher is reviewed sooner; disputed images score at least
    /// [`DISPUTED_FLOOR`], every other image below it.
    pub priority: f64,
    /// The crowd's best guess and its probability.
    pub crowd: Option<(Emotion, f64)>,
    /// Mean expected accuracy of the contributors (0 with no labels).
    pub mean_reliability: f64,
}

/// The lowest priority of a disputed image. An undisputed image's priority
/// is at most (1 − 1/7) × 2 × 1.5 < 3, so disputed ones always lead.
pub const DISPUTED_FLOOR: f64 = 3.0;

/// Ranks one candidate.
pub fn rank(facts: &ReviewFacts) -> ReviewRank {
    let accuracies: Vec<f64> = facts
        .contributor_accuracy
        .iter()
        .map(|a| {
            if a.is_finite() {
                a.clamp(0.0, 1.0)
            } else {
                0.0
            }
        })
        .collect();
    let mean_reliability = if accuracies.is_empty() {
        0.0
    } else {
        accuracies.iter().sum::<f64>() / accuracies.len() as f64
    };
    let crowd = facts.posterior.as_ref().map(truth::map);
    // Without a posterior the crowd has said nothing: as unsure as it gets,
    // and nothing to contradict the model with.
    let (uncertainty, disagrees) = match crowd {
        Some((e, p)) => (
            (1.0 - p).clamp(0.0, 1.0 - 1.0 / crate::EMOTION_COUNT as f64),
            facts.model_guess.is_some_and(|g| g != e),
        ),
        None => (1.0 - 1.0 / crate::EMOTION_COUNT as f64, false),
    };
    let score = uncertainty * if disagrees { 2.0 } else { 1.0 } * (0.5 + mean_reliability);
    let priority = if facts.disputed {
        DISPUTED_FLOOR + score
    } else {
        score
    };
    ReviewRank {
        priority,
        crowd,
        mean_reliability,
    }
}

/// The queue: indices into `ranks`, highest priority first (ties keep their
/// input order), at most `limit`.
pub fn order(ranks: &[ReviewRank], limit: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..ranks.len()).collect();
    idx.sort_by(|&a, &b| ranks[b].priority.total_cmp(&ranks[a].priority));
    idx.truncate(limit);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EMOTION_COUNT;
    use proptest::prelude::*;

    fn facts() -> impl Strategy<Value = ReviewFacts> {
        (
            any::<bool>(),
            proptest::option::of(proptest::array::uniform7(0.0f64..1.0)),
            proptest::option::of(0usize..EMOTION_COUNT),
            proptest::collection::vec(-0.5f64..1.5, 0..12),
        )
            .prop_map(|(disputed, raw, guess, acc)| ReviewFacts {
                disputed,
                posterior: raw.map(|mut p| {
                    p[0] += 1e-3;
                    let s: f64 = p.iter().sum();
                    p.iter_mut().for_each(|x| *x /= s);
                    p
                }),
                model_guess: guess.map(|i| Emotion::ALL[i]),
                contributor_accuracy: acc,
            })
    }

    fn sure(e: Emotion, p: f64) -> [f64; EMOTION_COUNT] {
        let mut out = [(1.0 - p) / (EMOTION_COUNT - 1) as f64; EMOTION_COUNT];
        out[e as usize] = p;
        out
    }

    #[test]
    fn an_uncertain_contradiction_by_trusted_players_leads_the_undisputed() {
        let base = ReviewFacts {
            disputed: false,
            posterior: Some(sure(Emotion::Sad, 0.5)),
            model_guess: Some(Emotion::Happy),
            contributor_accuracy: vec![0.9, 0.9],
        };
        let agrees = ReviewFacts {
            model_guess: Some(Emotion::Sad),
            ..base.clone()
        };
        let confident = ReviewFacts {
            posterior: Some(sure(Emotion::Sad, 0.95)),
            ..base.clone()
        };
        let untrusted = ReviewFacts {
            contributor_accuracy: vec![0.1, 0.1],
            ..base.clone()
        };
        let r = [&base, &agrees, &confident, &untrusted].map(rank);
        assert!(r[0].priority > r[1].priority);
        assert!(r[0].priority > r[2].priority);
        assert!(r[0].priority > r[3].priority);
        assert_eq!(r[0].crowd.map(|c| c.0), Some(Emotion::Sad));
        assert!((r[0].mean_reliability - 0.9).abs() < 1e-12);
        assert_eq!(order(&r, 3), vec![0, 1, 3]);
    }

    proptest! {
        #[test]
        fn disputed_images_always_come_first(all in proptest::collection::vec(facts(), 0..30), limit in 0usize..40) {
            let ranks: Vec<ReviewRank> = all.iter().map(rank).collect();
            let queue = order(&ranks, limit);
            prop_assert_eq!(queue.len(), limit.min(all.len()));
            let disputed = all.iter().filter(|f| f.disputed).count();
            for (pos, &i) in queue.iter().enumerate() {
                prop_assert_eq!(all[i].disputed, pos < disputed, "position {}", pos);
                prop_assert!(ranks[i].priority.is_finite());
                prop_assert!((0.0..=1.0).contains(&ranks[i].mean_reliability));
            }
            for w in queue.windows(2) {
                prop_assert!(ranks[w[0]].priority >= ranks[w[1]].priority);
                if ranks[w[0]].priority == ranks[w[1]].priority {
                    prop_assert!(w[0] < w[1]);
                }
            }
        }

        #[test]
        fn more_doubt_never_lowers_priority(f in facts(), p in 0.2f64..1.0, q in 0.2f64..1.0) {
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            let e = Emotion::Neutral;
            let doubtful = rank(&ReviewFacts { posterior: Some(sure(e, lo)), ..f.clone() });
            let sure_ = rank(&ReviewFacts { posterior: Some(sure(e, hi)), ..f });
            prop_assert!(doubtful.priority >= sure_.priority);
        }
    }
}
