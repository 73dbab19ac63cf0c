//! Points: immediate awards when an answer is accepted, and settlement when an
//! image retires.
//!
//! * **Agreement** — an answer that matches the plurality of the votes cast
//!   before it earns `agreement` points plus a **speed bonus** (linear in the
//!   time left), multiplied by the **streak multiplier** (+`streak_step_percent`
//!   per consecutive agreement, capped). A disagreeing answer earns nothing and
//!   resets the streak. The first vote on an image has nobody to agree with:
//!   it earns nothing now and leaves the streak alone; settlement pays it.
//! * **Settlement** — when an image retires with label *L*, every player who
//!   answered *L* earns `consensus_bonus`, and those who also **corrected the
//!   model** (the suggestion shown to them was not *L*) earn `correction_bonus`.
//!   Settlement depends only on the set of labels, never on their order.
//!
//! All points are unsigned: a score can never go negative.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::consensus::VoteCounts;
use crate::emotion::Emotion;
use crate::ids::PlayerId;

/// Point values. Every field is a whole number of points or a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoringRules {
    pub agreement: u32,
    pub speed_bonus_max: u32,
    pub streak_step_percent: u32,
    pub streak_cap: u32,
    pub consensus_bonus: u32,
    pub correction_bonus: u32,
}

impl Default for ScoringRules {
    fn default() -> Self {
        ScoringRules {
            agreement: 10,
            speed_bonus_max: 5,
            streak_step_percent: 10,
            streak_cap: 10,
            consensus_bonus: 5,
            correction_bonus: 15,
        }
    }
}

/// How an answer compared with the votes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Agreement {
    /// It matched the plurality of earlier votes.
    Agreed,
    /// It did not.
    Disagreed,
    /// There were no earlier votes; points come at settlement.
    FirstOpinion,
}

/// Facts about one accepted answer, as the scorer needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerFacts {
    pub answer: Emotion,
    /// Votes on the image before this answer.
    pub prior: VoteCounts,
    pub response_ms: u64,
    pub time_limit_ms: u64,
    /// The player's streak before this answer.
    pub streak: u32,
}

/// Points for one answer, itemised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Award {
    pub agreement: Agreement,
    pub base: u32,
    pub speed_bonus: u32,
    /// Streak multiplier in percent (100 = ×1).
    pub multiplier_percent: u32,
    /// Total points for this answer.
    pub points: u32,
    /// The player's streak after this answer.
    pub streak_after: u32,
}

impl ScoringRules {
    /// The immediate award for an accepted answer.
    pub fn score_answer(&self, f: &AnswerFacts) -> Award {
        let agreement = if f.prior.total() == 0 {
            Agreement::FirstOpinion
        } else if f.prior.is_plurality(f.answer) {
            Agreement::Agreed
        } else {
            Agreement::Disagreed
        };
        match agreement {
            Agreement::FirstOpinion => Award {
                agreement,
                base: 0,
                speed_bonus: 0,
                multiplier_percent: 100,
                points: 0,
                streak_after: f.streak,
            },
            Agreement::Disagreed => Award {
                agreement,
                base: 0,
                speed_bonus: 0,
                multiplier_percent: 100,
                points: 0,
                streak_after: 0,
            },
            Agreement::Agreed => {
                let speed_bonus = self.speed_bonus(f.response_ms, f.time_limit_ms);
                let multiplier_percent = self.multiplier_percent(f.streak);
                let raw = u64::from(self.agreement.saturating_add(speed_bonus))
                    * u64::from(multiplier_percent)
                    / 100;
                Award {
                    agreement,
                    base: self.agreement,
                    speed_bonus,
                    multiplier_percent,
                    points: u32::try_from(raw).unwrap_or(u32::MAX),
                    streak_after: f.streak.saturating_add(1),
                }
            }
        }
    }

    /// `speed_bonus_max` scaled by the share of the time limit left (0 when none is left).
    pub fn speed_bonus(&self, response_ms: u64, time_limit_ms: u64) -> u32 {
        if time_limit_ms == 0 || response_ms >= time_limit_ms {
            return 0;
        }
        let left = time_limit_ms - response_ms;
        let b = u128::from(self.speed_bonus_max) * u128::from(left) / u128::from(time_limit_ms);
        u32::try_from(b).unwrap_or(u32::MAX)
    }

    /// Streak multiplier in percent for a streak of `streak` earlier agreements.
    pub fn multiplier_percent(&self, streak: u32) -> u32 {
        100u32.saturating_add(
            self.streak_step_percent
                .saturating_mul(streak.min(self.streak_cap)),
        )
    }

    /// Settlement for an image that retired with `consensus`: points per player
    /// (players earning nothing are left out). Order of `labels` does not matter.
    pub fn settle(
        &self,
        consensus: Emotion,
        labels: &[SettlementLabel],
    ) -> BTreeMap<PlayerId, u32> {
        let mut out = BTreeMap::new();
        for l in labels.iter().filter(|l| l.answer == consensus) {
            let mut pts = self.consensus_bonus;
            if l.shown.is_some_and(|s| s != consensus) {
                pts = pts.saturating_add(self.correction_bonus);
            }
            if pts > 0 {
                let e = out.entry(l.player).or_insert(0u32);
                *e = e.saturating_add(pts);
            }
        }
        out
    }
}

/// One label as settlement needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementLabel {
    pub player: PlayerId,
    pub answer: Emotion,
    /// The suggestion shown with the round, if any.
    pub shown: Option<Emotion>,
}

/// A player's running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerTally {
    pub score: u64,
    pub streak: u32,
    pub best_streak: u32,
    pub answers: u32,
}

impl PlayerTally {
    /// Applies an answer's award.
    pub fn apply_award(&mut self, award: &Award) {
        self.score = self.score.saturating_add(u64::from(award.points));
        self.streak = award.streak_after;
        self.best_streak = self.best_streak.max(self.streak);
        self.answers = self.answers.saturating_add(1);
    }

    /// Adds settlement points.
    pub fn add_points(&mut self, points: u32) {
        self.score = self.score.saturating_add(u64::from(points));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn facts(answer: Emotion, prior: &[Emotion], response_ms: u64, streak: u32) -> AnswerFacts {
        let mut c = VoteCounts::default();
        for e in prior {
            c.add(*e);
        }
        AnswerFacts {
            answer,
            prior: c,
            response_ms,
            time_limit_ms: 10_000,
            streak,
        }
    }

    #[test]
    fn agreeing_fast_answer_with_streak() {
        let r = ScoringRules::default();
        let a = r.score_answer(&facts(Emotion::Happy, &[Emotion::Happy], 0, 3));
        assert_eq!(a.agreement, Agreement::Agreed);
        assert_eq!(a.speed_bonus, 5);
        assert_eq!(a.multiplier_percent, 130);
        assert_eq!(a.points, (10 + 5) * 130 / 100);
        assert_eq!(a.streak_after, 4);
    }

    #[test]
    fn slow_answer_gets_no_speed_bonus_and_cap_applies() {
        let r = ScoringRules::default();
        let a = r.score_answer(&facts(Emotion::Happy, &[Emotion::Happy], 10_000, 50));
        assert_eq!(a.speed_bonus, 0);
        assert_eq!(a.multiplier_percent, 200);
        assert_eq!(a.points, 20);
        assert_eq!(r.speed_bonus(5_000, 10_000), 2);
    }

    #[test]
    fn disagreement_resets_streak_first_opinion_keeps_it() {
        let r = ScoringRules::default();
        let a = r.score_answer(&facts(Emotion::Sad, &[Emotion::Happy], 0, 7));
        assert_eq!(
            (a.agreement, a.points, a.streak_after),
            (Agreement::Disagreed, 0, 0)
        );
        let a = r.score_answer(&facts(Emotion::Sad, &[], 0, 7));
        assert_eq!(
            (a.agreement, a.points, a.streak_after),
            (Agreement::FirstOpinion, 0, 7)
        );
    }

    #[test]
    fn settlement_pays_consensus_and_correction() {
        let r = ScoringRules::default();
        let p = |n| PlayerId(Uuid::from_u128(n));
        let labels = [
            SettlementLabel {
                player: p(1),
                answer: Emotion::Sad,
                shown: Some(Emotion::Happy),
            },
            SettlementLabel {
                player: p(2),
                answer: Emotion::Sad,
                shown: Some(Emotion::Sad),
            },
            SettlementLabel {
                player: p(3),
                answer: Emotion::Happy,
                shown: Some(Emotion::Happy),
            },
            SettlementLabel {
                player: p(4),
                answer: Emotion::Sad,
                shown: None,
            },
        ];
        let s = r.settle(Emotion::Sad, &labels);
        assert_eq!(s.get(&p(1)), Some(&20));
        assert_eq!(s.get(&p(2)), Some(&5));
        assert_eq!(s.get(&p(3)), None);
        assert_eq!(s.get(&p(4)), Some(&5));
    }

    #[test]
    fn tally_tracks_best_streak() {
        let r = ScoringRules::default();
        let mut t = PlayerTally::default();
        t.apply_award(&r.score_answer(&facts(Emotion::Happy, &[Emotion::Happy], 0, 0)));
        t.apply_award(&r.score_answer(&facts(Emotion::Happy, &[Emotion::Happy], 0, t.streak)));
        t.apply_award(&r.score_answer(&facts(Emotion::Sad, &[Emotion::Happy], 0, t.streak)));
        assert_eq!((t.streak, t.best_streak, t.answers), (0, 2, 3));
        assert_eq!(t.score, 15 + 16);
    }
}
