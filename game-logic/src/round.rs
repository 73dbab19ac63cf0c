//! The round state machine: offered → answered | timed out | abandoned.
//!
//! Deadlines are values; the caller passes "now" in. A round accepts exactly
//! one answer, and only while `now <= deadline`.

use serde::{Deserialize, Serialize};

use crate::emotion::Emotion;
use crate::ids::{ImageId, Millis, PlayerId, RoundId};

/// Where a round stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RoundState {
    Offered,
    Answered { answer: Emotion, at: Millis },
    TimedOut,
    Abandoned,
}

impl RoundState {
    /// Short stable name for storage and logs.
    pub fn name(&self) -> &'static str {
        match self {
            RoundState::Offered => "offered",
            RoundState::Answered { .. } => "answered",
            RoundState::TimedOut => "timed_out",
            RoundState::Abandoned => "abandoned",
        }
    }
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoundError {
    #[error("this round was already answered")]
    AlreadyAnswered,
    #[error("the deadline of this round has passed")]
    TooLate,
    #[error("this round was abandoned")]
    Abandoned,
}

/// One image offered to one player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub id: RoundId,
    pub player: PlayerId,
    pub image: ImageId,
    /// The model suggestion the player was shown, if any.
    pub shown: Option<Emotion>,
    pub offered_at: Millis,
    pub deadline: Millis,
    state: RoundState,
}

/// An accepted answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedAnswer {
    pub answer: Emotion,
    /// Milliseconds from offer to answer.
    pub response_ms: u64,
    /// The round's time limit in milliseconds.
    pub time_limit_ms: u64,
}

impl Round {
    /// A new round in the `Offered` state, lasting `time_limit_ms` from `now`.
    pub fn offer(
        id: RoundId,
        player: PlayerId,
        image: ImageId,
        shown: Option<Emotion>,
        now: Millis,
        time_limit_ms: u64,
    ) -> Round {
        Round {
            id,
            player,
            image,
            shown,
            offered_at: now,
            deadline: now.plus(time_limit_ms),
            state: RoundState::Offered,
        }
    }

    pub fn state(&self) -> RoundState {
        self.state
    }

    /// Whether the round still waits for an answer.
    pub fn is_open(&self) -> bool {
        self.state == RoundState::Offered
    }

    /// Accepts `answer` at `now` if the round is open and the deadline has not
    /// passed. An answer after the deadline also closes the round as timed out.
    pub fn answer(&mut self, answer: Emotion, now: Millis) -> Result<AcceptedAnswer, RoundError> {
        match self.state {
            RoundState::Answered { .. } => Err(RoundError::AlreadyAnswered),
            RoundState::TimedOut => Err(RoundError::TooLate),
            RoundState::Abandoned => Err(RoundError::Abandoned),
            RoundState::Offered if now > self.deadline => {
                self.state = RoundState::TimedOut;
                Err(RoundError::TooLate)
            }
            RoundState::Offered => {
                self.state = RoundState::Answered { answer, at: now };
                Ok(AcceptedAnswer {
                    answer,
                    response_ms: now.since(self.offered_at),
                    time_limit_ms: self.deadline.since(self.offered_at),
                })
            }
        }
    }

    /// Closes an open round as timed out if `now` is past its deadline.
    /// Returns whether it changed state.
    pub fn expire(&mut self, now: Millis) -> bool {
        if self.state == RoundState::Offered && now > self.deadline {
            self.state = RoundState::TimedOut;
            true
        } else {
            false
        }
    }

    /// Closes an open round because the player left. Returns whether it changed state.
    pub fn abandon(&mut self) -> bool {
        if self.state == RoundState::Offered {
            self.state = RoundState::Abandoned;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn round() -> Round {
        Round::offer(
            RoundId(Uuid::from_u128(1)),
            PlayerId(Uuid::from_u128(2)),
            ImageId::from_digest([3; 32]),
            Some(Emotion::Happy),
            Millis(1_000),
            15_000,
        )
    }

    #[test]
    fn answer_within_deadline_is_accepted_once() {
        let mut r = round();
        assert_eq!(r.deadline, Millis(16_000));
        let a = r.answer(Emotion::Sad, Millis(4_000));
        assert_eq!(
            a,
            Ok(AcceptedAnswer {
                answer: Emotion::Sad,
                response_ms: 3_000,
                time_limit_ms: 15_000
            })
        );
        assert_eq!(
            r.answer(Emotion::Sad, Millis(4_001)),
            Err(RoundError::AlreadyAnswered)
        );
        assert!(!r.expire(Millis(20_000)));
        assert!(!r.abandon());
    }

    #[test]
    fn answer_exactly_at_deadline_counts_one_ms_later_does_not() {
        let mut r = round();
        assert!(r.answer(Emotion::Fear, Millis(16_000)).is_ok());
        let mut r = round();
        assert_eq!(
            r.answer(Emotion::Fear, Millis(16_001)),
            Err(RoundError::TooLate)
        );
        assert_eq!(r.state(), RoundState::TimedOut);
    }

    #[test]
    fn expiry_and_abandon() {
        let mut r = round();
        assert!(!r.expire(Millis(16_000)));
        assert!(r.expire(Millis(16_001)));
        assert_eq!(
            r.answer(Emotion::Fear, Millis(1_500)),
            Err(RoundError::TooLate)
        );
        let mut r = round();
        assert!(r.abandon());
        assert_eq!(
            r.answer(Emotion::Fear, Millis(1_500)),
            Err(RoundError::Abandoned)
        );
        assert_eq!(r.state().name(), "abandoned");
    }
}
