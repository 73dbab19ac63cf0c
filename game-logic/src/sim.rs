//! Crowd simulation with known truth, for measuring truth inference.
//!
//! Images get a true class and a model guess; players are skilled (right
//! with their own accuracy), spammers (uniformly random), or copiers (answer
//! the shown model guess with probability `copy_p`, else like a skilled
//! player). The players play rounds through the real selection and truth
//! inference: each image is routed until its posterior is confident (max ≥
//! `confidence` with ≥ `min_labels` labels) or it reaches `max_labels`
//! (disputed). Everything is deterministic in `seed`.

use crate::truth::{Confusion, MatrixPrior, em, map, posterior};
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
    pub min_labels: usize,
    pub max_labels: usize,
    pub confidence: f64,
    /// Labels between full EM passes.
    pub em_every: usize,
    pub seed: u64,
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
            min_labels: 3,
            max_labels: 9,
            confidence: 0.9,
            em_every: 500,
            seed: 7,
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
}

impl SimOutcome {
    /// Share of images whose consensus is the truth.
    pub fn accuracy(&self) -> f64 {
        let right = self
            .consensus
            .iter()
            .zip(&self.truths)
            .filter(|(a, b)| a == b)
            .count();
        right as f64 / self.truths.len().max(1) as f64
    }

    pub fn labels_per_image(&self) -> f64 {
        self.labels.len() as f64 / self.truths.len().max(1) as f64
    }
}

/// SplitMix64: small, seedable, good enough for simulations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn class(&mut self) -> Emotion {
        Emotion::ALL[(self.next() % EMOTION_COUNT as u64) as usize]
    }

    fn other_than(&mut self, e: Emotion) -> Emotion {
        let k = 1 + (self.next() % (EMOTION_COUNT as u64 - 1)) as usize;
        Emotion::ALL[(e.index() + k) % EMOTION_COUNT]
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Skilled(f64),
    Spammer,
    Copier(f64),
}

/// Runs the simulation.
pub fn simulate(spec: &CrowdSpec) -> SimOutcome {
    let mut rng = Rng(spec.seed);
    let truths: Vec<Emotion> = (0..spec.images).map(|_| rng.class()).collect();
    let shown: Vec<Emotion> = truths
        .iter()
        .map(|t| {
            if rng.unit() < spec.model_accuracy {
                *t
            } else {
                rng.other_than(*t)
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
    let prior = MatrixPrior::default();
    let mut matrices = vec![Confusion::new(prior); spec.players];
    let class_prior = [1.0 / EMOTION_COUNT as f64; EMOTION_COUNT];
    let mut by_image: Vec<Vec<(usize, Emotion)>> = vec![Vec::new(); spec.images];
    let mut posts = vec![class_prior; spec.images];
    let mut closed = vec![false; spec.images];
    let mut retired = vec![false; spec.images];
    let mut labels = Vec::new();
    let mut since_em = 0;
    let mut idle_rounds = 0;
    while idle_rounds < spec.players {
        idle_rounds = 0;
        for p in 0..spec.players {
            // Selection: the open image this player has not labelled whose posterior is least certain.
            let pick = (0..spec.images)
                .filter(|i| !closed[*i] && !by_image[*i].iter().any(|(q, _)| *q == p))
                .min_by(|a, b| {
                    map(&posts[*a])
                        .1
                        .total_cmp(&map(&posts[*b]).1)
                        .then(a.cmp(b))
                });
            let Some(i) = pick else {
                idle_rounds += 1;
                continue;
            };
            let t = truths[i];
            let answer = match kinds[p] {
                Kind::Spammer => rng.class(),
                Kind::Copier(_) if rng.unit() < spec.copy_p => shown[i],
                Kind::Skilled(a) | Kind::Copier(a) => {
                    if rng.unit() < a {
                        t
                    } else {
                        rng.other_than(t)
                    }
                }
            };
            by_image[i].push((p, answer));
            labels.push(SimLabel {
                image: i,
                player: p,
                answer,
                shown: shown[i],
            });
            posts[i] = posterior(
                &class_prior,
                by_image[i].iter().map(|(q, a)| (&matrices[*q], *a)),
            );
            matrices[p].observe(&posts[i], answer);
            let n = by_image[i].len();
            if n >= spec.min_labels && map(&posts[i]).1 >= spec.confidence {
                closed[i] = true;
                retired[i] = true;
            } else if n >= spec.max_labels {
                closed[i] = true;
            }
            since_em += 1;
            if since_em >= spec.em_every {
                since_em = 0;
                let all: Vec<(usize, usize, Emotion)> = labels
                    .iter()
                    .map(|l| (l.player, l.image, l.answer))
                    .collect();
                let (m, ps) = em(spec.players, spec.images, &all, &[], prior, 20);
                matrices = m;
                for (i, p) in ps.into_iter().enumerate() {
                    if !by_image[i].is_empty() {
                        posts[i] = p;
                    }
                }
            }
        }
    }
    let all: Vec<(usize, usize, Emotion)> = labels
        .iter()
        .map(|l| (l.player, l.image, l.answer))
        .collect();
    let (_, final_posts) = em(spec.players, spec.images, &all, &[], prior, 50);
    SimOutcome {
        consensus: final_posts.iter().map(|p| map(p).0).collect(),
        truths,
        labels,
        retired,
    }
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
    fn deterministic_and_better_than_majority_vote() {
        let spec = CrowdSpec {
            images: 200,
            players: 40,
            ..CrowdSpec::default()
        };
        let a = simulate(&spec);
        let b = simulate(&spec);
        assert_eq!(a.labels, b.labels);
        let mv = majority(&a);
        let mv_acc = mv.iter().zip(&a.truths).filter(|(x, y)| x == y).count() as f64 / 200.0;
        assert!(
            a.accuracy() >= mv_acc,
            "{} vs majority {mv_acc}",
            a.accuracy()
        );
        assert!(a.labels_per_image() <= spec.max_labels as f64);
        assert!(a.retired.iter().filter(|r| **r).count() > 100);
    }
}
