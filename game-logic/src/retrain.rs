//! When the background trainer starts a run, and who may: the trigger
//! (enough new confident labels since the last candidate, not too soon
//! after the last attempt) and the store lease that keeps training to one
//! replica at a time.
//!
//! "New confident labels" is counted as images: the images the training
//! rule ([`crate::training::example_of`]) accepts now, less the images the
//! newest trained candidate learned from (its data snapshot). Counting
//! images, not answers, is what changes the training data: a tenth answer
//! on a face that was already confident adds nothing to learn from.

use serde::{Deserialize, Serialize};

use crate::ids::Millis;

/// The background trainer's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerRules {
    /// Train when at least this many more images are confidently labelled
    /// than the newest trained candidate learned from (≥ 1).
    pub every_new_labels: u32,
    /// At least this long between the starts of two runs, whatever their result.
    pub min_interval_ms: u64,
}

impl Default for TrainerRules {
    fn default() -> Self {
        TrainerRules {
            every_new_labels: 500,
            min_interval_ms: 30 * 60 * 1000,
        }
    }
}

/// What the trigger reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainerFacts {
    /// Images the training rule accepts now.
    pub trainable_now: u32,
    /// Images the newest trained candidate learned from (0: none trained yet).
    pub trainable_at_last: u32,
    /// When a run last started (on any replica, as far as this one knows).
    pub last_started: Option<Millis>,
    pub now: Millis,
}

/// Why the trainer waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Wait {
    /// Not enough new confident labels yet.
    FewNewLabels { new: u32, need: u32 },
    /// The last run started too recently.
    TooSoon { until: Millis },
}

/// The trigger's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum TrainerDecision {
    Train { new: u32 },
    Wait(Wait),
}

/// Whether to start a run now.
pub fn should_train(facts: &TrainerFacts, rules: &TrainerRules) -> TrainerDecision {
    let new = facts.trainable_now.saturating_sub(facts.trainable_at_last);
    let need = rules.every_new_labels.max(1);
    if new < need {
        return TrainerDecision::Wait(Wait::FewNewLabels { new, need });
    }
    if let Some(started) = facts.last_started {
        let until = started.plus(rules.min_interval_ms);
        if facts.now < until {
            return TrainerDecision::Wait(Wait::TooSoon { until });
        }
    }
    TrainerDecision::Train { new }
}

/// A named lease as stored: who holds it, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub holder: String,
    pub expires: Millis,
}

/// Whether `holder` may take (or renew) a lease that is `current` now:
/// nobody holds it, it has expired, or `holder` holds it already. Every
/// store applies this rule atomically (a compare-and-set).
pub fn lease_free_for(current: Option<&Lease>, holder: &str, now: Millis) -> bool {
    match current {
        None => true,
        Some(l) => l.holder == holder || l.expires <= now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn facts(now: u32, last: u32, started: Option<u64>, at: u64) -> TrainerFacts {
        TrainerFacts {
            trainable_now: now,
            trainable_at_last: last,
            last_started: started.map(Millis),
            now: Millis(at),
        }
    }

    const RULES: TrainerRules = TrainerRules {
        every_new_labels: 100,
        min_interval_ms: 1000,
    };

    #[test]
    fn trains_once_enough_images_are_newly_confident() {
        assert_eq!(
            should_train(&facts(99, 0, None, 0), &RULES),
            TrainerDecision::Wait(Wait::FewNewLabels { new: 99, need: 100 })
        );
        assert_eq!(
            should_train(&facts(100, 0, None, 0), &RULES),
            TrainerDecision::Train { new: 100 }
        );
        assert_eq!(
            should_train(&facts(350, 300, None, 0), &RULES),
            TrainerDecision::Wait(Wait::FewNewLabels { new: 50, need: 100 })
        );
    }

    #[test]
    fn fewer_images_than_last_time_is_no_news() {
        // Images removed or revoked since: nothing new to learn from.
        assert_eq!(
            should_train(&facts(200, 400, None, 0), &RULES),
            TrainerDecision::Wait(Wait::FewNewLabels { new: 0, need: 100 })
        );
    }

    #[test]
    fn waits_out_the_interval_after_a_start() {
        assert_eq!(
            should_train(&facts(500, 0, Some(10_000), 10_999), &RULES),
            TrainerDecision::Wait(Wait::TooSoon {
                until: Millis(11_000)
            })
        );
        assert_eq!(
            should_train(&facts(500, 0, Some(10_000), 11_000), &RULES),
            TrainerDecision::Train { new: 500 }
        );
    }

    #[test]
    fn a_threshold_of_zero_still_needs_one_new_image() {
        let rules = TrainerRules {
            every_new_labels: 0,
            min_interval_ms: 0,
        };
        assert!(matches!(
            should_train(&facts(7, 7, None, 0), &rules),
            TrainerDecision::Wait(_)
        ));
        assert_eq!(
            should_train(&facts(8, 7, None, 0), &rules),
            TrainerDecision::Train { new: 1 }
        );
    }

    #[test]
    fn a_lease_is_free_when_unheld_expired_or_ours() {
        let held = Lease {
            holder: "a".into(),
            expires: Millis(100),
        };
        assert!(lease_free_for(None, "b", Millis(0)));
        assert!(lease_free_for(Some(&held), "a", Millis(50)));
        assert!(!lease_free_for(Some(&held), "b", Millis(99)));
        assert!(lease_free_for(Some(&held), "b", Millis(100)));
    }

    proptest! {
        #[test]
        fn trains_only_on_enough_news_and_after_the_interval(
            now in 0u32..2000, last in 0u32..2000, every in 0u32..500,
            interval in 0u64..10_000, started in proptest::option::of(0u64..20_000), at in 0u64..30_000,
        ) {
            let rules = TrainerRules { every_new_labels: every, min_interval_ms: interval };
            let d = should_train(&facts(now, last, started, at), &rules);
            let enough = now.saturating_sub(last) >= every.max(1);
            let waited = started.is_none_or(|s| at >= s + interval);
            prop_assert_eq!(matches!(d, TrainerDecision::Train { .. }), enough && waited);
        }

        #[test]
        fn at_most_one_holder_at_a_time(
            steps in proptest::collection::vec((0usize..3, 0u64..50, 1u64..40), 1..60)
        ) {
            // Replay takes by three holders as a store would apply them:
            // after each, at most one unexpired holder exists.
            let names = ["a", "b", "c"];
            let mut current: Option<Lease> = None;
            let mut now = 0u64;
            for (who, dt, ttl) in steps {
                now += dt;
                let holder = names[who];
                if lease_free_for(current.as_ref(), holder, Millis(now)) {
                    if let Some(c) = &current {
                        prop_assert!(c.holder == holder || c.expires <= Millis(now));
                    }
                    current = Some(Lease { holder: holder.into(), expires: Millis(now + ttl) });
                } else if let Some(c) = &current {
                    prop_assert!(c.holder != holder && c.expires > Millis(now));
                }
            }
        }
    }
}
