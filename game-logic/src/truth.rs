//! Truth inference: who to trust, and what an image shows (Dawid–Skene).
//!
//! Each player has a confusion matrix: row *t* is the distribution of the
//! answers they give when the truth is *t*. It starts from a Dirichlet
//! prior (a moderately reliable player) and learns from every label, weighted
//! by the current belief about the image's true class (soft EM, online). An
//! image's posterior over the seven classes combines a class prior with the
//! likelihood of each of its labels under its labeler's matrix. Gold images
//! (moderator-verified) have a known truth and teach the matrices exactly.
//!
//! Written once for any class set ([`crate::class`]): the game uses the
//! seven emotions (the defaults of every type here), `emofy aggregate` the
//! classes of a label set brought from elsewhere, through the same steps.
//!
//! Costs are constant per label: a posterior over at most `max_labels`
//! labels and a 7-entry matrix update. [`em`] runs the full batch EM over a
//! set of labels for the periodic correction pass.

use serde::{Deserialize, Serialize};

use crate::class::{Class, arrays, top, uniform};
use crate::consensus::{ConsensusRule, ImageStatus, Transition};
use crate::crowd::Matrix;
use crate::{EMOTION_COUNT, Emotion};

/// The game's class count: the default `K` of every type here.
const G: usize = EMOTION_COUNT;

/// Pseudo-counts of a new player's matrix: `diagonal` on each row's correct
/// answer, `off_diagonal` on each wrong one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatrixPrior {
    pub diagonal: f64,
    pub off_diagonal: f64,
}

impl Default for MatrixPrior {
    /// About 70% accurate at first, worth 32 labels of evidence per row.
    /// A player labels a few dozen images, spread over seven rows: a weak
    /// prior lets 49 free parameters chase noise. Measured in the crowd
    /// simulation (5 seeds, copiers at p = 0.7): weight 4 gave 0.884,
    /// 16 gave 0.900, 32 gave 0.912, 64 gave 0.909.
    fn default() -> Self {
        MatrixPrior {
            diagonal: 22.4,
            off_diagonal: 1.6,
        }
    }
}

/// A player's confusion matrix, as Dirichlet pseudo-counts per row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion<const K: usize = G> {
    #[serde(with = "arrays::square")]
    counts: [[f64; K]; K],
}

impl<const K: usize> Confusion<K> {
    pub fn new(prior: MatrixPrior) -> Confusion<K> {
        let mut counts = [[prior.off_diagonal.max(1e-6); K]; K];
        for (t, row) in counts.iter_mut().enumerate() {
            row[t] = prior.diagonal.max(1e-6);
        }
        Confusion { counts }
    }

    /// P(answer | truth) for every answer: the row's mean, summing to 1.
    pub fn row<C: Class>(&self, truth: C) -> [f64; K] {
        let row = &self.counts[truth.index()];
        let sum: f64 = row.iter().sum();
        let mut out = [0.0; K];
        for (o, c) in out.iter_mut().zip(row) {
            *o = c / sum;
        }
        out
    }

    /// P(answer | truth).
    pub fn p<C: Class>(&self, truth: C, answer: C) -> f64 {
        self.p_at(truth.index(), answer.index())
    }

    /// P(answer | truth) by class index.
    fn p_at(&self, truth: usize, answer: usize) -> f64 {
        let row = &self.counts[truth];
        row[answer] / row.iter().sum::<f64>()
    }

    /// Learns from one label: the answer counts towards each possible truth
    /// in proportion to `belief` (a posterior; one-hot for gold).
    pub fn observe<C: Class>(&mut self, belief: &[f64; K], answer: C) {
        for (t, w) in belief.iter().enumerate() {
            if w.is_finite() && *w > 0.0 {
                self.counts[t][answer.index()] += w;
            }
        }
    }

    /// Adds expected answer counts to row `truth`.
    fn observe_row(&mut self, truth: usize, answers: &[f64; K]) {
        if let Some(row) = self.counts.get_mut(truth) {
            for (c, x) in row.iter_mut().zip(answers) {
                if x.is_finite() && *x > 0.0 {
                    *c += x;
                }
            }
        }
    }

    /// Takes back an earlier [`Confusion::observe`] (before re-learning the
    /// label with a newer belief), never going below `floor` pseudo-counts.
    pub fn unobserve<C: Class>(&mut self, belief: &[f64; K], answer: C, floor: f64) {
        for (t, w) in belief.iter().enumerate() {
            if w.is_finite() && *w > 0.0 {
                let c = &mut self.counts[t][answer.index()];
                *c = (*c - w).max(floor.max(1e-6));
            }
        }
    }

    /// Expected accuracy over a uniform truth: the mean of the diagonal.
    pub fn accuracy(&self) -> f64 {
        (0..K).map(|t| self.p_at(t, t)).sum::<f64>() / K as f64
    }

    /// The matrix's means as the K-class core's [`Matrix`].
    pub fn means(&self) -> Matrix {
        Matrix::from_rows(
            self.counts
                .iter()
                .map(|row| {
                    let sum: f64 = row.iter().sum();
                    row.iter().map(|c| c / sum).collect()
                })
                .collect(),
        )
    }

    /// A newcomer's matrix: `strength` pseudo-labels per row shaped like `rows`.
    pub fn centred(rows: &[[f64; K]; K], strength: f64) -> Confusion<K> {
        let s = strength.max(1e-6);
        let mut counts = [[0.0; K]; K];
        for (c, r) in counts.iter_mut().zip(rows) {
            let sum: f64 = r.iter().sum::<f64>().max(1e-12);
            for (x, p) in c.iter_mut().zip(r) {
                *x = (s * p / sum).max(1e-6);
            }
        }
        Confusion { counts }
    }
}

/// What the truth pass learned about the whole crowd, kept with the
/// reliabilities and read by every answer: the class prior (a pool of
/// mostly happy faces gets a prior that says so), the pooled confusion
/// matrix a newcomer is assumed to share, and how many labels' worth of
/// evidence that assumption is (chosen on held-out labels, see
/// [`crate::crowd::choose_strength`]).
///
/// A missing field reads as its default (serde's container `default` does
/// not take const generics, so each field says so).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrowdPrior<const K: usize = G> {
    #[serde(with = "arrays", default = "uniform")]
    pub class_prior: [f64; K],
    /// Row `t`: the crowd's answers when the truth is `t` (each sums to 1).
    #[serde(with = "arrays::square", default = "default_pooled")]
    pub pooled: [[f64; K]; K],
    #[serde(default = "default_strength")]
    pub strength: f64,
}

/// A 70%-accurate crowd.
fn default_pooled<const K: usize>() -> [[f64; K]; K] {
    let off = 0.3 / K.saturating_sub(1).max(1) as f64;
    let mut pooled = [[off; K]; K];
    for (t, row) in pooled.iter_mut().enumerate() {
        row[t] = 0.7;
    }
    pooled
}

/// The real crowds' choice: four pseudo-labels per row.
fn default_strength() -> f64 {
    4.0
}

impl<const K: usize> Default for CrowdPrior<K> {
    /// Before any pass: uniform classes, a 70%-accurate crowd, and the
    /// real crowds' choice of strength (four pseudo-labels per row).
    fn default() -> Self {
        CrowdPrior {
            class_prior: uniform(),
            pooled: default_pooled(),
            strength: default_strength(),
        }
    }
}

impl<const K: usize> CrowdPrior<K> {
    /// A player nobody knows yet: the crowd's matrix at `strength`.
    pub fn newcomer(&self) -> Reliability<K> {
        Reliability {
            matrix: Confusion::centred(&self.pooled, self.strength),
            ..Reliability::new(MatrixPrior::default())
        }
    }

    /// The prior over one image's class: the class prior, and a label the
    /// image came with (its source's drawn or dataset label) as one more
    /// labeller right with probability `trust`.
    pub fn image_prior<C: Class>(&self, known: Option<(C, f64)>) -> [f64; K] {
        let mut p = self.class_prior;
        if let Some((label, trust)) = known {
            let trust = trust.clamp(1.0 / K as f64, 1.0 - 1e-6);
            let off = (1.0 - trust) / K.saturating_sub(1).max(1) as f64;
            for (t, x) in p.iter_mut().enumerate() {
                *x *= if t == label.index() { trust } else { off };
            }
        }
        let sum: f64 = p.iter().sum();
        if !(sum.is_finite() && sum > 0.0) {
            return uniform();
        }
        p.map(|x| x / sum)
    }
}

/// The posterior over the true class of an image, from a class prior and
/// its labels (each with its labeler's matrix). Computed in log space; sums to 1.
pub fn posterior<'a, C: Class, const K: usize>(
    class_prior: &[f64; K],
    labels: impl IntoIterator<Item = (&'a Confusion<K>, C)>,
) -> [f64; K] {
    posterior_copying(
        class_prior,
        labels.into_iter().map(|(m, a)| (m, 0.0, a, None)),
    )
}

/// P(answer | truth) for a player who copies the shown suggestion with
/// probability `copy` and otherwise answers by their matrix.
fn likelihood<C: Class, const K: usize>(
    m: &Confusion<K>,
    copy: f64,
    truth: usize,
    answer: C,
    shown: Option<C>,
) -> f64 {
    let copy = copy.clamp(0.0, 0.99);
    let own = (1.0 - copy) * m.p_at(truth, answer.index());
    if shown == Some(answer) {
        copy + own
    } else {
        own
    }
}

/// The posterior with copying taken into account: each label is
/// (matrix, copy rate, answer, shown suggestion). A label that repeats the
/// suggestion is explained partly by copying, so it counts for less the
/// more its player copies; a label against the suggestion counts in full.
pub fn posterior_copying<'a, C: Class, const K: usize>(
    class_prior: &[f64; K],
    labels: impl IntoIterator<Item = (&'a Confusion<K>, f64, C, Option<C>)>,
) -> [f64; K] {
    posterior_weighted(
        class_prior,
        labels.into_iter().map(|(m, c, a, s)| (m, c, a, s, 1.0)),
    )
}

/// [`posterior_copying`] with a weight per label (a tempered likelihood:
/// a label of weight ½ moves the odds half as far, in log space).
pub fn posterior_weighted<'a, C: Class, const K: usize>(
    class_prior: &[f64; K],
    labels: impl IntoIterator<Item = (&'a Confusion<K>, f64, C, Option<C>, f64)>,
) -> [f64; K] {
    let mut log = [0.0f64; K];
    for (l, p) in log.iter_mut().zip(class_prior) {
        *l = p.max(1e-12).ln();
    }
    for (m, copy, answer, shown, w) in labels {
        let w = if w.is_finite() {
            w.clamp(0.0, 1.0)
        } else {
            0.0
        };
        for (t, l) in log.iter_mut().enumerate() {
            *l += w * likelihood(m, copy, t, answer, shown).max(1e-12).ln();
        }
    }
    normalize_log(&log)
}

/// A gold image's posterior: certain.
pub fn gold<C: Class, const K: usize>(truth: C) -> [f64; K] {
    let mut out = [0.0; K];
    out[truth.index()] = 1.0;
    out
}

fn normalize_log<const K: usize>(log: &[f64; K]) -> [f64; K] {
    let max = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut out = [0.0; K];
    let mut sum = 0.0;
    for (o, l) in out.iter_mut().zip(log) {
        *o = (l - max).exp();
        sum += *o;
    }
    for o in &mut out {
        *o /= sum;
    }
    out
}

/// The most probable class and its probability.
pub use crate::emotion::map;

/// The uniform prior over the emotions.
pub const UNIFORM: [f64; G] = [1.0 / G as f64; G];

/// Why a player's labels stopped counting (automatic; a moderator can clear it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpamFlag {
    /// Most answers came faster than a person can look at a face.
    TooFast,
    /// Nearly every answer was the same button, more than the pool's share
    /// of that class explains: the answers say next to nothing about the face.
    SameButton,
    /// Follows the suggestion even when it is a test (decoy), or always.
    AlwaysCopies,
    /// Right no more often than random guessing on faces whose answer was
    /// known before theirs (verified, a source's label, or the established
    /// crowd's): the sign of a throwaway account voting a line.
    ChanceOnGold,
}

impl SpamFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            SpamFlag::TooFast => "too_fast",
            SpamFlag::SameButton => "same_button",
            SpamFlag::AlwaysCopies => "always_copies",
            SpamFlag::ChanceOnGold => "chance_on_gold",
        }
    }

    /// What a moderator reads.
    pub fn explain(self) -> &'static str {
        match self {
            SpamFlag::TooFast => "most answers came faster than a person can look at a face",
            SpamFlag::SameButton => {
                "nearly every answer was the same emotion, far more often than this pool shows it"
            }
            SpamFlag::AlwaysCopies => "follows the shown suggestion even when it is a test",
            SpamFlag::ChanceOnGold => {
                "no better than random guessing on faces whose answer was already known"
            }
        }
    }
}

/// What a moderator decided about a player, overriding the automatic flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moderation {
    /// No decision: automatic flags apply.
    #[default]
    None,
    /// Labels never count.
    Banned,
    /// Labels count even if the automatic rules flag the player.
    Cleared,
}

impl Moderation {
    /// The stored name: `none`, `banned`, `cleared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Moderation::None => "none",
            Moderation::Banned => "banned",
            Moderation::Cleared => "cleared",
        }
    }
}

/// Thresholds of the automatic spam and bot detection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpamRules {
    /// Answers faster than this (ms) are too fast to be a person looking.
    pub min_human_ms: u64,
    /// Share of too-fast answers that flags a player…
    pub fast_share: f64,
    /// …once they have at least this many answers (also for `same_button_share`).
    pub min_answers: u32,
    /// Share of answers on one button that makes a player a same-button
    /// suspect, flagged when their matrix carries less than
    /// `min_informativeness` of what an answer could tell (judged against
    /// the pool's class prior: pressing "happy" 90% of the time is honest on
    /// a pool that is 90% happy).
    pub same_button_share: f64,
    pub min_informativeness: f64,
    /// Share of decoys followed that flags a player, once they saw `min_decoys`.
    pub decoy_follow_share: f64,
    pub min_decoys: u32,
    /// Checked answers (on faces whose answer was known before theirs)
    /// needed before "chance on gold" can flag…
    pub min_gold: u32,
    /// …which it does once the checks are `evidence_odds` times likelier
    /// from random guessing than from an honest player `honest_accuracy`
    /// right (a sequential likelihood-ratio test: it lifts again when later
    /// answers are right).
    pub honest_accuracy: f64,
    pub evidence_odds: f64,
}

impl Default for SpamRules {
    fn default() -> Self {
        SpamRules {
            min_human_ms: 300,
            fast_share: 0.5,
            min_answers: 15,
            same_button_share: 0.9,
            min_informativeness: 0.15,
            decoy_follow_share: 0.8,
            min_decoys: 5,
            min_gold: 4,
            honest_accuracy: 0.6,
            evidence_odds: 19.0,
        }
    }
}

/// How much a player's word weighs before they have shown they can be
/// trusted, and how far the labels images came with are trusted. Guests are
/// free, so one person can be forty players: a newcomer's labels count, but
/// for less, until enough of their answers agreed with an answer known
/// before theirs; and an image never retires on newcomers' word alone.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustRules {
    /// A newcomer's labels weigh this share of an established player's…
    pub newcomer_weight: f64,
    /// …growing to full weight once this many of their answers were right
    /// on a checked face (gold, a source's label, or the established crowd).
    pub checks_to_trust: u32,
    /// …and stay established only while at least this share of all their
    /// checked answers is right (trust earned honestly and then spent on
    /// lies is lost again).
    pub min_check_accuracy: f64,
    /// A face is checked when the answer known before the player's (from
    /// gold, its source's label, the model and established players only) is
    /// at least this probable.
    pub check_confidence: f64,
    /// An open image retires only with at least this many established
    /// players' labels for its class.
    pub min_established: u32,
    /// Use the labels images came with (below) as priors on their truth
    /// and as a first vote to score against.
    pub known_labels: bool,
    /// How far a label an image came with is trusted: the demo faces' drawn
    /// emotion…
    pub demo_label_trust: f64,
    /// …and an imported dataset's label (a dataset is not a moderator).
    pub dataset_label_trust: f64,
}

impl Default for TrustRules {
    fn default() -> Self {
        TrustRules {
            newcomer_weight: 0.3,
            checks_to_trust: 3,
            min_check_accuracy: 0.3,
            check_confidence: 0.75,
            min_established: 1,
            known_labels: true,
            demo_label_trust: 0.95,
            dataset_label_trust: 0.8,
        }
    }
}

/// Where a label an image came with is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownSource {
    /// The emotion a demo face was drawn with.
    Demo,
    /// An imported dataset's label.
    Dataset,
}

impl KnownSource {
    pub fn as_str(self) -> &'static str {
        match self {
            KnownSource::Demo => "demo",
            KnownSource::Dataset => "dataset",
        }
    }
}

/// A label an image came with, and where from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownLabel {
    pub label: Emotion,
    pub source: KnownSource,
}

impl TrustRules {
    /// How far a known label is trusted.
    pub fn trust_of(&self, source: KnownSource) -> f64 {
        match source {
            KnownSource::Demo => self.demo_label_trust,
            KnownSource::Dataset => self.dataset_label_trust,
        }
    }
}

/// Everything known about how far to trust one player: the confusion
/// matrix, the copy-rate evidence from decoys, the spam signals, gold
/// accuracy and a moderator's decision. Stored per player; updated by
/// [`Reliability::learn`] with every label, in the answer's transaction.
///
/// A missing field reads as a new player's (see [`CrowdPrior`] on serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability<const K: usize = G> {
    #[serde(default)]
    pub matrix: Confusion<K>,
    #[serde(default)]
    pub answers: u32,
    /// Answers faster than [`SpamRules::min_human_ms`].
    #[serde(default)]
    pub fast: u32,
    /// Answers per class.
    #[serde(with = "arrays", default = "zeros")]
    pub buttons: [u32; K],
    /// Rounds with a suggestion, and how often the answer was the suggestion.
    #[serde(default)]
    pub suggested: u32,
    #[serde(default)]
    pub followed: u32,
    /// Expected number of copied answers: for each followed suggestion, the
    /// probability (under the image's posterior) that it was copied.
    #[serde(default)]
    pub copy_mass: f64,
    /// Decoy rounds, and how often the answer was the decoy.
    #[serde(default)]
    pub decoys: u32,
    #[serde(default)]
    pub decoys_followed: u32,
    /// Gold rounds, and how often the answer was the verified label.
    #[serde(default)]
    pub gold: u32,
    #[serde(default)]
    pub gold_right: u32,
    /// Answers on checked faces (gold included: see
    /// [`TrustRules::check_confidence`]), and how many were right.
    #[serde(default)]
    pub checks: u32,
    #[serde(default)]
    pub checks_right: u32,
    /// The automatic verdict after the last label.
    #[serde(default)]
    pub flag: Option<SpamFlag>,
    #[serde(default)]
    pub moderation: Moderation,
}

fn zeros<const K: usize>() -> [u32; K] {
    [0; K]
}

impl<const K: usize> Default for Confusion<K> {
    /// A new player's ([`MatrixPrior::default`]).
    fn default() -> Self {
        Confusion::new(MatrixPrior::default())
    }
}

impl<const K: usize> Default for Reliability<K> {
    fn default() -> Self {
        Reliability::new(MatrixPrior::default())
    }
}

/// One label as [`Reliability::learn`] needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelFact<C = Emotion> {
    pub answer: C,
    pub shown: Option<C>,
    /// The shown suggestion was a deliberate test, not the model's guess.
    pub decoy: bool,
    /// The image's verified label, on a gold round.
    pub gold: Option<C>,
    /// The answer known before this one, when the face was checked.
    pub reference: Option<C>,
    pub response_ms: u64,
}

impl<const K: usize> Reliability<K> {
    pub fn new(prior: MatrixPrior) -> Reliability<K> {
        Reliability {
            matrix: Confusion::new(prior),
            answers: 0,
            fast: 0,
            buttons: [0; K],
            suggested: 0,
            followed: 0,
            copy_mass: 0.0,
            decoys: 0,
            decoys_followed: 0,
            gold: 0,
            gold_right: 0,
            checks: 0,
            checks_right: 0,
            flag: None,
            moderation: Moderation::None,
        }
    }

    /// Estimated probability of answering the suggestion without judging the
    /// face: the expected copies over the rounds with a suggestion, with a
    /// Beta(0.5, 4.5) prior (10% until measured). Decoys make copies plain:
    /// following a wrong suggestion is explained by copying alone.
    pub fn copy_rate(&self) -> f64 {
        (self.copy_mass + 0.5) / (f64::from(self.suggested) + 5.0)
    }

    /// Checked answers and the right ones among them (records from before
    /// checks were kept count their gold).
    fn checked(&self) -> (u32, u32) {
        (
            self.checks.max(self.gold),
            self.checks_right.max(self.gold_right),
        )
    }

    /// Whether enough of the checked answers are right to hold any trust.
    fn right_often_enough(&self, trust: &TrustRules) -> bool {
        let (checks, right) = self.checked();
        f64::from(right) >= trust.min_check_accuracy * f64::from(checks)
    }

    /// Whether this player has shown they can be trusted (or a moderator
    /// cleared them).
    pub fn established(&self, trust: &TrustRules) -> bool {
        self.moderation == Moderation::Cleared
            || (self.checked().1 >= trust.checks_to_trust && self.right_often_enough(trust))
    }

    /// How much one of this player's labels weighs (1: established; a
    /// newcomer's weight growing with each right check; back to a
    /// newcomer's when the checks' share right fell below
    /// [`TrustRules::min_check_accuracy`]).
    pub fn weight(&self, trust: &TrustRules) -> f64 {
        if self.established(trust) {
            return 1.0;
        }
        let w = trust.newcomer_weight.clamp(0.0, 1.0);
        if !self.right_often_enough(trust) {
            // Too many wrong answers beside the right ones.
            return w;
        }
        let grown = f64::from(self.checked().1) / f64::from(trust.checks_to_trust.max(1));
        w + (1.0 - w) * grown.clamp(0.0, 1.0)
    }

    /// Whether this player's labels count towards consensus.
    pub fn counts(&self) -> bool {
        match self.moderation {
            Moderation::Banned => false,
            Moderation::Cleared => true,
            Moderation::None => self.flag.is_none(),
        }
    }

    /// Learns from one label: `belief` is the image's posterior after the
    /// label (one-hot on gold). A label that repeats the suggestion teaches
    /// the matrix only in the share it was not copied.
    pub fn learn<C: Class>(
        &mut self,
        fact: &LabelFact<C>,
        belief: &[f64; K],
        rules: &SpamRules,
        class_prior: &[f64; K],
    ) {
        let copied = fact.shown == Some(fact.answer);
        let mut w = *belief;
        if let Some(g) = fact.gold {
            w = gold(g);
        }
        if copied {
            // Split each truth's weight into "copied" and "own judgement".
            let c = self.copy_rate();
            let mut mass = 0.0;
            for (t, x) in w.iter_mut().enumerate() {
                let own = (1.0 - c) * self.matrix.p_at(t, fact.answer.index());
                let r = c / (c + own).max(1e-12);
                mass += *x * r;
                *x *= 1.0 - r;
            }
            if mass.is_finite() {
                self.copy_mass += mass;
            }
        }
        self.matrix.observe(&w, fact.answer);
        self.answers = self.answers.saturating_add(1);
        if fact.response_ms < rules.min_human_ms {
            self.fast = self.fast.saturating_add(1);
        }
        let b = &mut self.buttons[fact.answer.index()];
        *b = b.saturating_add(1);
        if fact.shown.is_some() {
            self.suggested = self.suggested.saturating_add(1);
            if copied {
                self.followed = self.followed.saturating_add(1);
            }
        }
        if fact.decoy {
            self.decoys = self.decoys.saturating_add(1);
            if copied {
                self.decoys_followed = self.decoys_followed.saturating_add(1);
            }
        }
        if let Some(g) = fact.gold {
            self.gold = self.gold.saturating_add(1);
            if g == fact.answer {
                self.gold_right = self.gold_right.saturating_add(1);
            }
        }
        if let Some(r) = fact.gold.or(fact.reference) {
            self.checks = self.checks.saturating_add(1);
            if r == fact.answer {
                self.checks_right = self.checks_right.saturating_add(1);
            }
        }
        self.flag = self.verdict(rules, class_prior);
    }

    /// The automatic spam/bot verdict from the counters, judged against
    /// the pool's `class_prior`.
    pub fn verdict(&self, rules: &SpamRules, class_prior: &[f64; K]) -> Option<SpamFlag> {
        let n = f64::from(self.answers);
        if self.answers >= rules.min_answers {
            if f64::from(self.fast) >= rules.fast_share * n {
                return Some(SpamFlag::TooFast);
            }
            let top = self.buttons.iter().copied().max().unwrap_or(0);
            if f64::from(top) >= rules.same_button_share * n
                && self.matrix.means().informativeness(class_prior) < rules.min_informativeness
            {
                return Some(SpamFlag::SameButton);
            }
        }
        if self.decoys >= rules.min_decoys
            && f64::from(self.decoys_followed) >= rules.decoy_follow_share * f64::from(self.decoys)
        {
            return Some(SpamFlag::AlwaysCopies);
        }
        let (checks, right) = self.checked();
        if checks >= rules.min_gold {
            // Sequential test: guessing (right 1 in K) against an honest
            // player right `honest_accuracy` of the time.
            let chance = 1.0 / K as f64;
            let honest = rules.honest_accuracy.clamp(chance + 1e-3, 1.0 - 1e-3);
            let wrong = f64::from(checks.saturating_sub(right));
            let llr = f64::from(right) * (chance / honest).ln()
                + wrong * ((1.0 - chance) / (1.0 - honest)).ln();
            if llr >= rules.evidence_odds.max(1.0).ln() {
                return Some(SpamFlag::ChanceOnGold);
            }
        }
        None
    }

    /// Expected accuracy (mean of the matrix diagonal).
    pub fn accuracy(&self) -> f64 {
        self.matrix.accuracy()
    }
}

/// One label on an image, as [`judge`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a, C = Emotion, const K: usize = G> {
    pub reliability: &'a Reliability<K>,
    pub answer: C,
    pub shown: Option<C>,
}

/// What [`judge`] concluded about an image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement<C = Emotion, const K: usize = G> {
    pub posterior: [f64; K],
    /// Labels that count (their players are not flagged or banned).
    pub counted: u32,
    pub status: ImageStatus<C>,
    pub transition: Transition<C>,
}

/// What [`judge`] needs to know about the image itself.
#[derive(Debug, Clone, Copy)]
pub struct ImageFacts<'a, C = Emotion, const K: usize = G> {
    pub status: ImageStatus<C>,
    /// The verified label (a gold image).
    pub gold: Option<C>,
    /// The prior over its class ([`CrowdPrior::image_prior`]: the class
    /// prior and any label it came with).
    pub prior: [f64; K],
    /// The model's matrix and guess.
    pub model: Option<(&'a Confusion<K>, C)>,
    /// Whether `prior` holds a label the image came with.
    pub known: bool,
}

/// The image's posterior from all its labels and the model's guess, and its
/// status. The model is one more labeler with its own confusion matrix: its
/// guess counts once, so players who copy it add little beyond it. Each
/// label weighs what its player has earned ([`Reliability::weight`]). An
/// open image retires when its most probable class reaches the rule's
/// confidence with at least `min_labels` counted labels, at least
/// `trust.min_established` of them established players' for that class; it
/// becomes disputed at `max_labels` counted labels without that, once any
/// established player labelled it (newcomers alone leave it open). A gold
/// image's posterior is its verified label; closed images keep their status.
pub fn judge<C: Class, const K: usize>(
    rule: &ConsensusRule,
    trust: &TrustRules,
    image: &ImageFacts<'_, C, K>,
    labels: &[Evidence<'_, C, K>],
) -> Judgement<C, K> {
    let counted: Vec<&Evidence<'_, C, K>> =
        labels.iter().filter(|e| e.reliability.counts()).collect();
    let n = u32::try_from(counted.len()).unwrap_or(u32::MAX);
    let posterior = match image.gold {
        Some(g) => gold(g),
        None => image_posterior(
            image,
            counted.iter().map(|e| (*e, e.reliability.weight(trust))),
        ),
    };
    if !image.status.is_open() {
        return Judgement {
            posterior,
            counted: n,
            status: image.status,
            transition: Transition::None,
        };
    }
    let top = top::<C, K>(&posterior).0;
    let support =
        u32::try_from(counted.iter().filter(|e| e.answer == top).count()).unwrap_or(u32::MAX);
    let proven: Vec<&&Evidence<'_, C, K>> = counted
        .iter()
        .filter(|e| e.reliability.established(trust))
        .collect();
    let established = proven.iter().filter(|e| e.answer == top).count();
    let vouched = !proven.is_empty();
    let needed = usize::try_from(trust.min_established).unwrap_or(usize::MAX);
    let mut status = rule.status(&posterior, n, support);
    if needed > 0 && !vouched && status != ImageStatus::Open {
        // Newcomers alone neither retire nor dispute an image (forty fresh
        // guests must not empty the pool into the review queue): it waits
        // for someone who has shown they can be trusted.
        status = ImageStatus::Open;
    } else if matches!(status, ImageStatus::Retired { .. }) && established < needed {
        status = if n >= rule.max_labels() {
            ImageStatus::Disputed
        } else {
            ImageStatus::Open
        };
    }
    let transition = match status {
        ImageStatus::Retired { label } => Transition::Retired { label },
        ImageStatus::Disputed => Transition::Disputed,
        ImageStatus::Open | ImageStatus::Removed => Transition::None,
    };
    Judgement {
        posterior,
        counted: n,
        status,
        transition,
    }
}

/// The answer known about an image before a new label, from what players
/// cannot fake: its verified label, the label it came with, the model, and
/// established players' labels. `Some` when its top class is at least
/// `trust.check_confidence` probable: the new label is then a check of its
/// player ([`LabelFact::reference`]).
pub fn reference<C: Class, const K: usize>(
    trust: &TrustRules,
    image: &ImageFacts<'_, C, K>,
    earlier: &[Evidence<'_, C, K>],
) -> Option<C> {
    if let Some(g) = image.gold {
        return Some(g);
    }
    let proven: Vec<&Evidence<'_, C, K>> = earlier
        .iter()
        .filter(|e| e.reliability.counts() && e.reliability.established(trust))
        .collect();
    if !image.known && proven.is_empty() {
        // The class prior and the model alone say nothing about this face.
        return None;
    }
    let posterior = image_posterior(image, proven.into_iter().map(|e| (e, 1.0)));
    let (best, p) = top::<C, K>(&posterior);
    (p >= trust.check_confidence).then_some(best)
}

/// An image's posterior from its prior, the model's guess (weight 1) and
/// `labels` with their weights.
fn image_posterior<'a, C: Class + 'a, const K: usize>(
    image: &ImageFacts<'a, C, K>,
    labels: impl IntoIterator<Item = (&'a Evidence<'a, C, K>, f64)>,
) -> [f64; K] {
    posterior_weighted(
        &image.prior,
        image
            .model
            .map(|(m, guess)| (m, 0.0, guess, None, 1.0))
            .into_iter()
            .chain(labels.into_iter().map(|(e, w)| {
                (
                    &e.reliability.matrix,
                    e.reliability.copy_rate(),
                    e.answer,
                    e.shown,
                    w,
                )
            })),
    )
}

/// One answer as the per-answer step takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer<C = Emotion> {
    pub answer: C,
    /// The suggestion shown with the face (none on blind rounds).
    pub shown: Option<C>,
    /// The suggestion was a deliberate test.
    pub decoy: bool,
    pub response_ms: u64,
}

/// What one answer did to truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Step<C = Emotion, const K: usize = G> {
    /// The image after the answer: posterior, counted labels, status.
    pub judgement: Judgement<C, K>,
    /// The answering player's reliability after learning from the answer.
    pub learned: Reliability<K>,
    /// The answer known before this one, when the face checked the player.
    pub checked: Option<C>,
}

/// The per-answer truth step, the same for the game's answer path
/// ([`crate::plan::plan_answer`]) and for replays of label sets brought
/// from elsewhere ([`crate::replay`]): the answer known before this one
/// (what checks the player), the image re-judged with every counted label,
/// and the player's reliability learned from the answer with the new
/// belief. `earlier` holds the other players' labels on the image.
#[allow(clippy::too_many_arguments)]
pub fn answer_step<C: Class, const K: usize>(
    rule: &ConsensusRule,
    trust: &TrustRules,
    spam: &SpamRules,
    class_prior: &[f64; K],
    image: &ImageFacts<'_, C, K>,
    earlier: &[Evidence<'_, C, K>],
    me: &Reliability<K>,
    answer: &Answer<C>,
) -> Step<C, K> {
    let checked = reference(trust, image, earlier);
    let mut all: Vec<Evidence<'_, C, K>> = Vec::with_capacity(earlier.len() + 1);
    all.extend_from_slice(earlier);
    all.push(Evidence {
        reliability: me,
        answer: answer.answer,
        shown: answer.shown,
    });
    let judgement = judge(rule, trust, image, &all);
    let mut learned = me.clone();
    learned.learn(
        &LabelFact {
            answer: answer.answer,
            shown: answer.shown,
            decoy: answer.decoy,
            gold: image.gold,
            reference: checked,
            response_ms: answer.response_ms,
        },
        &judgement.posterior,
        spam,
        class_prior,
    );
    Step {
        judgement,
        learned,
        checked,
    }
}

/// The prior of a model's confusion matrix: about 60% accurate (the
/// prototype's CNN), worth ~10 images of evidence per row.
pub const MODEL_PRIOR: MatrixPrior = MatrixPrior {
    diagonal: 6.0,
    off_diagonal: 4.0 / 6.0,
};

/// How gold (verified) images and decoy suggestions are mixed into rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// Share of gold rounds for a new player…
    pub gold_start: f64,
    /// …during their first this many rounds…
    pub gold_intro_rounds: u32,
    /// …then decaying by this factor per round…
    pub gold_decay: f64,
    /// …down to this share.
    pub gold_floor: f64,
    /// Share of rounds whose suggestion is a deliberate test (a wrong class).
    pub decoy_share: f64,
    /// No decoys before a player has played this many rounds.
    pub decoy_after_rounds: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            gold_start: 0.5,
            gold_intro_rounds: 10,
            gold_decay: 0.85,
            gold_floor: 0.05,
            decoy_share: 0.1,
            decoy_after_rounds: 10,
        }
    }
}

/// What kind of round to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPlan {
    pub gold: bool,
    pub decoy: bool,
}

impl Schedule {
    /// The gold share for a player who has answered `played` rounds.
    pub fn gold_share(&self, played: u32) -> f64 {
        if played < self.gold_intro_rounds {
            return self.gold_start;
        }
        let decayed = self.gold_start
            * self
                .gold_decay
                .powf(f64::from(played - self.gold_intro_rounds) + 1.0);
        decayed
            .max(self.gold_floor)
            .min(self.gold_start.max(self.gold_floor))
    }

    /// Plans a round from two uniform draws in [0, 1). Decoys never go to new
    /// players (so never on their gold rounds either).
    pub fn plan(&self, played: u32, gold_available: bool, u_gold: f64, u_decoy: f64) -> RoundPlan {
        let gold = gold_available && u_gold < self.gold_share(played);
        let decoy = played >= self.decoy_after_rounds && u_decoy < self.decoy_share;
        RoundPlan { gold, decoy }
    }
}

/// The decoy suggestion: a class other than the model's guess, chosen by `pick`.
pub fn decoy_class(model_guess: Emotion, pick: u64) -> Emotion {
    let k = 1 + usize::try_from(pick % (G as u64 - 1)).unwrap_or(0);
    Emotion::ALL[(model_guess.index() + k) % G]
}

/// One label for [`em`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmLabel<C = Emotion> {
    pub player: usize,
    pub image: usize,
    pub answer: C,
    pub shown: Option<C>,
    /// What the label weighs ([`Reliability::weight`]; 1 for the model).
    pub weight: f64,
}

/// What [`em`] estimates.
#[derive(Debug, Clone)]
pub struct EmFit<const K: usize = G> {
    pub matrices: Vec<Confusion<K>>,
    /// Each player's copy rate.
    pub copy_rates: Vec<f64>,
    pub posteriors: Vec<[f64; K]>,
    /// The class prior, the pooled matrix and the strength it used: what
    /// the answers between passes start newcomers and images from.
    pub crowd: CrowdPrior<K>,
}

/// The centre a player's matrix is shrunk towards, as in the K-class core
/// ([`crate::crowd`]): the player's own overall accuracy on the diagonal
/// (their expected right answers over all their labels, with the core's
/// pooled prior), their errors shaped like the crowd's (the pooled
/// matrix's off-diagonal). A player with few labels gets one skill
/// parameter learned from all of them and the crowd's confusions; with
/// many labels, a matrix of their own. Centring on the pooled matrix
/// alone gave every player the crowd's accuracy: 3 points below the core
/// on the simulated crowds (docs/benchmarks.md).
fn skill_centre<const K: usize>(pooled: &[[f64; K]; K], observed: &[[f64; K]; K]) -> [[f64; K]; K] {
    use crate::crowd;
    let diag: f64 = (0..K).map(|t| observed[t][t]).sum();
    let total: f64 = observed.iter().flatten().sum();
    let skill = crowd::skill(diag, total, &crowd::Priors::default());
    let mut rows = [[0.0; K]; K];
    for (t, row) in rows.iter_mut().enumerate() {
        for (a, x) in row.iter_mut().enumerate() {
            *x = crowd::centre(skill, t, a, |t, a| pooled[t][a]);
        }
    }
    rows
}

/// Batch Dawid–Skene EM with copying over `labels` from `players` players
/// on `images` images, with known truths for gold images and a prior per
/// image (`image_known`: the label an image came with, and its trust),
/// starting from each player's copy rate (missing: 0.1). Every player's
/// matrix is shrunk towards the pooled matrix by `start.strength`
/// pseudo-labels per row (the K-class core's model, [`crate::crowd`]); the
/// class prior and the pooled matrix are learned. Estimates the matrices,
/// the copy rates and the image posteriors in `iterations` rounds (or
/// fewer, once converged).
#[allow(clippy::too_many_arguments)]
pub fn em<C: Class, const K: usize>(
    players: usize,
    images: usize,
    labels: &[EmLabel<C>],
    gold_truth: &[(usize, C)],
    image_known: &[(usize, C, f64)],
    copy_rates: &[f64],
    start: &CrowdPrior<K>,
    iterations: usize,
) -> EmFit<K> {
    let mut crowd = start.clone();
    let mut matrices = vec![Confusion::centred(&crowd.pooled, crowd.strength); players];
    let mut copies: Vec<f64> = (0..players)
        .map(|p| copy_rates.get(p).copied().unwrap_or(0.1))
        .collect();
    let mut gold_of = vec![None; images];
    for (i, t) in gold_truth {
        if let Some(g) = gold_of.get_mut(*i) {
            *g = Some(*t);
        }
    }
    let mut known_of = vec![None; images];
    for (i, t, trust) in image_known {
        if let Some(k) = known_of.get_mut(*i) {
            *k = Some((*t, *trust));
        }
    }
    let mut by_image: Vec<Vec<&EmLabel<C>>> = vec![Vec::new(); images];
    for l in labels {
        if l.player < players && l.image < images {
            by_image[l.image].push(l);
        }
    }
    // The classes the evidence names (an answer, a gold or known label).
    // Only they can be an image's truth here: a class nobody chose would
    // otherwise feed on its own posterior mass when the matrices' prior is
    // weak (a row with no data learning from the fraction EM gave it).
    let mut named = [false; K];
    for l in labels {
        if let Some(n) = named.get_mut(l.answer.index()) {
            *n = true;
        }
    }
    for c in gold_truth
        .iter()
        .map(|(_, c)| c)
        .chain(image_known.iter().map(|(_, c, _)| c))
    {
        if let Some(n) = named.get_mut(c.index()) {
            *n = true;
        }
    }
    let support = |mut p: [f64; K]| {
        let kept: f64 = p
            .iter()
            .zip(&named)
            .filter(|(_, n)| **n)
            .map(|(x, _)| x)
            .sum();
        if kept > 0.0 && kept.is_finite() {
            for (x, n) in p.iter_mut().zip(&named) {
                *x = if *n { *x / kept } else { 0.0 };
            }
        }
        p
    };
    // Start from the weighted vote shares (soft majority vote, as the
    // K-class core and crowd-kit do), not from the last pass's matrices: a
    // pass that inherited a label-switched fit would keep it.
    let mut posts: Vec<[f64; K]> = by_image
        .iter()
        .enumerate()
        .map(|(i, ls)| match gold_of[i] {
            Some(t) => gold(t),
            None => {
                let mut v = [0.0; K];
                for l in ls {
                    if let Some(x) = v.get_mut(l.answer.index()) {
                        *x += l.weight.clamp(0.0, 1.0);
                    }
                }
                let sum: f64 = v.iter().sum();
                if sum > 0.0 {
                    v.map(|x| x / sum)
                } else {
                    crowd.image_prior(known_of[i])
                }
            }
        })
        .collect();
    // The pooled matrix's own prior: two pseudo-labels per row of the default crowd.
    let base = CrowdPrior::<K>::default().pooled;
    for _ in 0..iterations.max(1) {
        // M: expected counts, copy rates, the pooled matrix, the matrices
        // and the class prior from the posteriors.
        let mut observed = vec![[[0.0f64; K]; K]; players];
        let mut mass = vec![0.5; players];
        let mut trials = vec![5.0; players];
        for ls in &by_image {
            for l in ls {
                let mut w = posts[l.image];
                if l.shown.is_some() {
                    trials[l.player] += 1.0;
                }
                if l.shown == Some(l.answer) {
                    let c = copies[l.player];
                    for (t, x) in w.iter_mut().enumerate() {
                        let own = (1.0 - c) * matrices[l.player].p_at(t, l.answer.index());
                        let r = c / (c + own).max(1e-12);
                        mass[l.player] += *x * r;
                        *x *= 1.0 - r;
                    }
                }
                for (t, x) in w.iter().enumerate() {
                    observed[l.player][t][l.answer.index()] += x;
                }
            }
        }
        for (c, (m, n)) in copies.iter_mut().zip(mass.iter().zip(&trials)) {
            *c = (m / n).clamp(0.0, 0.99);
        }
        let mut pooled = base.map(|row| row.map(|x| 2.0 * x));
        for o in &observed {
            for (prow, orow) in pooled.iter_mut().zip(o) {
                for (p, x) in prow.iter_mut().zip(orow) {
                    *p += x;
                }
            }
        }
        for row in &mut pooled {
            let sum: f64 = row.iter().sum::<f64>().max(1e-12);
            for x in row.iter_mut() {
                *x /= sum;
            }
        }
        crowd.pooled = pooled;
        for (m, o) in matrices.iter_mut().zip(&observed) {
            let mut next = Confusion::centred(&skill_centre(&crowd.pooled, o), crowd.strength);
            for (t, row) in o.iter().enumerate() {
                next.observe_row(t, row);
            }
            *m = next;
        }
        let mut mass = [1.0; K];
        for post in &posts {
            for (m, p) in mass.iter_mut().zip(post) {
                *m += p;
            }
        }
        let total: f64 = mass.iter().sum();
        for (c, m) in crowd.class_prior.iter_mut().zip(mass) {
            *c = m / total;
        }
        // E: posteriors from the new matrices.
        let mut change: f64 = 0.0;
        for (i, ls) in by_image.iter().enumerate() {
            let next = match gold_of[i] {
                Some(t) => gold(t),
                None => support(posterior_weighted(
                    &crowd.image_prior(known_of[i]),
                    ls.iter().map(|l| {
                        (
                            &matrices[l.player],
                            copies[l.player],
                            l.answer,
                            l.shown,
                            l.weight,
                        )
                    }),
                )),
            };
            for (a, b) in next.iter().zip(&posts[i]) {
                change = change.max((a - b).abs());
            }
            posts[i] = next;
        }
        if change < 1e-6 {
            break;
        }
    }
    EmFit {
        matrices,
        copy_rates: copies,
        posteriors: posts,
        crowd,
    }
}

/// What the truth pass does with an image it fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejudged<C = Emotion> {
    /// Leave the image alone (out of play; or closed with labels older
    /// than the pass's window, so its fit saw only part of them).
    Keep,
    /// Store the pass's posterior; the status stands.
    Posterior,
    /// Store the posterior, and the retired image goes to the moderators:
    /// the crowd's consensus has moved off the label it retired with.
    Dispute { was: C },
}

/// The pass re-judges every image whose labels it saw in full, closed
/// ones included, so the online step's early retirements do not freeze
/// its drift: a retired image whose fitted top class is no longer its label
/// is disputed (a moderator decides; points already settled stay).
/// Open images always take the posterior (the next answer judges them).
pub fn rejudged<C: Class, const K: usize>(
    status: ImageStatus<C>,
    posterior: &[f64; K],
    complete: bool,
) -> Rejudged<C> {
    match status {
        ImageStatus::Open => Rejudged::Posterior,
        ImageStatus::Removed => Rejudged::Keep,
        _ if !complete => Rejudged::Keep,
        ImageStatus::Disputed => Rejudged::Posterior,
        ImageStatus::Retired { label } => {
            if top::<C, K>(posterior).0 == label {
                Rejudged::Posterior
            } else {
                Rejudged::Dispute { was: label }
            }
        }
    }
}

/// EM iterations of the server's truth pass (it stops sooner once nothing
/// moves).
pub const PASS_ITERATIONS: usize = 50;

/// One label for the truth [`pass`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassLabel<C = Emotion> {
    pub player: usize,
    pub image: usize,
    pub answer: C,
    pub shown: Option<C>,
}

/// What the truth [`pass`] learned.
#[derive(Debug, Clone, PartialEq)]
pub struct PassFit<const K: usize = G> {
    /// Per player: the matrix to keep (`None` for a player none of whose
    /// labels counted: theirs stays as it was).
    pub matrices: Vec<Option<Confusion<K>>>,
    /// The model's matrix, when it guessed on a labelled image.
    pub model: Option<Confusion<K>>,
    /// Per image: the posterior (every image with a counted label).
    pub posteriors: Vec<Option<[f64; K]>>,
    pub crowd: CrowdPrior<K>,
}

/// The periodic truth pass over plain data: batch EM with copy rates, the
/// model as one more labeller (weight 1), each player's labels weighed as
/// they have earned ([`Reliability::weight`]; flagged and banned players'
/// labels left out; a player with no record weighs as a newcomer) and the
/// labels images came with as priors. The matrices' pull towards the pooled
/// one is chosen on held-out labels by the K-class core
/// ([`crate::crowd::choose_strength`]); the class prior and the pooled
/// matrix are learned. `players[p]` is player `p`'s record.
#[allow(clippy::too_many_arguments)]
pub fn pass<C: Class, const K: usize>(
    players: &[Option<&Reliability<K>>],
    images: usize,
    labels: &[PassLabel<C>],
    model_guesses: &[(usize, C)],
    gold: &[(usize, C)],
    known: &[(usize, C, f64)],
    start: &CrowdPrior<K>,
    trust: &TrustRules,
    iterations: usize,
) -> PassFit<K> {
    use crate::crowd;
    let record = |p: usize| players.get(p).copied().flatten();
    let mut used = vec![false; players.len()];
    let mut labelled = vec![false; images];
    let mut em_labels = Vec::with_capacity(labels.len() + model_guesses.len());
    for l in labels {
        if l.player >= players.len() || l.image >= images {
            continue;
        }
        let r = record(l.player);
        if r.is_some_and(|r| !r.counts()) {
            continue;
        }
        used[l.player] = true;
        labelled[l.image] = true;
        em_labels.push(EmLabel {
            player: l.player,
            image: l.image,
            answer: l.answer,
            shown: l.shown,
            weight: r.map_or(trust.newcomer_weight, |r| r.weight(trust)),
        });
    }
    // The model is one more labeller, after the players.
    let model = players.len();
    let mut model_used = false;
    for (image, guess) in model_guesses {
        if labelled.get(*image).copied().unwrap_or(false) {
            model_used = true;
            em_labels.push(EmLabel {
                player: model,
                image: *image,
                answer: *guess,
                shown: None,
                weight: 1.0,
            });
        }
    }
    let mut copy: Vec<f64> = (0..players.len())
        .map(|p| record(p).map_or(0.1, |r| r.copy_rate()))
        .collect();
    copy.push(0.0);
    // One order whatever order the labels came in (the sums in EM and in
    // the strength's cross-validation then round the same way).
    em_labels.sort_by_key(|l| (l.image, l.player, l.answer.index()));
    let core: Vec<crowd::Label> = em_labels
        .iter()
        .map(|l| crowd::Label {
            task: u32::try_from(l.image).unwrap_or(u32::MAX),
            worker: u32::try_from(l.player).unwrap_or(u32::MAX),
            class: u8::try_from(l.answer.index()).unwrap_or(u8::MAX),
        })
        .collect();
    let core_gold: Vec<(u32, u8)> = gold
        .iter()
        .map(|(i, g)| {
            (
                u32::try_from(*i).unwrap_or(u32::MAX),
                u8::try_from(g.index()).unwrap_or(u8::MAX),
            )
        })
        .collect();
    let strength = crowd::choose_strength(
        K,
        images,
        players.len() + 1,
        &core,
        &core_gold,
        &crowd::Priors::default(),
    )
    .map_or(start.strength, |(s, _)| s);
    let start = CrowdPrior {
        strength,
        ..start.clone()
    };
    let fit = em(
        players.len() + 1,
        images,
        &em_labels,
        gold,
        known,
        &copy,
        &start,
        iterations,
    );
    let mut matrices: Vec<Option<Confusion<K>>> = fit
        .matrices
        .into_iter()
        .zip(used.iter().chain([&model_used]))
        .map(|(m, u)| u.then_some(m))
        .collect();
    let model = matrices.pop().flatten();
    PassFit {
        matrices,
        model,
        posteriors: fit
            .posteriors
            .into_iter()
            .zip(&labelled)
            .map(|(p, l)| l.then_some(p))
            .collect(),
        crowd: fit.crowd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    #[test]
    fn a_reliable_crowd_outvotes_a_spammer() {
        let good = Confusion::new(MatrixPrior {
            diagonal: 9.0,
            off_diagonal: 0.1,
        });
        let spammer = Confusion::new(MatrixPrior {
            diagonal: 1.0,
            off_diagonal: 1.0,
        });
        let post = posterior(
            &UNIFORM,
            [
                (&good, Happy),
                (&good, Happy),
                (&spammer, Sad),
                (&spammer, Sad),
            ],
        );
        assert_eq!(map(&post).0, Happy);
        assert!((post.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // A spammer's labels carry no information at all.
        let only_spam = posterior(&UNIFORM, [(&spammer, Sad), (&spammer, Angry)]);
        for p in only_spam {
            assert!((p - 1.0 / G as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn em_learns_who_to_trust_from_gold() {
        // Players 0–2 are right; player 3 always answers "neutral". Images 0–3 are gold.
        let truths = [Happy, Sad, Angry, Fear, Surprise, Disgust, Happy, Sad];
        let mut labels = Vec::new();
        let label = |player, image, answer| EmLabel {
            player,
            image,
            answer,
            shown: None,
            weight: 1.0,
        };
        for (i, t) in truths.iter().enumerate() {
            for p in 0..3 {
                labels.push(label(p, i, *t));
            }
            labels.push(label(3, i, Neutral));
        }
        let gold: Vec<(usize, Emotion)> = (0..4).map(|i| (i, truths[i])).collect();
        // A weak prior: eight images are little evidence.
        let weak = CrowdPrior {
            strength: 3.0,
            ..CrowdPrior::default()
        };
        let fit = em(4, truths.len(), &labels, &gold, &[], &[], &weak, 50);
        let (m, posts) = (fit.matrices, fit.posteriors);
        for (i, t) in truths.iter().enumerate() {
            assert_eq!(map(&posts[i]).0, *t, "image {i}");
        }
        assert!(m[0].accuracy() > m[3].accuracy() + 0.1);
        assert!(m[3].p(Happy, Neutral) > m[0].p(Happy, Neutral) + 0.2);
    }

    #[test]
    fn the_pass_disputes_a_retirement_it_moved_off_and_spares_partial_ones() {
        let mut sad = [0.01; G];
        sad[Sad.index()] = 0.94;
        let retired = ImageStatus::Retired { label: Sad };
        assert_eq!(rejudged(retired, &sad, true), Rejudged::Posterior);
        let mut happy = [0.01; G];
        happy[Happy.index()] = 0.94;
        assert_eq!(
            rejudged(retired, &happy, true),
            Rejudged::Dispute { was: Sad }
        );
        // Labels outside the pass's window: the fit saw only part of them.
        assert_eq!(rejudged(retired, &happy, false), Rejudged::Keep);
        assert_eq!(
            rejudged(ImageStatus::<Emotion>::Open, &happy, false),
            Rejudged::Posterior
        );
        assert_eq!(
            rejudged(ImageStatus::<Emotion>::Disputed, &happy, true),
            Rejudged::Posterior
        );
        assert_eq!(
            rejudged(ImageStatus::<Emotion>::Removed, &happy, true),
            Rejudged::Keep
        );
    }

    #[test]
    fn unobserve_undoes_observe() {
        let mut c = Confusion::new(MatrixPrior::default());
        let before = c.clone();
        let belief = [0.1, 0.0, 0.2, 0.7, 0.0, 0.0, 0.0];
        c.observe(&belief, Fear);
        assert_ne!(c, before);
        c.unobserve(&belief, Fear, 0.2);
        for t in Emotion::ALL {
            for (a, b) in c.row(t).iter().zip(before.row(t)) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }
}
