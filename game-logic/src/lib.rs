//! # emofy-game — the pure core of Emofy
//!
//! Plain data and plain functions: no I/O, no async, no clocks, no randomness
//! of its own (callers pass "now" and random numbers in). Everything the
//! server does with rounds, points, consensus and selection goes through here.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`emotion`] | the seven classes, in their fixed order, with stable names; the top class of a distribution |
//! | [`ids`] | image (SHA-256), player and round identifiers; [`ids::Millis`] time values |
//! | [`round`] | the round state machine: offered → answered, timed out or abandoned |
//! | [`scoring`] | agreement points, speed bonus, streak multiplier, settlement bonuses |
//! | [`class`] | a class of any K-class label set (the emotions, or an external set's ids); fixed-size arrays in JSON |
//! | [`consensus`] | vote counts, the retirement/dispute rule, image status transitions |
//! | [`crowd`] | truth over any class set (2–16): Dawid–Skene with a learned class prior and pooled-matrix shrinkage, batch and online, worker flags judged against the pool |
//! | [`truth`] | Dawid–Skene truth inference: player reliability, copy rates, spam flags, posteriors, gold and decoy schedule |
//! | [`selection`] | the pool of open images and which one a player sees next |
//! | [`account`] | usernames (normalized, case-insensitive) and the password policy (ASVS: length, not composition; no common passwords) |
//! | [`identity`] | display-name validation, roles, and where a caller stands (by the store) |
//! | [`login`] | sign-in abuse limits: the soft lockout with backoff per account |
//! | [`period`] | leaderboard periods and their buckets |
//! | [`plan`] | what an answer and a moderation (of an image or a player) write, decided once for every store; ledger keys |
//! | [`registry`] | the model registry: which version serves, promotion and rollback plans |
//! | [`replay`] | the game's per-answer truth step and truth pass over a label set from elsewhere, label by label |
//! | [`retrain`] | when the background trainer starts a run (new confident labels, interval) and the training lease rule |
//! | [`review`] | the moderators' queue order: disputed first, then doubt × contradiction × trust |
//! | [`rng`] | SplitMix64, the one seedable generator behind every deterministic draw |
//! | [`sim`] | a deterministic crowd simulation with known truth |
//! | [`training`] | the data split, which images train the model (consent first), model metrics and the promotion gate |
//! | [`versus`] | a player's answers against the serving model's guesses, on faces whose truth is settled |

pub mod account;
pub mod class;
pub mod consensus;
pub mod crowd;
pub mod emotion;
pub mod identity;
pub mod ids;
pub mod login;
pub mod period;
pub mod plan;
pub mod registry;
pub mod replay;
pub mod retrain;
pub mod review;
pub mod rng;
pub mod round;
pub mod scoring;
pub mod selection;
pub mod sim;
pub mod training;
pub mod truth;
pub mod versus;

pub use consensus::{ConsensusRule, ImageStatus, ImageTally, Transition, VoteCounts};
pub use emotion::{EMOTION_COUNT, Emotion};
pub use identity::{DisplayName, Role, Standing};
pub use ids::{ImageId, Millis, PlayerId, RoundId};
pub use period::{Bucket, Period};
pub use round::{Round, RoundError, RoundState};
pub use scoring::{Agreement, AnswerFacts, Award, PlayerTally, ScoringRules, SettlementLabel};
pub use selection::{ImagePool, PoolEntry, SettledChecks};
pub use truth::{
    CrowdPrior, Evidence, Judgement, KnownLabel, KnownSource, LabelFact, Moderation, Reliability,
    RoundPlan, Schedule, SpamFlag, SpamRules, TrustRules,
};
