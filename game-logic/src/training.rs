//! What the model learns from and when a new model may serve: the data
//! split, which images are training examples (consent first), the metrics a
//! model is judged by, and the promotion gate.
//!
//! * [`split_of`]: train / val / test by the image's content hash (the same
//!   split exports use), so an image never moves between splits.
//! * [`example_of`]: an image's training target, or why it has none. Only
//!   images whose consent allows training (demo and imported images; uploads
//!   only with `use_for_training`), never removed ones. A moderator's label
//!   is a hard target; otherwise the truth posterior is a soft target (FER+
//!   "probability" style) weighted by its confidence.
//! * [`Evaluation`]: accuracy, macro-F1, per-class recall and the confusion
//!   matrix of predictions against labels.
//! * [`gate`]: a candidate replaces the champion only if, on the same test
//!   images, it is better by a margin with statistical support (exact
//!   one-sided McNemar test on the images where exactly one is right), no
//!   class's recall falls by more than allowed, and it is not worse on the
//!   operator's reference set when there is one.

use serde::{Deserialize, Serialize};

use crate::{EMOTION_COUNT, Emotion, ImageId};

/// The three data splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// The split of an image by the first byte of its SHA-256: below 205 train
/// (≈ 80%), below 230 val (≈ 10%), else test.
pub fn split_of(id: ImageId) -> Split {
    match id.as_bytes()[0] {
        b if b < 205 => Split::Train,
        b if b < 230 => Split::Val,
        _ => Split::Test,
    }
}

/// Whether a round on `image` may show (and count) the model's guess: not
/// on test-split images when evaluation labels are blind, so the labels a
/// model is judged by are independent of any model.
pub fn shows_model_guess(image: ImageId, blind_test: bool) -> bool {
    !(blind_test && split_of(image) == Split::Test)
}

/// Where an image came from, as far as training consent goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A generated demo face.
    Demo,
    /// An imported dataset's image (the operator's licence).
    Dataset,
    /// A player's photo, with their consent to training or not.
    Upload { use_for_training: bool },
}

/// What the training-data rule reads about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    pub id: ImageId,
    pub origin: Origin,
    /// Removed by a moderator or erased at its contributor's request.
    pub removed: bool,
    /// A moderator's label.
    pub verified: Option<Emotion>,
    /// The truth posterior (absent before any counted label).
    pub posterior: Option<[f64; EMOTION_COUNT]>,
    /// The label the image came with (the demo face's drawn emotion, the
    /// dataset's label), when the operator lets those train.
    pub known: Option<Emotion>,
}

/// Which images train, and how much each weighs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataRules {
    /// A posterior trains only when its top class is at least this sure.
    pub min_confidence: f64,
    /// Train on the labels images came with where the crowd has not spoken
    /// (off by default: the crowd's labels are what we are here to learn).
    pub use_known_labels: bool,
}

impl Default for DataRules {
    fn default() -> Self {
        DataRules {
            min_confidence: 0.6,
            use_known_labels: false,
        }
    }
}

/// Why an image is not a training example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Excluded {
    /// Removed or erased.
    Removed,
    /// An upload whose contributor did not consent to training.
    NoConsent,
    /// No label yet.
    Unlabelled,
    /// The crowd is not sure enough.
    Unsure,
}

/// One training example's target: a distribution over the emotions (in
/// [`Emotion::ALL`] order) and its weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub split: Split,
    pub probabilities: [f32; EMOTION_COUNT],
    pub weight: f32,
    /// A hard label (a moderator's, or the image's own).
    pub hard: bool,
}

impl Target {
    /// The target's most probable class.
    pub fn label(&self) -> Emotion {
        crate::emotion::top_of(&self.probabilities)
    }
}

/// A hard target: all the probability on `e`.
pub fn one_hot(e: Emotion) -> [f32; EMOTION_COUNT] {
    let mut p = [0.0; EMOTION_COUNT];
    p[e.index()] = 1.0;
    p
}

/// An image's training target, or why it has none. Consent is checked
/// before anything else is read.
pub fn example_of(facts: &ImageFacts, rules: &DataRules) -> Result<Target, Excluded> {
    if facts.removed {
        return Err(Excluded::Removed);
    }
    if let Origin::Upload {
        use_for_training: false,
    } = facts.origin
    {
        return Err(Excluded::NoConsent);
    }
    let split = split_of(facts.id);
    if let Some(v) = facts.verified {
        return Ok(Target {
            split,
            probabilities: one_hot(v),
            weight: 1.0,
            hard: true,
        });
    }
    if let Some(post) = facts.posterior {
        let sum: f64 = post.iter().filter(|p| p.is_finite() && **p > 0.0).sum();
        if sum > 0.0 {
            let mut p = [0f32; EMOTION_COUNT];
            for (o, x) in p.iter_mut().zip(post) {
                *o = if x.is_finite() && x > 0.0 {
                    (x / sum) as f32
                } else {
                    0.0
                };
            }
            let confidence = f64::from(p.iter().copied().fold(0.0, f32::max));
            if confidence >= rules.min_confidence {
                return Ok(Target {
                    split,
                    probabilities: p,
                    weight: confidence as f32,
                    hard: false,
                });
            }
            if !rules.use_known_labels || facts.known.is_none() {
                return Err(Excluded::Unsure);
            }
        }
    }
    match facts.known {
        Some(k) if rules.use_known_labels => Ok(Target {
            split,
            probabilities: one_hot(k),
            weight: 1.0,
            hard: true,
        }),
        _ => Err(Excluded::Unlabelled),
    }
}

/// A model's predictions against labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    pub accuracy: f64,
    /// The mean F1 over the classes that occur (as label or prediction).
    pub macro_f1: f64,
    /// Recall per class (`None` where the class has no labelled image).
    pub recall: [Option<f64>; EMOTION_COUNT],
    /// `confusion[label][predicted]`.
    pub confusion: [[u32; EMOTION_COUNT]; EMOTION_COUNT],
}

impl Evaluation {
    /// The metrics of `(label, predicted)` pairs.
    pub fn of(pairs: &[(Emotion, Emotion)]) -> Evaluation {
        let mut confusion = [[0u32; EMOTION_COUNT]; EMOTION_COUNT];
        for (l, p) in pairs {
            confusion[l.index()][p.index()] += 1;
        }
        let right: u32 = (0..EMOTION_COUNT).map(|i| confusion[i][i]).sum();
        let mut recall = [None; EMOTION_COUNT];
        let mut f1s = Vec::new();
        for c in 0..EMOTION_COUNT {
            let labelled: u32 = confusion[c].iter().sum();
            let predicted: u32 = (0..EMOTION_COUNT).map(|l| confusion[l][c]).sum();
            let tp = f64::from(confusion[c][c]);
            if labelled > 0 {
                recall[c] = Some(tp / f64::from(labelled));
            }
            if labelled + predicted > 0 {
                f1s.push(2.0 * tp / f64::from(labelled + predicted));
            }
        }
        Evaluation {
            images: pairs.len(),
            accuracy: if pairs.is_empty() {
                0.0
            } else {
                f64::from(right) / pairs.len() as f64
            },
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            recall,
            confusion,
        }
    }
}

/// When a candidate may replace the champion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateRules {
    /// The candidate's test accuracy must beat the champion's by this much.
    pub min_gain: f64,
    /// …with a one-sided exact McNemar p-value below this.
    pub alpha: f64,
    /// No class's recall may fall by more than this…
    pub max_recall_drop: f64,
    /// …counting classes with at least this many test images.
    pub min_class_images: usize,
    /// At least this many test images, or nothing is promoted.
    pub min_test_images: usize,
    /// On the reference set, the candidate may be at most this much less
    /// accurate than the champion.
    pub reference_tolerance: f64,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            min_gain: 0.01,
            alpha: 0.05,
            max_recall_drop: 0.05,
            min_class_images: 5,
            min_test_images: 20,
            reference_tolerance: 0.0,
        }
    }
}

/// One image of a paired comparison: its label and both models' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paired {
    pub label: Emotion,
    pub champion: Emotion,
    pub candidate: Emotion,
}

/// Why a candidate was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    TooFewTestImages {
        images: usize,
        needed: usize,
    },
    NotBetter {
        gain: f64,
        needed: f64,
    },
    NotSignificant {
        p_value: f64,
        alpha: f64,
    },
    RecallDropped {
        class: Emotion,
        champion: f64,
        candidate: f64,
    },
    WorseOnReference {
        champion: f64,
        candidate: f64,
    },
}

/// The gate's decision and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub promote: bool,
    pub champion: Evaluation,
    pub candidate: Evaluation,
    /// Test images only the champion got right / only the candidate did.
    pub champion_only: u32,
    pub candidate_only: u32,
    pub p_value: f64,
    pub reference: Option<(Evaluation, Evaluation)>,
    pub refusals: Vec<Refusal>,
}

/// P(X ≥ k) for X ~ Binomial(n, ½): the one-sided exact McNemar p-value
/// of `k` candidate-only wins among `n` discordant images.
pub fn mcnemar_p(k: u32, n: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    // Σ_{i ≥ k} C(n, i) / 2^n, in logs.
    let ln_choose = |n: u32, i: u32| -> f64 {
        let lf = |m: u32| (1..=m).map(|x| f64::from(x).ln()).sum::<f64>();
        lf(n) - lf(i) - lf(n - i)
    };
    let ln_half = -f64::from(n) * std::f64::consts::LN_2;
    (k..=n)
        .map(|i| (ln_choose(n, i) + ln_half).exp())
        .sum::<f64>()
        .min(1.0)
}

/// Whether the candidate replaces the champion: `test` pairs both models'
/// answers on the frozen test split; `reference`, when the operator gave a
/// reference set, the same on it.
pub fn gate(test: &[Paired], reference: Option<&[Paired]>, rules: &GateRules) -> GateDecision {
    let champion = Evaluation::of(
        &test
            .iter()
            .map(|p| (p.label, p.champion))
            .collect::<Vec<_>>(),
    );
    let candidate = Evaluation::of(
        &test
            .iter()
            .map(|p| (p.label, p.candidate))
            .collect::<Vec<_>>(),
    );
    let champion_only = test
        .iter()
        .filter(|p| p.champion == p.label && p.candidate != p.label)
        .count() as u32;
    let candidate_only = test
        .iter()
        .filter(|p| p.candidate == p.label && p.champion != p.label)
        .count() as u32;
    let p_value = mcnemar_p(candidate_only, candidate_only + champion_only);
    let mut refusals = Vec::new();
    if test.len() < rules.min_test_images {
        refusals.push(Refusal::TooFewTestImages {
            images: test.len(),
            needed: rules.min_test_images,
        });
    }
    let gain = candidate.accuracy - champion.accuracy;
    if gain < rules.min_gain {
        refusals.push(Refusal::NotBetter {
            gain,
            needed: rules.min_gain,
        });
    }
    if p_value >= rules.alpha {
        refusals.push(Refusal::NotSignificant {
            p_value,
            alpha: rules.alpha,
        });
    }
    for e in Emotion::ALL {
        let images: u32 = champion.confusion[e.index()].iter().sum();
        if (images as usize) < rules.min_class_images.max(1) {
            continue;
        }
        if let (Some(a), Some(b)) = (champion.recall[e.index()], candidate.recall[e.index()])
            && a - b > rules.max_recall_drop
        {
            refusals.push(Refusal::RecallDropped {
                class: e,
                champion: a,
                candidate: b,
            });
        }
    }
    let reference = reference.map(|r| {
        (
            Evaluation::of(&r.iter().map(|p| (p.label, p.champion)).collect::<Vec<_>>()),
            Evaluation::of(&r.iter().map(|p| (p.label, p.candidate)).collect::<Vec<_>>()),
        )
    });
    if let Some((a, b)) = &reference
        && a.accuracy - b.accuracy > rules.reference_tolerance
    {
        refusals.push(Refusal::WorseOnReference {
            champion: a.accuracy,
            candidate: b.accuracy,
        });
    }
    GateDecision {
        promote: refusals.is_empty(),
        champion,
        candidate,
        champion_only,
        candidate_only,
        p_value,
        reference,
        refusals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(first: u8) -> ImageId {
        let mut b = [7u8; 32];
        b[0] = first;
        ImageId::from_digest(b)
    }

    fn facts(origin: Origin) -> ImageFacts {
        ImageFacts {
            id: id(3),
            origin,
            removed: false,
            verified: None,
            posterior: Some([0.05, 0.0, 0.05, 0.8, 0.1, 0.0, 0.0]),
            known: Some(Emotion::Sad),
        }
    }

    #[test]
    fn splits_follow_the_first_hash_byte() {
        assert_eq!(split_of(id(0)), Split::Train);
        assert_eq!(split_of(id(204)), Split::Train);
        assert_eq!(split_of(id(205)), Split::Val);
        assert_eq!(split_of(id(229)), Split::Val);
        assert_eq!(split_of(id(230)), Split::Test);
        assert_eq!(split_of(id(255)), Split::Test);
    }

    #[test]
    fn test_split_rounds_are_blind_when_asked() {
        assert!(!shows_model_guess(id(240), true));
        assert!(shows_model_guess(id(240), false));
        assert!(shows_model_guess(id(10), true));
        assert!(shows_model_guess(id(210), true));
    }

    #[test]
    fn consent_and_removal_come_first() {
        let rules = DataRules::default();
        let mut f = facts(Origin::Upload {
            use_for_training: false,
        });
        f.verified = Some(Emotion::Happy);
        assert_eq!(example_of(&f, &rules), Err(Excluded::NoConsent));
        let mut f = facts(Origin::Demo);
        f.removed = true;
        f.verified = Some(Emotion::Happy);
        assert_eq!(example_of(&f, &rules), Err(Excluded::Removed));
        let f = facts(Origin::Upload {
            use_for_training: true,
        });
        assert!(example_of(&f, &rules).is_ok());
    }

    #[test]
    fn targets_are_hard_for_moderators_soft_for_the_crowd() {
        let rules = DataRules::default();
        let mut f = facts(Origin::Dataset);
        let soft = example_of(&f, &rules).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!soft.hard);
        assert_eq!(soft.label(), Emotion::Happy);
        assert!((soft.weight - 0.8).abs() < 1e-6);
        f.verified = Some(Emotion::Fear);
        let hard = example_of(&f, &rules).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(hard.hard);
        assert_eq!(hard.label(), Emotion::Fear);
        f.verified = None;
        f.posterior = Some([0.3, 0.0, 0.3, 0.4, 0.0, 0.0, 0.0]);
        assert_eq!(example_of(&f, &rules), Err(Excluded::Unsure));
        let with_known = DataRules {
            use_known_labels: true,
            ..rules
        };
        assert_eq!(
            example_of(&f, &with_known).map(|t| t.label()),
            Ok(Emotion::Sad)
        );
        f.posterior = None;
        f.known = None;
        assert_eq!(example_of(&f, &with_known), Err(Excluded::Unlabelled));
    }

    #[test]
    fn evaluation_counts_what_it_should() {
        use Emotion::*;
        let e = Evaluation::of(&[(Happy, Happy), (Happy, Sad), (Sad, Sad), (Fear, Happy)]);
        assert_eq!(e.images, 4);
        assert!((e.accuracy - 0.5).abs() < 1e-12);
        assert_eq!(e.recall[Happy.index()], Some(0.5));
        assert_eq!(e.recall[Fear.index()], Some(0.0));
        assert_eq!(e.recall[Angry.index()], None);
        // F1: happy 2·1/(2+2) = 0.5, sad 2·1/(1+2) = 2/3, fear 0.
        assert!((e.macro_f1 - (0.5 + 2.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(e.confusion[Fear.index()][Happy.index()], 1);
    }

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        assert!((mcnemar_p(0, 0) - 1.0).abs() < 1e-12);
        assert!((mcnemar_p(1, 1) - 0.5).abs() < 1e-12);
        // P(X ≥ 8 | n = 10) = (45 + 10 + 1) / 1024.
        assert!((mcnemar_p(8, 10) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_p(10, 10) - 1.0 / 1024.0).abs() < 1e-12);
    }

    fn pairs(n: usize, champion_right: usize, candidate_right: usize) -> Vec<Paired> {
        (0..n)
            .map(|i| {
                let label = Emotion::ALL[i % EMOTION_COUNT];
                let wrong = Emotion::ALL[(i + 1) % EMOTION_COUNT];
                Paired {
                    label,
                    champion: if i < champion_right { label } else { wrong },
                    candidate: if i < candidate_right { label } else { wrong },
                }
            })
            .collect()
    }

    #[test]
    fn a_clearly_better_candidate_passes_and_a_worse_one_does_not() {
        let rules = GateRules::default();
        let d = gate(&pairs(100, 30, 70), None, &rules);
        assert!(d.promote, "{:?}", d.refusals);
        assert_eq!(d.candidate_only, 40);
        let d = gate(&pairs(100, 70, 30), None, &rules);
        assert!(!d.promote);
        assert!(
            d.refusals
                .iter()
                .any(|r| matches!(r, Refusal::NotBetter { .. }))
        );
        // A small gain on few images is not significant.
        let d = gate(&pairs(30, 20, 22), None, &rules);
        assert!(
            d.refusals
                .iter()
                .any(|r| matches!(r, Refusal::NotSignificant { .. }))
        );
    }

    #[test]
    fn the_reference_set_can_veto() {
        let rules = GateRules::default();
        let d = gate(&pairs(100, 30, 70), Some(&pairs(50, 40, 30)), &rules);
        assert!(!d.promote);
        assert!(
            d.refusals
                .iter()
                .any(|r| matches!(r, Refusal::WorseOnReference { .. }))
        );
    }

    #[test]
    fn a_class_that_collapses_vetoes_even_a_better_average() {
        use Emotion::*;
        let mut test = pairs(140, 40, 120);
        // The champion knew every fear face; the candidate none.
        for p in test.iter_mut().filter(|p| p.label == Fear) {
            p.champion = Fear;
            p.candidate = Happy;
        }
        let d = gate(&test, None, &GateRules::default());
        assert!(!d.promote);
        assert!(
            d.refusals
                .iter()
                .any(|r| matches!(r, Refusal::RecallDropped { class: Fear, .. }))
        );
    }

    proptest! {
        #[test]
        fn soft_targets_are_distributions(raw in proptest::array::uniform7(0.0f64..1.0), first in 0u8..=255) {
            let f = ImageFacts { id: id(first), origin: Origin::Demo, removed: false, verified: None, posterior: Some(raw), known: None };
            if let Ok(t) = example_of(&f, &DataRules { min_confidence: 0.0, use_known_labels: false }) {
                let sum: f32 = t.probabilities.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-4);
                prop_assert!(t.weight > 0.0 && t.weight <= 1.0 + 1e-6);
                prop_assert_eq!(t.split, split_of(f.id));
            }
        }

        #[test]
        fn the_gate_never_promotes_a_candidate_that_is_not_better(
            answers in proptest::collection::vec((0usize..7, 0usize..7, 0usize..7), 0..200)
        ) {
            let test: Vec<Paired> = answers.iter().map(|(l, a, b)| Paired {
                label: Emotion::ALL[*l], champion: Emotion::ALL[*a], candidate: Emotion::ALL[*b],
            }).collect();
            let d = gate(&test, None, &GateRules::default());
            if d.promote {
                prop_assert!(d.candidate.accuracy > d.champion.accuracy);
                prop_assert!(d.p_value < 0.05);
            }
            // Swapping the two models never promotes both ways.
            let swapped: Vec<Paired> = test.iter().map(|p| Paired { label: p.label, champion: p.candidate, candidate: p.champion }).collect();
            prop_assert!(!(d.promote && gate(&swapped, None, &GateRules::default()).promote));
        }

        #[test]
        fn mcnemar_is_a_probability_and_falls_with_more_wins(n in 0u32..60, k in 0u32..60) {
            let p = mcnemar_p(k, n);
            prop_assert!((0.0..=1.0).contains(&p));
            if k < n {
                prop_assert!(mcnemar_p(k + 1, n) <= p + 1e-12);
            }
        }
    }
}
