//! Plans of what to write: the answer transaction and a moderator's decision,
//! decided once, here, for every store.
//!
//! A store *loads* what a plan needs ([`AnswerInputs`]), calls the plan,
//! *applies* its writes inside its own transaction, and, where the plan pays
//! settlement points, reads back the settled players' totals so the plan can
//! finish the score ledger ([`AnswerPlan::changes`]). Nothing in here knows
//! SQL or documents; everything is plain data and is unit- and
//! property-tested without a store.
//!
//! Ledger keys (the idempotency keys every leaderboard write carries) are
//! made by [`LedgerKey`] only.

use serde::{Deserialize, Serialize};

use crate::scoring::{Agreement, AnswerFacts, Award, PlayerTally, ScoringRules, SettlementLabel};
use crate::truth::{
    Answer, Confusion, CrowdPrior, Evidence, ImageFacts, Judgement, KnownLabel, MODEL_PRIOR,
    Reliability, SpamRules, Step, TrustRules, answer_step,
};
use crate::{
    ConsensusRule, EMOTION_COUNT, Emotion, ImageId, ImageStatus, Millis, PlayerId, RoundId,
    Transition, VoteCounts,
};

/// The rules an answer is planned by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GameRules {
    pub consensus: ConsensusRule,
    pub scoring: ScoringRules,
    pub spam: SpamRules,
    pub trust: TrustRules,
}

impl GameRules {
    /// The most counted labels an answer or a moderation reads of one image:
    /// an open image holds at most `max_labels` counted labels, and a
    /// moderator's clearing can bring back at most as many again. Beyond it
    /// nothing is read, whatever an image collected.
    pub fn labels_read_cap(&self) -> u32 {
        self.consensus.max_labels().saturating_mul(2)
    }
}

/// An accepted answer to persist (checked against its round by the session).
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRecord {
    pub round: RoundId,
    pub player: PlayerId,
    pub image: ImageId,
    pub emotion: Emotion,
    pub shown: Option<Emotion>,
    /// The shown suggestion was a deliberate test (a wrong class), not the model's guess.
    pub decoy: bool,
    /// The model's real guess for the image, when it has one.
    pub model_guess: Option<Emotion>,
    pub response_ms: u64,
    pub time_limit_ms: u64,
    pub at: Millis,
}

/// Why points were awarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreReason {
    Answer,
    Consensus,
}

impl ScoreReason {
    /// The wire name (`answer`, `consensus`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreReason::Answer => "answer",
            ScoreReason::Consensus => "consensus",
        }
    }

    /// Parses a stored reason.
    pub fn parse(s: &str) -> Option<ScoreReason> {
        match s {
            "answer" => Some(ScoreReason::Answer),
            "consensus" => Some(ScoreReason::Consensus),
            _ => None,
        }
    }
}

/// The idempotency keys of score changes: the same change is never applied
/// twice, by any replica, however often it is retried or replayed.
pub struct LedgerKey;

impl LedgerKey {
    /// The points of an answer: `answer:<round>`.
    pub fn answer(round: RoundId) -> String {
        format!("answer:{round}")
    }

    /// A player's settlement on an image: `settle:<image>:<player>`.
    pub fn settle(image: ImageId, player: PlayerId) -> String {
        format!("settle:{image}:{player}")
    }

    /// The image a settlement key is about (`None` for other keys).
    pub fn settled_image(key: &str) -> Option<ImageId> {
        let rest = key.strip_prefix("settle:")?;
        rest.split(':').next()?.parse().ok()
    }
}

/// A change to a player's score, for leaderboards and the score ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreChange {
    pub player: PlayerId,
    pub name: String,
    pub delta: u32,
    /// The player's total after the change (the store's truth).
    pub total: u64,
    /// Idempotency key ([`LedgerKey`]).
    pub key: String,
    pub at: Millis,
    pub reason: ScoreReason,
}

/// What recording an answer did, atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerOutcome {
    pub award: Award,
    pub tally: PlayerTally,
    pub votes: VoteCounts,
    pub status: ImageStatus,
    pub transition: Transition,
    /// The image's posterior over the seven classes after this answer.
    pub posterior: [f64; EMOTION_COUNT],
    /// The verified label, when this was a gold round.
    pub gold: Option<Emotion>,
    /// The label the image came with (demo, dataset), shown after answering.
    pub known: Option<KnownLabel>,
    /// Whether the player's labels count (not flagged or banned).
    pub counted: bool,
    /// Every score change this answer caused (its own award and any settlement).
    pub changes: Vec<ScoreChange>,
}

impl AnswerOutcome {
    /// Whether the answer's points wait for a consensus.
    pub fn pending(&self) -> bool {
        self.award.agreement == Agreement::FirstOpinion
    }
}

/// A label already on the image whose player counts, with the player's reliability.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierLabel {
    pub player: PlayerId,
    pub answer: Emotion,
    pub shown: Option<Emotion>,
    pub decoy: bool,
    pub reliability: Reliability,
}

/// The round as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRound {
    pub player: PlayerId,
    pub image: ImageId,
    /// Still offered (not answered, timed out or abandoned).
    pub open: bool,
}

impl StoredRound {
    /// Whether this round takes `a` (open, and offered to this player for this image).
    pub fn takes(&self, a: &AnswerRecord) -> bool {
        self.open && self.player == a.player && self.image == a.image
    }
}

/// The image as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredImage {
    pub votes: VoteCounts,
    pub status: ImageStatus,
    /// The verified label (a gold image).
    pub gold: Option<Emotion>,
    /// The model's guess kept with the image.
    pub model_guess: Option<Emotion>,
    /// The label the image came with (a demo face's drawn emotion, a
    /// dataset's label): a prior on its truth, never a vote.
    pub known: Option<KnownLabel>,
}

/// Everything an answer's plan reads, loaded by the store in its transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerInputs {
    pub round: Option<StoredRound>,
    pub image: Option<StoredImage>,
    /// The answering player's name and totals.
    pub player: Option<(String, PlayerTally)>,
    /// The labels on the image of players whose labels count (the store may
    /// leave the others out: they change nothing).
    pub earlier: Vec<EarlierLabel>,
    /// The answering player's reliability before this answer.
    pub me: Option<Reliability>,
    /// The serving model's reliability record (its confusion matrix).
    pub model: Option<Reliability>,
    /// What the last truth pass learned about the crowd (default before any).
    pub crowd: Option<CrowdPrior>,
}

impl AnswerInputs {
    /// The inputs when the round does not take the answer: nothing else is
    /// worth reading, the plan refuses it.
    pub fn round_only(round: Option<StoredRound>) -> AnswerInputs {
        AnswerInputs {
            round,
            image: None,
            player: None,
            earlier: Vec::new(),
            me: None,
            model: None,
            crowd: None,
        }
    }
}

/// Why an answer cannot be recorded (nothing is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRefusal {
    /// No such round for this player and image.
    RoundNotFound,
    /// The round was answered, timed out or abandoned, or its image was withdrawn.
    RoundClosed,
    ImageNotFound,
    PlayerNotFound,
}

/// The label row to insert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewLabel {
    pub round: RoundId,
    pub image: ImageId,
    pub player: PlayerId,
    pub emotion: Emotion,
    pub shown: Option<Emotion>,
    pub response_ms: u64,
    pub at: Millis,
    pub points: u32,
    pub decoy: bool,
    pub gold: bool,
    /// Whether the label counts (its player's labels count after this answer).
    pub counted: bool,
}

/// What the image becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageWrite {
    pub votes: VoteCounts,
    pub status: ImageStatus,
    pub posterior: [f64; EMOTION_COUNT],
    pub model_guess: Option<Emotion>,
}

/// Every write of one answer, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerPlan {
    pub label: NewLabel,
    pub image: ImageWrite,
    /// The answering player's reliability after this answer.
    pub me: Reliability,
    /// The model's reliability record, when this answer closed the image.
    pub model: Option<Reliability>,
    /// The answering player's totals after the award (before any settlement
    /// below, which the store adds as increments).
    pub tally: PlayerTally,
    /// Whether the award moves the player's "score reached at" time.
    pub scored: bool,
    /// The round closes as answered with this emotion, at `label.at`.
    pub round_answer: Emotion,
    /// Settlement points, one increment per player (the image retired now).
    pub settle: Vec<(PlayerId, u32)>,
    /// `Some(counts)` when this answer changed whether the player's labels
    /// count (the spam rules flagged them, or lifted a flag): every label of
    /// theirs is marked so; stores read only counted labels.
    pub recount: Option<bool>,
    pub award: Award,
    pub judgement: Judgement,
    pub gold: Option<Emotion>,
    /// The label the image came with, shown to the player with the result.
    pub known: Option<KnownLabel>,
    name: String,
}

/// Plans one answer: validates it against its round, runs truth inference,
/// scores it, settles a retiring image. Pure: the same inputs, the same plan.
pub fn plan_answer(
    inputs: AnswerInputs,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<AnswerPlan, AnswerRefusal> {
    let round = inputs.round.ok_or(AnswerRefusal::RoundNotFound)?;
    if round.player != a.player || round.image != a.image {
        return Err(AnswerRefusal::RoundNotFound);
    }
    if !round.takes(a) {
        return Err(AnswerRefusal::RoundClosed);
    }
    let image = inputs.image.ok_or(AnswerRefusal::ImageNotFound)?;
    if image.status == ImageStatus::Removed {
        // Withdrawn (e.g. its contributor deleted it) while the round was open.
        return Err(AnswerRefusal::RoundClosed);
    }
    let (name, before) = inputs.player.ok_or(AnswerRefusal::PlayerNotFound)?;
    let model_guess = image.model_guess.or(a.model_guess);
    let known = image.known.filter(|_| rules.trust.known_labels);
    let crowd = inputs.crowd.unwrap_or_default();
    let me = inputs.me.unwrap_or_else(|| crowd.newcomer());
    let earlier: Vec<EarlierLabel> = inputs
        .earlier
        .into_iter()
        .filter(|l| l.player != a.player && l.reliability.counts())
        .collect();
    let model_record = inputs
        .model
        .unwrap_or_else(|| Reliability::new(MODEL_PRIOR));
    let facts = ImageFacts {
        status: image.status,
        gold: image.gold,
        prior: crowd.image_prior(known.map(|k| (k.label, rules.trust.trust_of(k.source)))),
        model: model_guess.map(|g| (&model_record.matrix, g)),
        known: known.is_some(),
    };
    let ev: Vec<Evidence<'_>> = earlier
        .iter()
        .map(|l| Evidence {
            reliability: &l.reliability,
            answer: l.answer,
            shown: l.shown,
        })
        .collect();
    let Step {
        judgement,
        learned,
        checked,
    } = answer_step(
        &rules.consensus,
        &rules.trust,
        &rules.spam,
        &crowd.class_prior,
        &facts,
        &ev,
        &me,
        &Answer {
            answer: a.emotion,
            shown: a.shown,
            decoy: a.decoy,
            response_ms: a.response_ms,
        },
    );
    let closed = judgement.transition != Transition::None;
    let model = match (closed, model_guess) {
        (true, Some(g)) => {
            let mut m: Confusion = model_record.matrix.clone();
            m.observe(&judgement.posterior, g);
            Some(Reliability {
                matrix: m,
                ..model_record
            })
        }
        _ => None,
    };
    // What the answer is scored against: the verified label; else the
    // answer known before it from what players cannot fake (the label the
    // image came with, established players); else the votes of the labels
    // that count, so flagged accounts cannot outvote an honest newcomer.
    // (`reference` is the verified label on a gold image.)
    let award_prior = match (checked, known) {
        (Some(g), _) => VoteCounts::default().with_vote(g),
        (None, Some(k)) => counted_votes(&earlier).with_vote(k.label),
        (None, None) => counted_votes(&earlier),
    };
    let award = rules.scoring.score_answer(&AnswerFacts {
        answer: a.emotion,
        prior: award_prior,
        response_ms: a.response_ms,
        time_limit_ms: a.time_limit_ms,
        streak: before.streak,
    });
    let mut tally = before;
    tally.apply_award(&award);
    let recount = (learned.counts() != me.counts()).then_some(learned.counts());
    let mut settle = Vec::new();
    if let Transition::Retired { label } = judgement.transition {
        let mut labels = settlement_of(&earlier);
        if me.counts() {
            labels.push(SettlementLabel {
                player: a.player,
                answer: a.emotion,
                shown: if a.decoy { None } else { a.shown },
            });
        }
        settle = rules.scoring.settle(label, &labels).into_iter().collect();
    }
    Ok(AnswerPlan {
        label: NewLabel {
            round: a.round,
            image: a.image,
            player: a.player,
            emotion: a.emotion,
            shown: a.shown,
            response_ms: a.response_ms,
            at: a.at,
            points: award.points,
            decoy: a.decoy,
            gold: image.gold.is_some(),
            counted: learned.counts(),
        },
        image: ImageWrite {
            votes: image.votes.with_vote(a.emotion),
            status: judgement.status,
            posterior: judgement.posterior,
            model_guess,
        },
        me: learned,
        model,
        tally,
        scored: award.points > 0,
        round_answer: a.emotion,
        settle,
        recount,
        award,
        judgement,
        gold: image.gold,
        known,
        name,
    })
}

/// The votes of the labels that count.
fn counted_votes(labels: &[EarlierLabel]) -> VoteCounts {
    labels
        .iter()
        .filter(|l| l.reliability.counts())
        .fold(VoteCounts::default(), |v, l| v.with_vote(l.answer))
}

/// The labels that settle when an image retires: those of players whose
/// labels count; decoy rounds carry no correction bonus (their suggestion
/// was not the model's guess).
pub fn settlement_of(labels: &[EarlierLabel]) -> Vec<SettlementLabel> {
    labels
        .iter()
        .filter(|l| l.reliability.counts())
        .map(|l| SettlementLabel {
            player: l.player,
            answer: l.answer,
            shown: if l.decoy { None } else { l.shown },
        })
        .collect()
}

/// A settled player's name and total after the settlement increments, as the
/// store reads them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledTotal {
    pub player: PlayerId,
    pub name: String,
    pub total: u64,
}

impl AnswerPlan {
    /// The score changes, in ledger order: the answer's own award, then one
    /// settlement per settled player (with the totals the store read back
    /// after applying [`AnswerPlan::settle`]).
    pub fn changes(&self, settled: &[SettledTotal]) -> Vec<ScoreChange> {
        let mut out = Vec::with_capacity(1 + self.settle.len());
        if self.award.points > 0 {
            out.push(ScoreChange {
                player: self.label.player,
                name: self.name.clone(),
                delta: self.award.points,
                total: self.tally.score,
                key: LedgerKey::answer(self.label.round),
                at: self.label.at,
                reason: ScoreReason::Answer,
            });
        }
        for (p, pts) in &self.settle {
            let (name, total) = settled
                .iter()
                .find(|s| s.player == *p)
                .map(|s| (s.name.clone(), s.total))
                .unwrap_or_default();
            out.push(ScoreChange {
                player: *p,
                name,
                delta: *pts,
                total,
                key: LedgerKey::settle(self.label.image, *p),
                at: self.label.at,
                reason: ScoreReason::Consensus,
            });
        }
        out
    }

    /// What the answer did, for the player and the actors.
    pub fn outcome(&self, changes: Vec<ScoreChange>) -> AnswerOutcome {
        let mut tally = self.tally;
        for (p, pts) in &self.settle {
            if *p == self.label.player {
                tally.add_points(*pts);
            }
        }
        AnswerOutcome {
            award: self.award,
            tally,
            votes: self.image.votes,
            status: self.image.status,
            transition: self.judgement.transition,
            posterior: self.judgement.posterior,
            gold: self.gold,
            known: self.known,
            counted: self.me.counts(),
            changes,
        }
    }
}

/// What a moderator does to an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageAction {
    /// The crowd's answer (the posterior's top class) is right: it becomes the verified label.
    Accept,
    /// The right label is another: it becomes the verified label.
    Override {
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "sad"))]
        label: Emotion,
    },
    /// Not a usable face (`not_a_face`, `inappropriate`, …): out of play.
    Flag {
        #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
        reason: String,
    },
}

impl ImageAction {
    /// The audit and metrics name: `accept`, `override`, `flag_image`.
    pub fn name(&self) -> &'static str {
        match self {
            ImageAction::Accept => "accept",
            ImageAction::Override { .. } => "override",
            ImageAction::Flag { .. } => "flag_image",
        }
    }
}

/// What a moderator does to a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlayerAction {
    /// Their labels never count.
    Ban,
    /// Their labels count even if the automatic spam rules flag them.
    Clear,
    /// Back to the automatic rules.
    Reset,
}

impl PlayerAction {
    /// The audit and metrics name: `ban`, `clear`, `reset`.
    pub fn name(self) -> &'static str {
        match self {
            PlayerAction::Ban => "ban",
            PlayerAction::Clear => "clear",
            PlayerAction::Reset => "reset",
        }
    }

    /// The moderator's decision it records.
    pub fn moderation(self) -> crate::Moderation {
        match self {
            PlayerAction::Ban => crate::Moderation::Banned,
            PlayerAction::Clear => crate::Moderation::Cleared,
            PlayerAction::Reset => crate::Moderation::None,
        }
    }

    /// Records the decision on the player's reliability; `Some(counts)` when
    /// it changed whether their labels count (the store marks every label of
    /// theirs so).
    pub fn apply(self, r: &mut Reliability) -> Option<bool> {
        let before = r.counts();
        r.moderation = self.moderation();
        (r.counts() != before).then_some(r.counts())
    }
}

/// What the audit log records of a player moderation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerModerationDetail {
    /// The moderator's decision before this one (`none`, `banned`, `cleared`).
    pub before: &'static str,
    /// The automatic spam flag at the time, if any.
    pub flag: Option<&'static str>,
}

/// Every write of a player moderation.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerModerationPlan {
    /// The reliability to store.
    pub reliability: Reliability,
    /// `Some(counts)`: mark every label of the player so.
    pub recount: Option<bool>,
    pub detail: PlayerModerationDetail,
}

/// Plans a moderator's decision on a player from their current reliability.
pub fn plan_player_moderation(action: PlayerAction, current: Reliability) -> PlayerModerationPlan {
    let mut reliability = current;
    let before = reliability.moderation.as_str();
    let recount = action.apply(&mut reliability);
    PlayerModerationPlan {
        detail: PlayerModerationDetail {
            before,
            flag: reliability.flag.map(|f| f.as_str()),
        },
        reliability,
        recount,
    }
}

/// What the audit log records of an image moderation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModerationDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Emotion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub before: &'static str,
    /// The crowd's class, when the moderator overrode it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crowd: Option<Option<Emotion>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_gold: Option<Emotion>,
}

/// Why a moderation cannot be done (nothing is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModerationRefusal {
    /// The image is out of play.
    Removed,
    /// Accept with nobody having labelled the image.
    Unlabelled,
}

/// Every write of an image moderation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationPlan {
    pub image: ImageId,
    pub status: ImageStatus,
    /// The verified label after the decision.
    pub gold: Option<Emotion>,
    pub detail: ModerationDetail,
    /// Settlement increments, keyed: the image retires now, its labellers are paid once.
    pub settle: Vec<(PlayerId, u32, String)>,
    pub at: Millis,
}

/// What a moderation's plan reads, loaded by the store in its transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationInputs {
    pub image: ImageId,
    pub status: ImageStatus,
    pub posterior: Option<[f64; EMOTION_COUNT]>,
    /// The verified label before the decision.
    pub gold: Option<Emotion>,
    /// The labels of the image's counted players.
    pub labels: Vec<EarlierLabel>,
}

/// Plans a moderator's decision on an image: the new status and verified
/// label, the audit detail and, when the image retires now, who is paid.
pub fn plan_moderation(
    inputs: ModerationInputs,
    action: &ImageAction,
    rules: &GameRules,
    at: Millis,
) -> Result<ModerationPlan, ModerationRefusal> {
    let ModerationInputs {
        image,
        status: before,
        posterior,
        gold: previous_gold,
        labels,
    } = inputs;
    if before == ImageStatus::Removed {
        return Err(ModerationRefusal::Removed);
    }
    let crowd = posterior.map(|p| crate::truth::map(&p).0);
    let (status, gold, mut detail) = match action {
        ImageAction::Accept => {
            let label = crowd.ok_or(ModerationRefusal::Unlabelled)?;
            (
                ImageStatus::Retired { label },
                Some(label),
                ModerationDetail {
                    label: Some(label),
                    reason: None,
                    before: before.name(),
                    crowd: None,
                    previous_gold: None,
                },
            )
        }
        ImageAction::Override { label } => (
            ImageStatus::Retired { label: *label },
            Some(*label),
            ModerationDetail {
                label: Some(*label),
                reason: None,
                before: before.name(),
                crowd: Some(crowd),
                previous_gold: None,
            },
        ),
        ImageAction::Flag { reason } => (
            ImageStatus::Removed,
            None,
            ModerationDetail {
                label: None,
                reason: Some(reason.clone()),
                before: before.name(),
                crowd: None,
                previous_gold: None,
            },
        ),
    };
    detail.previous_gold = previous_gold;
    let mut settle = Vec::new();
    if let (ImageStatus::Retired { label }, false) =
        (status, matches!(before, ImageStatus::Retired { .. }))
    {
        // The image retires now: its labellers settle as if the crowd had decided.
        settle = rules
            .scoring
            .settle(label, &settlement_of(&labels))
            .into_iter()
            .map(|(p, pts)| (p, pts, LedgerKey::settle(image, p)))
            .collect();
    }
    Ok(ModerationPlan {
        image,
        status,
        gold,
        detail,
        settle,
        at,
    })
}

impl ModerationPlan {
    /// The score changes of the settlements the store applied (a key already
    /// in the ledger was paid before and is skipped by the store), with the
    /// totals it read back.
    pub fn changes(&self, paid: &[SettledTotal]) -> Vec<ScoreChange> {
        self.settle
            .iter()
            .filter_map(|(p, pts, key)| {
                let s = paid.iter().find(|s| s.player == *p)?;
                Some(ScoreChange {
                    player: *p,
                    name: s.name.clone(),
                    delta: *pts,
                    total: s.total,
                    key: key.clone(),
                    at: self.at,
                    reason: ScoreReason::Consensus,
                })
            })
            .collect()
    }
}
