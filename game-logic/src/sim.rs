//! Crowd simulation with known truth, for measuring truth inference.
//!
//! Images get a true class and a model guess; players are skilled (right
//! with their own accuracy), spammers (uniformly random), or copiers (answer
//! the shown suggestion with probability `copy_p`, else like a skilled
//! player). The players play rounds through the real pool and the game's
//! per-answer step ([`answer_step`], as every answer in the server), with
//! decoys and gold; the server's truth pass ([`pass`]) ends it. Each image is routed until
//! its posterior is confident (max ≥ `confidence` with ≥ `min_labels`
//! labels) or it reaches `max_labels` (disputed). Everything is
//! deterministic in `seed`.

use crate::consensus::{ConsensusRule, ImageStatus};
use crate::ids::{ImageId, PlayerId};
use crate::selection::{ImagePool, PoolEntry};
use crate::truth::{
    Answer, Confusion, CrowdPrior, Evidence, ImageFacts, MODEL_PRIOR, PASS_ITERATIONS, PassLabel,
    Reliability, Schedule, SpamRules, Step, TrustRules, answer_step, decoy_class, map, pass,
};
use crate::{EMOTION_COUNT, Emotion};

/// A crowd to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdSpec {
    pub images: usize,
    pub players: usize,
    /// Share of players answering at random.
    pub spammers: f64,
    /// Share of players who copy the shown guess with probability `copy_p`.
    pub copiers: f64,
    pub copy_p: f64,
    /// Skilled players' accuracy is uniform in this range.
    pub skill: (f64, f64),
    /// How often the model's shown guess is right.
    pub model_accuracy: f64,
    /// Share of rounds whose suggestion is a decoy (a wrong class).
    pub decoy_share: f64,
    /// Share of picks that explore instead of taking the least certain image.
    pub explore: f64,
    /// The first this many images are gold (a moderator verified them): they
    /// are served as gold rounds on the real schedule and are not scored.
    pub gold: usize,
    /// A new player's rounds at the starting gold share (then it decays).
    pub gold_intro_rounds: u32,
    pub min_labels: usize,
    pub max_labels: usize,
    pub confidence: f64,
    pub seed: u64,
    /// How often each class is the truth (normalised; a zero leaves the
    /// class out, for label sets with K < 7). Real emotion pools are
    /// skewed: happy and neutral dominate.
    pub class_shares: [f64; EMOTION_COUNT],
    /// Share of a skilled player's mistakes that go to the class a face is
    /// most often confused with in FER studies ([`confused_with`]), the
    /// rest spread evenly.
    pub confusion: f64,
    /// Rounds each player plays at most: `(light, heavy, share of heavy
    /// players)`, e.g. `(5, 2000, 0.1)`; `None`: everyone plays until
    /// nothing is left.
    pub rounds: Option<(u32, u32, f64)>,
}

/// The class a face of class `e` is most often mistaken for (FER studies:
/// fear and surprise, anger and disgust, sadness and neutral; happiness,
/// rarely confused, with neutral).
pub fn confused_with(e: Emotion) -> Emotion {
    use Emotion::*;
    match e {
        Angry => Disgust,
        Disgust => Angry,
        Fear => Surprise,
        Surprise => Fear,
        Sad => Neutral,
        Neutral => Sad,
        Happy => Neutral,
    }
}

impl CrowdSpec {
    /// A named scenario: `base` (the default), `skewed` (happy 35%, neutral
    /// 25%, disgust 2%), `confused` (60% of mistakes structured), `prolific`
    /// (2,500 images; one player in ten labels up to 2,000, the rest 5),
    /// `k4` (four classes), `realistic` (skewed, confused and prolific).
    pub fn scenario(name: &str) -> Option<CrowdSpec> {
        let skewed = [0.08, 0.02, 0.08, 0.35, 0.25, 0.12, 0.10];
        let base = CrowdSpec::default();
        Some(match name {
            "base" => base,
            "skewed" => CrowdSpec {
                class_shares: skewed,
                ..base
            },
            "confused" => CrowdSpec {
                confusion: 0.6,
                ..base
            },
            "prolific" => CrowdSpec {
                images: 2_500,
                rounds: Some((5, 2_000, 0.1)),
                ..base
            },
            "k4" => CrowdSpec {
                // angry, happy, neutral, sad
                class_shares: [0.25, 0.0, 0.0, 0.25, 0.25, 0.25, 0.0],
                ..base
            },
            "realistic" => CrowdSpec {
                images: 2_500,
                rounds: Some((5, 2_000, 0.1)),
                class_shares: skewed,
                confusion: 0.6,
                ..base
            },
            _ => return None,
        })
    }

    /// The scenarios [`CrowdSpec::scenario`] knows.
    pub const SCENARIOS: [&'static str; 6] =
        ["base", "skewed", "confused", "prolific", "k4", "realistic"];
}

impl Default for CrowdSpec {
    fn default() -> Self {
        CrowdSpec {
            images: 500,
            players: 60,
            spammers: 0.2,
            copiers: 0.2,
            copy_p: 0.7,
            skill: (0.55, 0.95),
            model_accuracy: 0.6,
            decoy_share: 0.1,
            explore: 0.05,
            gold: 25,
            gold_intro_rounds: 4,
            min_labels: 3,
            max_labels: 9,
            confidence: 0.9,
            seed: 7,
            class_shares: [1.0; EMOTION_COUNT],
            confusion: 0.0,
            rounds: None,
        }
    }
}

/// One simulated label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimLabel {
    pub image: usize,
    pub player: usize,
    pub answer: Emotion,
    pub shown: Emotion,
    /// The shown suggestion was a decoy, not the model's guess.
    pub decoy: bool,
}

/// What a simulation produced.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub truths: Vec<Emotion>,
    pub labels: Vec<SimLabel>,
    /// Emofy's answer per image (the posterior's top class).
    pub consensus: Vec<Emotion>,
    /// Whether each image retired confidently (else disputed at the cap).
    pub retired: Vec<bool>,
    /// Whether each image is gold (not scored).
    pub gold: Vec<bool>,
    /// Per player: whether they judge every face themselves (skilled: not
    /// a spammer, not a copier), and the spam rules' flag at the end.
    pub skilled: Vec<bool>,
    pub flags: Vec<Option<crate::truth::SpamFlag>>,
}

impl SimOutcome {
    /// Share of the scored (non-gold) images where `answers` is the truth.
    pub fn accuracy_of(&self, answers: &[Emotion]) -> f64 {
        let mut n = 0;
        let mut right = 0;
        for ((a, t), g) in answers.iter().zip(&self.truths).zip(&self.gold) {
            if !g {
                n += 1;
                right += usize::from(a == t);
            }
        }
        right as f64 / f64::from(n.max(1))
    }

    /// Share of the scored images whose consensus is the truth.
    pub fn accuracy(&self) -> f64 {
        self.accuracy_of(&self.consensus)
    }

    /// Labels on the scored images, per scored image (gold rounds left out).
    pub fn scored_labels_per_image(&self) -> f64 {
        let scored = self.gold.iter().filter(|g| !**g).count();
        let labels = self.labels.iter().filter(|l| !self.gold[l.image]).count();
        labels as f64 / scored.max(1) as f64
    }

    /// Every label spent (gold rounds included) per scored image.
    pub fn labels_per_image(&self) -> f64 {
        let scored = self.gold.iter().filter(|g| !**g).count();
        self.labels.len() as f64 / scored.max(1) as f64
    }
}

/// The simulation's draws: [`crate::rng::SplitMix64`] and the shapes it needs.
struct Rng(crate::rng::SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn unit(&mut self) -> f64 {
        self.0.unit()
    }

    /// A class drawn by `shares` (weights; zeros never drawn).
    fn class(&mut self, shares: &[f64; EMOTION_COUNT]) -> Emotion {
        let total: f64 = shares.iter().filter(|x| **x > 0.0).sum();
        let mut u = self.unit() * total;
        for (i, w) in shares.iter().enumerate() {
            if *w > 0.0 {
                if u < *w {
                    return Emotion::ALL[i];
                }
                u -= w;
            }
        }
        Emotion::ALL[shares.iter().rposition(|w| *w > 0.0).unwrap_or(0)]
    }

    /// A wrong class among the classes in play: the structured confusion
    /// with probability `confusion`, else uniform.
    fn other_than(&mut self, e: Emotion, shares: &[f64; EMOTION_COUNT], confusion: f64) -> Emotion {
        let partner = confused_with(e);
        if shares[partner.index()] > 0.0 && partner != e && self.unit() < confusion {
            return partner;
        }
        let others: Vec<Emotion> = Emotion::ALL
            .iter()
            .copied()
            .filter(|c| *c != e && shares[c.index()] > 0.0)
            .collect();
        if others.is_empty() {
            return e;
        }
        others[(self.next() % others.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Skilled(f64),
    Spammer,
    Copier(f64),
}

fn image_id(i: usize) -> ImageId {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d[8..16].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    ImageId::from_digest(d)
}

/// What a player of `kind` answers on a face of class `t` shown `shown`.
fn answer_of(kind: Kind, t: Emotion, shown: Emotion, spec: &CrowdSpec, rng: &mut Rng) -> Emotion {
    match kind {
        Kind::Spammer => rng.class(&spec.class_shares.map(|w| if w > 0.0 { 1.0 } else { 0.0 })),
        Kind::Copier(_) if rng.unit() < spec.copy_p => shown,
        Kind::Skilled(a) | Kind::Copier(a) => {
            if rng.unit() < a {
                t
            } else {
                rng.other_than(t, &spec.class_shares, spec.confusion)
            }
        }
    }
}

/// The crowd both strategies face: truths, the model's guesses, players.
fn crowd(spec: &CrowdSpec, rng: &mut Rng) -> (Vec<Emotion>, Vec<Emotion>, Vec<Kind>) {
    let truths: Vec<Emotion> = (0..spec.images)
        .map(|_| rng.class(&spec.class_shares))
        .collect();
    let guess: Vec<Emotion> = truths
        .iter()
        .map(|t| {
            if rng.unit() < spec.model_accuracy {
                *t
            } else {
                rng.other_than(*t, &spec.class_shares, spec.confusion)
            }
        })
        .collect();
    let kinds: Vec<Kind> = (0..spec.players)
        .map(|p| {
            let f = p as f64 / spec.players.max(1) as f64;
            let skill = spec.skill.0 + rng.unit() * (spec.skill.1 - spec.skill.0);
            if f < spec.spammers {
                Kind::Spammer
            } else if f < spec.spammers + spec.copiers {
                Kind::Copier(skill)
            } else {
                Kind::Skilled(skill)
            }
        })
        .collect();
    (truths, guess, kinds)
}

/// Runs the simulation.
pub fn simulate(spec: &CrowdSpec) -> SimOutcome {
    let mut rng = Rng(crate::rng::SplitMix64(spec.seed));
    let (truths, guess, kinds) = crowd(spec, &mut rng);
    let crowd_prior = CrowdPrior::default();
    let spam = SpamRules::default();
    let trust = TrustRules::default();
    let schedule = Schedule {
        decoy_share: spec.decoy_share,
        decoy_after_rounds: 0,
        gold_intro_rounds: spec.gold_intro_rounds,
        ..Schedule::default()
    };
    let confidence = (spec.confidence * 1000.0).round().clamp(501.0, 1000.0) as u32;
    let rule = ConsensusRule::new(spec.min_labels as u32, confidence, spec.max_labels as u32)
        .unwrap_or_default();
    let mut players = vec![crowd_prior.newcomer(); spec.players];
    let mut model = Confusion::new(MODEL_PRIOR);
    let ids: Vec<ImageId> = (0..spec.images).map(image_id).collect();
    let index: std::collections::HashMap<ImageId, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let gold_n = spec.gold.min(spec.images);
    let mut pool = ImagePool::new(rule);
    for (i, id) in ids.iter().enumerate().skip(gold_n) {
        let mut e = PoolEntry::fresh(*id, None);
        e.model_guess = Some(guess[i]);
        pool.upsert(e);
    }
    let mut by_image: Vec<Vec<(usize, Emotion, Emotion)>> = vec![Vec::new(); spec.images];
    let mut status = vec![ImageStatus::Open; spec.images];
    let mut labels = Vec::new();
    let caps: Vec<u32> = (0..spec.players)
        .map(|p| match spec.rounds {
            None => u32::MAX,
            Some((light, heavy, share)) => {
                // Heavy players spread over every kind (spammers too).
                let u = ((p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    / (1u64 << 53) as f64;
                if u < share { heavy } else { light }
            }
        })
        .collect();
    let mut played = vec![0u32; spec.players];
    let mut idle_rounds = 0;
    while idle_rounds < spec.players {
        idle_rounds = 0;
        for p in 0..spec.players {
            if played[p] >= caps[p] {
                idle_rounds += 1;
                continue;
            }
            let player = PlayerId(uuid::Uuid::from_u128(p as u128 + 1));
            let explore = rng.unit() < spec.explore;
            let (u_gold, u_decoy) = (rng.unit(), rng.unit());
            let plan = schedule.plan(players[p].answers, gold_n > 0, u_gold, u_decoy);
            let start = (rng.next() % gold_n.max(1) as u64) as usize;
            let gold_pick = if plan.gold {
                (0..gold_n)
                    .map(|k| (start + k) % gold_n)
                    .find(|i| !by_image[*i].iter().any(|(q, _, _)| *q == p))
            } else {
                None
            };
            let pick = match gold_pick {
                Some(i) => Some(ids[i]),
                None => pool.select(
                    player,
                    |id| {
                        index
                            .get(id)
                            .is_some_and(|i| by_image[*i].iter().any(|(q, _, _)| *q == p))
                    },
                    4,
                    rng.next(),
                    explore,
                ),
            };
            let Some(i) = pick.and_then(|id| index.get(&id).copied()) else {
                idle_rounds += 1;
                continue;
            };
            played[p] += 1;
            let t = truths[i];
            let shown = if plan.decoy {
                decoy_class(guess[i], rng.next())
            } else {
                guess[i]
            };
            let answer = answer_of(kinds[p], t, shown, spec, &mut rng);
            by_image[i].push((p, answer, shown));
            labels.push(SimLabel {
                image: i,
                player: p,
                answer,
                shown,
                decoy: plan.decoy,
            });
            // The game's per-answer step (a gold round: the verified label
            // judges the image and teaches the matrix exactly).
            let gold = (i < gold_n).then_some(t);
            let Step {
                judgement: judged,
                learned,
                ..
            } = {
                let facts = ImageFacts {
                    status: status[i],
                    gold,
                    prior: crowd_prior.class_prior,
                    model: gold.is_none().then_some((&model, guess[i])),
                    known: false,
                };
                let earlier: Vec<Evidence<'_>> = by_image[i][..by_image[i].len() - 1]
                    .iter()
                    .map(|(q, a, s)| Evidence {
                        reliability: &players[*q],
                        answer: *a,
                        shown: Some(*s),
                    })
                    .collect();
                answer_step(
                    &rule,
                    &trust,
                    &spam,
                    &crowd_prior.class_prior,
                    &facts,
                    &earlier,
                    &players[p],
                    &Answer {
                        answer,
                        shown: Some(shown),
                        decoy: plan.decoy,
                        response_ms: 2_000,
                    },
                )
            };
            players[p] = learned;
            if gold.is_some() {
                continue;
            }
            if judged.status != status[i] {
                // The model learns how far to trust itself from closed images.
                model.observe(&judged.posterior, guess[i]);
            }
            status[i] = judged.status;
            let mut e = PoolEntry::fresh(ids[i], None);
            e.status = judged.status;
            e.model_guess = Some(guess[i]);
            if judged.counted > 0 {
                let (lead, pr) = map(&judged.posterior);
                e.leading = Some((lead, (pr * 1000.0).round() as u16));
            }
            pool.upsert(e);
        }
    }
    // The server's truth pass over everything (the model is one more
    // labeller: one guess per image).
    let records: Vec<Option<&Reliability>> = players.iter().map(Some).collect();
    let all: Vec<PassLabel> = labels
        .iter()
        .map(|l| PassLabel {
            player: l.player,
            image: l.image,
            answer: l.answer,
            shown: Some(l.shown),
        })
        .collect();
    let guesses: Vec<(usize, Emotion)> = guess.iter().copied().enumerate().collect();
    let gold_truth: Vec<(usize, Emotion)> = (0..gold_n).map(|i| (i, truths[i])).collect();
    let fit = pass(
        &records,
        spec.images,
        &all,
        &guesses,
        &gold_truth,
        &[],
        &crowd_prior,
        &trust,
        PASS_ITERATIONS,
    );
    SimOutcome {
        // An image nobody's counted label reached: the model's guess alone.
        consensus: fit
            .posteriors
            .iter()
            .zip(&guess)
            .map(|(p, g)| p.map_or(*g, |p| map(&p).0))
            .collect(),
        truths,
        labels,
        retired: status
            .iter()
            .map(|s| matches!(s, ImageStatus::Retired { .. }))
            .collect(),
        gold: (0..spec.images).map(|i| i < gold_n).collect(),
        skilled: kinds
            .iter()
            .map(|k| matches!(k, Kind::Skilled(_)))
            .collect(),
        flags: players.iter().map(|r| r.flag).collect(),
    }
}

/// The usual baseline on the same crowd: every scored image gets `overlap`
/// labels from distinct random players, shown the model's guess, no gold,
/// no decoys, no routing. `consensus` is majority vote.
pub fn fixed_overlap(spec: &CrowdSpec, overlap: usize) -> SimOutcome {
    let mut rng = Rng(crate::rng::SplitMix64(spec.seed));
    let (truths, guess, kinds) = crowd(spec, &mut rng);
    let gold_n = spec.gold.min(spec.images);
    let mut labels = Vec::new();
    for i in gold_n..spec.images {
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < overlap.min(spec.players) {
            let p = (rng.next() % spec.players.max(1) as u64) as usize;
            if chosen.contains(&p) {
                continue;
            }
            chosen.push(p);
            let t = truths[i];
            let shown = guess[i];
            let answer = answer_of(kinds[p], t, shown, spec, &mut rng);
            labels.push(SimLabel {
                image: i,
                player: p,
                answer,
                shown,
                decoy: false,
            });
        }
    }
    let mut out = SimOutcome {
        consensus: Vec::new(),
        retired: vec![false; spec.images],
        gold: (0..spec.images).map(|i| i < gold_n).collect(),
        skilled: kinds
            .iter()
            .map(|k| matches!(k, Kind::Skilled(_)))
            .collect(),
        flags: vec![None; spec.players],
        truths,
        labels,
    };
    out.consensus = majority(&out);
    out
}

/// Majority vote over the same labels (ties: the first class), for comparison.
pub fn majority(outcome: &SimOutcome) -> Vec<Emotion> {
    let mut votes = vec![[0u32; EMOTION_COUNT]; outcome.truths.len()];
    for l in &outcome.labels {
        votes[l.image][l.answer.index()] += 1;
    }
    votes
        .iter()
        .map(|v| {
            let mut best = 0;
            for (i, n) in v.iter().enumerate() {
                if *n > v[best] {
                    best = i;
                }
            }
            Emotion::ALL[best]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_better_than_a_fixed_overlap() {
        let spec = CrowdSpec::default();
        let a = simulate(&spec);
        let b = simulate(&spec);
        assert_eq!(a.labels, b.labels);
        let fixed = fixed_overlap(&spec, 5);
        assert_eq!(fixed.labels.len(), 5 * (spec.images - spec.gold));
        // Fewer labels on the scored images than a fixed overlap of 5, and
        // more accurate than its majority vote.
        assert!(
            a.scored_labels_per_image() < 5.0,
            "{}",
            a.scored_labels_per_image()
        );
        assert!(
            a.accuracy() >= fixed.accuracy() + 0.02,
            "{} vs fixed-overlap majority {}",
            a.accuracy(),
            fixed.accuracy()
        );
        assert!(a.labels_per_image() <= spec.max_labels as f64);
        let retired = a.retired.iter().filter(|r| **r).count();
        assert!(retired > 400, "{retired} retired");
        // Decoys were served and recorded.
        assert!(a.labels.iter().any(|l| l.decoy));
    }

    /// Skewed pools, structured confusions and four classes: the game's
    /// truth beats majority vote on its own labels, no skilled player is
    /// flagged (answering "happy" a lot is right on a happy pool), and
    /// copiers following decoys still are.
    #[test]
    fn skewed_confused_and_small_pools_hold() {
        for name in ["skewed", "confused", "k4"] {
            let Some(spec) = CrowdSpec::scenario(name) else {
                panic!("unknown scenario {name}")
            };
            let o = simulate(&spec);
            let mv = o.accuracy_of(&majority(&o));
            assert!(
                o.accuracy() > mv,
                "{name}: {} vs majority {mv}",
                o.accuracy()
            );
            let skilled_flagged = o
                .skilled
                .iter()
                .zip(&o.flags)
                .filter(|(s, f)| **s && f.is_some())
                .count();
            assert_eq!(skilled_flagged, 0, "{name}");
            assert!(
                o.flags
                    .contains(&Some(crate::truth::SpamFlag::AlwaysCopies)),
                "{name}"
            );
            if name == "k4" {
                // No class outside the four is ever the answer.
                assert!(
                    o.consensus
                        .iter()
                        .all(|c| spec.class_shares[c.index()] > 0.0)
                );
            }
        }
    }
}
