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
//! Costs are constant per label: a posterior over at most `max_labels`
//! labels and a 7-entry matrix update. [`em`] runs the full batch EM over a
//! set of labels for the periodic correction pass.

use crate::{EMOTION_COUNT, Emotion};

const K: usize = EMOTION_COUNT;

/// Pseudo-counts of a new player's matrix: `diagonal` on each row's correct
/// answer, `off_diagonal` on each wrong one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatrixPrior {
    pub diagonal: f64,
    pub off_diagonal: f64,
}

impl Default for MatrixPrior {
    /// About 70% accurate at first, worth ~4 labels of evidence per row.
    fn default() -> Self {
        MatrixPrior {
            diagonal: 2.8,
            off_diagonal: 0.2,
        }
    }
}

/// A player's confusion matrix, as Dirichlet pseudo-counts per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Confusion {
    counts: [[f64; K]; K],
}

impl Confusion {
    pub fn new(prior: MatrixPrior) -> Confusion {
        let mut counts = [[prior.off_diagonal.max(1e-6); K]; K];
        for (t, row) in counts.iter_mut().enumerate() {
            row[t] = prior.diagonal.max(1e-6);
        }
        Confusion { counts }
    }

    /// P(answer | truth) for every answer: the row's mean, summing to 1.
    pub fn row(&self, truth: Emotion) -> [f64; K] {
        let row = &self.counts[truth.index()];
        let sum: f64 = row.iter().sum();
        let mut out = [0.0; K];
        for (o, c) in out.iter_mut().zip(row) {
            *o = c / sum;
        }
        out
    }

    /// P(answer | truth).
    pub fn p(&self, truth: Emotion, answer: Emotion) -> f64 {
        let row = &self.counts[truth.index()];
        row[answer.index()] / row.iter().sum::<f64>()
    }

    /// Learns from one label: the answer counts towards each possible truth
    /// in proportion to `belief` (a posterior; one-hot for gold).
    pub fn observe(&mut self, belief: &[f64; K], answer: Emotion) {
        for (t, w) in belief.iter().enumerate() {
            if w.is_finite() && *w > 0.0 {
                self.counts[t][answer.index()] += w;
            }
        }
    }

    /// Takes back an earlier [`Confusion::observe`] (before re-learning the
    /// label with a newer belief), never going below `floor` pseudo-counts.
    pub fn unobserve(&mut self, belief: &[f64; K], answer: Emotion, floor: f64) {
        for (t, w) in belief.iter().enumerate() {
            if w.is_finite() && *w > 0.0 {
                let c = &mut self.counts[t][answer.index()];
                *c = (*c - w).max(floor.max(1e-6));
            }
        }
    }

    /// Expected accuracy over a uniform truth: the mean of the diagonal.
    pub fn accuracy(&self) -> f64 {
        Emotion::ALL.iter().map(|e| self.p(*e, *e)).sum::<f64>() / K as f64
    }
}

/// The posterior over the true class of an image, from a class prior and
/// its labels (each with its labeler's matrix). Computed in log space; sums to 1.
pub fn posterior<'a>(
    class_prior: &[f64; K],
    labels: impl IntoIterator<Item = (&'a Confusion, Emotion)>,
) -> [f64; K] {
    let mut log = [0.0f64; K];
    for (l, p) in log.iter_mut().zip(class_prior) {
        *l = p.max(1e-12).ln();
    }
    for (m, answer) in labels {
        for (t, l) in log.iter_mut().enumerate() {
            *l += m.p(Emotion::ALL[t], answer).max(1e-12).ln();
        }
    }
    normalize_log(&log)
}

/// A gold image's posterior: certain.
pub fn gold(truth: Emotion) -> [f64; K] {
    let mut out = [0.0; K];
    out[truth.index()] = 1.0;
    out
}

fn normalize_log(log: &[f64; K]) -> [f64; K] {
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
pub fn map(posterior: &[f64; K]) -> (Emotion, f64) {
    let mut best = 0;
    for (i, p) in posterior.iter().enumerate() {
        if *p > posterior[best] {
            best = i;
        }
    }
    (Emotion::ALL[best], posterior[best])
}

/// One label for [`em`]: (player index, image index, answer).
pub type Label = (usize, usize, Emotion);

/// Batch Dawid–Skene EM over `labels` from `players` players on `images`
/// images, with known truths for gold images. Returns the matrices and the
/// image posteriors after `iterations` rounds (or earlier convergence).
pub fn em(
    players: usize,
    images: usize,
    labels: &[Label],
    gold_truth: &[(usize, Emotion)],
    prior: MatrixPrior,
    iterations: usize,
) -> (Vec<Confusion>, Vec<[f64; K]>) {
    let mut class_prior = [1.0 / K as f64; K];
    let mut matrices = vec![Confusion::new(prior); players];
    let mut gold_of = vec![None; images];
    for (i, t) in gold_truth {
        if let Some(g) = gold_of.get_mut(*i) {
            *g = Some(*t);
        }
    }
    let mut posts = vec![class_prior; images];
    for _ in 0..iterations.max(1) {
        // E: posteriors from the current matrices.
        let mut by_image: Vec<Vec<(usize, Emotion)>> = vec![Vec::new(); images];
        for (p, i, a) in labels {
            if *p < players && *i < images {
                by_image[*i].push((*p, *a));
            }
        }
        let mut change: f64 = 0.0;
        for (i, ls) in by_image.iter().enumerate() {
            let next = match gold_of[i] {
                Some(t) => gold(t),
                None => posterior(&class_prior, ls.iter().map(|(p, a)| (&matrices[*p], *a))),
            };
            for (a, b) in next.iter().zip(&posts[i]) {
                change = change.max((a - b).abs());
            }
            posts[i] = next;
        }
        // M: matrices and class prior from the posteriors.
        matrices = vec![Confusion::new(prior); players];
        for (p, i, a) in labels {
            if *p < players && *i < images {
                matrices[*p].observe(&posts[*i], *a);
            }
        }
        let mut mass = [1.0; K];
        for post in &posts {
            for (m, p) in mass.iter_mut().zip(post) {
                *m += p;
            }
        }
        let total: f64 = mass.iter().sum();
        for (c, m) in class_prior.iter_mut().zip(mass) {
            *c = m / total;
        }
        if change < 1e-6 {
            break;
        }
    }
    (matrices, posts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;

    const UNIFORM: [f64; K] = [1.0 / K as f64; K];

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
            assert!((p - 1.0 / K as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn em_learns_who_to_trust_from_gold() {
        // Players 0–2 are right; player 3 always answers "neutral". Images 0–3 are gold.
        let truths = [Happy, Sad, Angry, Fear, Surprise, Disgust, Happy, Sad];
        let mut labels = Vec::new();
        for (i, t) in truths.iter().enumerate() {
            for p in 0..3 {
                labels.push((p, i, *t));
            }
            labels.push((3, i, Neutral));
        }
        let gold: Vec<(usize, Emotion)> = (0..4).map(|i| (i, truths[i])).collect();
        let (m, posts) = em(4, truths.len(), &labels, &gold, MatrixPrior::default(), 50);
        for (i, t) in truths.iter().enumerate() {
            assert_eq!(map(&posts[i]).0, *t, "image {i}");
        }
        assert!(m[0].accuracy() > m[3].accuracy() + 0.1);
        assert!(m[3].p(Happy, Neutral) > m[0].p(Happy, Neutral) + 0.2);
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
