//! Truth inference over any class set: Dawid–Skene with a learned class
//! prior and worker matrices shrunk towards the pooled crowd.
//!
//! The game's seven emotions are one class set; label sets collected
//! elsewhere (Label Studio, Toloka, MTurk exports) bring their own, from 2
//! to [`MAX_CLASSES`] classes. Classes are indices `0..k`; nothing here
//! assumes the emotions, and no class exists that the caller did not name.
//!
//! The model: each task has a true class `t` drawn from the class prior
//! `π`; worker `w` answers `a` with probability `θ_w[t][a]`. The fit is
//! maximum a posteriori:
//!
//! * `π ~ Dirichlet(class_alpha + 1)`: learned from the pool's class
//!   frequencies (a skewed pool gets a skewed prior), never zero.
//! * each row `θ_w[t] ~ Dirichlet(matrix_strength · θ̄[t])`, centred on the
//!   **pooled** matrix `θ̄` (all workers' expected answers together): a
//!   worker with a few labels is assumed to be like the crowd, and earns a
//!   matrix of their own with evidence (empirical Bayes). The pooled matrix
//!   itself starts from `pooled_accuracy` on the diagonal with
//!   `pooled_strength` pseudo-labels per row.
//!
//! EM starts from the vote shares (soft majority vote), as crowd-kit's
//! DawidSkene does, alternates the M step (priors, pooled matrix, worker
//! matrices) and the E step (posteriors) until no posterior moves by more
//! than `tolerance`. Gold tasks keep their known class.
//!
//! Label by label, the game's own step does the same over any class set
//! ([`crate::replay`]: the per-answer step every answer takes, and the
//! periodic truth pass), so there is one online algorithm, not two.
//!
//! Ties: the most probable class is the first of equals
//! ([`top`]); that is the only index preference.

use serde::{Deserialize, Serialize};

/// The most classes a label set may have.
pub const MAX_CLASSES: usize = 16;

/// One label: `worker` said `class` about `task` (dense indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub task: u32,
    pub worker: u32,
    pub class: u8,
}

/// The priors and stopping rule of the fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Priors {
    /// Pseudo-tasks per class added to the class prior's counts.
    pub class_alpha: f64,
    /// Pseudo-labels per row pulling a worker's matrix towards the pooled
    /// one (with `auto_strength`: where the choice starts)…
    pub matrix_strength: f64,
    /// …or chosen per label set by how well each of [`STRENGTHS`] predicts
    /// held-out labels (five-fold cross-validation, [`choose_strength`]).
    pub auto_strength: bool,
    /// The pooled matrix's own prior: diagonal share…
    pub pooled_accuracy: f64,
    /// …worth this many pseudo-labels per row.
    pub pooled_strength: f64,
    /// EM stops when no posterior moves by more than this…
    pub tolerance: f64,
    /// …or after this many iterations.
    pub iterations: usize,
}

impl Default for Priors {
    /// Chosen on real crowds (see `docs/benchmarks.md`, "Truth inference on
    /// real crowds"): a light pull towards the pooled matrix (four
    /// pseudo-labels per row) lets prolific workers have matrices of their
    /// own while one-off workers borrow the crowd's.
    fn default() -> Self {
        Priors {
            class_alpha: 1.0,
            matrix_strength: 4.0,
            auto_strength: true,
            pooled_accuracy: 0.7,
            pooled_strength: 2.0,
            tolerance: 1e-6,
            iterations: 200,
        }
    }
}

/// Why a label set cannot be fitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrowdError {
    #[error("{0} classes: a label set needs 2 to {MAX_CLASSES}")]
    Classes(usize),
    #[error("label {index}: class {class} is not below {k}")]
    Class { index: usize, class: u8, k: usize },
    #[error("gold for task {task}: class {class} is not below {k}")]
    Gold { task: u32, class: u8, k: usize },
    #[error("label {index}: task {task} or worker {worker} out of range")]
    Index {
        index: usize,
        task: u32,
        worker: u32,
    },
}

/// A confusion matrix: `k` rows (truth) of `k` answer probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    k: usize,
    p: Vec<f64>,
}

impl Matrix {
    /// A matrix from its rows (each normalised to sum to 1; a row of zeros
    /// becomes uniform).
    pub fn from_rows(rows: Vec<Vec<f64>>) -> Matrix {
        let k = rows.len();
        let mut p = Vec::with_capacity(k * k);
        for row in &rows {
            let sum: f64 = row
                .iter()
                .take(k)
                .filter(|x| x.is_finite() && **x > 0.0)
                .sum();
            for a in 0..k {
                let x = row.get(a).copied().filter(|x| x.is_finite() && *x > 0.0);
                p.push(if sum > 0.0 {
                    x.unwrap_or(0.0) / sum
                } else {
                    1.0 / k as f64
                });
            }
        }
        Matrix { k, p }
    }

    /// P(answer | truth).
    pub fn p(&self, truth: usize, answer: usize) -> f64 {
        self.p[truth * self.k + answer]
    }

    /// Row `truth`: the answer distribution, summing to 1.
    pub fn row(&self, truth: usize) -> &[f64] {
        &self.p[truth * self.k..(truth + 1) * self.k]
    }

    pub fn classes(&self) -> usize {
        self.k
    }

    /// Expected accuracy when the truth follows `prior`.
    pub fn accuracy(&self, prior: &[f64]) -> f64 {
        (0..self.k).map(|t| prior[t] * self.p(t, t)).sum()
    }

    /// How much one answer tells about the truth, as a share of what there
    /// is to know: I(truth; answer) / H(truth) under `prior` (0: the answer
    /// is independent of the truth, as a bot pressing one button; 1: it
    /// names the truth). Judged against this pool, so a worker who answers
    /// the majority class because it is right is informative.
    pub fn informativeness(&self, prior: &[f64]) -> f64 {
        let h: f64 = prior
            .iter()
            .filter(|p| **p > 0.0)
            .map(|p| -p * p.ln())
            .sum();
        if h <= 0.0 {
            return 1.0;
        }
        let mut marginal = vec![0.0; self.k];
        for (t, pt) in prior.iter().enumerate() {
            for (a, m) in marginal.iter_mut().enumerate() {
                *m += pt * self.p(t, a);
            }
        }
        let mut mi = 0.0;
        for (t, pt) in prior.iter().enumerate() {
            for (a, pa) in marginal.iter().enumerate() {
                let joint = pt * self.p(t, a);
                if joint > 0.0 && *pa > 0.0 {
                    mi += joint * (joint / (pt * pa)).ln();
                }
            }
        }
        (mi / h).clamp(0.0, 1.0)
    }
}

/// A fitted label set.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub k: usize,
    /// Per task: the posterior over the classes (sums to 1).
    pub posteriors: Vec<Vec<f64>>,
    /// The learned class prior.
    pub class_prior: Vec<f64>,
    /// Per worker.
    pub matrices: Vec<Matrix>,
    /// The pooled matrix the workers' are shrunk towards.
    pub pooled: Matrix,
    /// The matrix prior's strength the fit used (chosen or configured).
    pub matrix_strength: f64,
    pub iterations: usize,
}

/// The most probable class (first of equals) and its probability.
pub fn top(posterior: &[f64]) -> (usize, f64) {
    let best = crate::emotion::top_index(posterior);
    (best, posterior.get(best).copied().unwrap_or(0.0))
}

/// Checks a label set against its sizes.
pub fn validate(
    k: usize,
    tasks: usize,
    workers: usize,
    labels: &[Label],
) -> Result<(), CrowdError> {
    if !(2..=MAX_CLASSES).contains(&k) {
        return Err(CrowdError::Classes(k));
    }
    for (index, l) in labels.iter().enumerate() {
        if usize::from(l.class) >= k {
            return Err(CrowdError::Class {
                index,
                class: l.class,
                k,
            });
        }
        if l.task as usize >= tasks || l.worker as usize >= workers {
            return Err(CrowdError::Index {
                index,
                task: l.task,
                worker: l.worker,
            });
        }
    }
    Ok(())
}

/// Majority vote: per task, the vote shares (ties: first of equals when
/// read with [`top`]); tasks without labels get the uniform distribution.
pub fn majority(k: usize, tasks: usize, labels: &[Label]) -> Vec<Vec<f64>> {
    let mut votes = vec![vec![0.0; k]; tasks];
    for l in labels {
        if let Some(c) = votes
            .get_mut(l.task as usize)
            .and_then(|v| v.get_mut(usize::from(l.class)))
        {
            *c += 1.0;
        }
    }
    for v in &mut votes {
        let n: f64 = v.iter().sum();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        } else {
            v.iter_mut().for_each(|x| *x = 1.0 / k as f64);
        }
    }
    votes
}

/// Expected answer counts: per worker `k×k` (truth, answer), plus the
/// pooled total and the class mass.
#[derive(Debug, Clone)]
struct Counts {
    k: usize,
    worker: Vec<Vec<f64>>,
    pooled: Vec<f64>,
    class: Vec<f64>,
}

impl Counts {
    fn new(k: usize, workers: usize) -> Counts {
        Counts {
            k,
            worker: vec![vec![0.0; k * k]; workers],
            pooled: vec![0.0; k * k],
            class: vec![0.0; k],
        }
    }

    /// The expected counts of every task's labels learned with its belief.
    fn of(k: usize, workers: usize, grouped: &[Vec<(u32, u8)>], beliefs: &[Vec<f64>]) -> Counts {
        let mut counts = Counts::new(k, workers);
        for (labels, post) in grouped.iter().zip(beliefs) {
            counts.task(post, 1.0);
            for (w, a) in labels {
                counts.label(*w as usize, usize::from(*a), post, 1.0);
            }
        }
        counts
    }

    /// Adds (`sign` = 1) or takes back (−1) one label learned with `belief`.
    fn label(&mut self, worker: usize, answer: usize, belief: &[f64], sign: f64) {
        let k = self.k;
        let row = &mut self.worker[worker];
        for (t, w) in belief.iter().enumerate() {
            let dw = sign * w;
            row[t * k + answer] = (row[t * k + answer] + dw).max(0.0);
            self.pooled[t * k + answer] = (self.pooled[t * k + answer] + dw).max(0.0);
        }
    }

    /// Adds or takes back one task's belief in the class mass.
    fn task(&mut self, belief: &[f64], sign: f64) {
        for (c, w) in self.class.iter_mut().zip(belief) {
            *c = (*c + sign * w).max(0.0);
        }
    }

    /// The M step: the class prior, the pooled matrix and each worker's.
    fn estimate(&self, priors: &Priors) -> (Vec<f64>, Matrix, Vec<Matrix>) {
        let (class_prior, pooled) = self.shared(priors);
        let matrices = (0..self.worker.len())
            .map(|w| self.worker_matrix(w, &pooled, priors))
            .collect();
        (class_prior, pooled, matrices)
    }

    /// The class prior and the pooled matrix.
    fn shared(&self, priors: &Priors) -> (Vec<f64>, Matrix) {
        let k = self.k;
        let alpha = priors.class_alpha.max(0.0) + 1e-9;
        let total: f64 = self.class.iter().sum::<f64>() + alpha * k as f64;
        let class_prior: Vec<f64> = self.class.iter().map(|c| (c + alpha) / total).collect();
        let acc = priors.pooled_accuracy.clamp(1e-3, 1.0 - 1e-3);
        let off = (1.0 - acc) / (k - 1) as f64;
        let s0 = priors.pooled_strength.max(1e-6);
        let mut p = vec![0.0; k * k];
        for t in 0..k {
            let row: Vec<f64> = (0..k)
                .map(|a| self.pooled[t * k + a] + s0 * if a == t { acc } else { off })
                .collect();
            let sum: f64 = row.iter().sum();
            for (a, x) in row.iter().enumerate() {
                p[t * k + a] = x / sum;
            }
        }
        (class_prior, Matrix { k, p })
    }

    /// Worker `w`'s matrix: their expected counts plus `matrix_strength`
    /// pseudo-labels per row, centred on the worker's own overall accuracy
    /// with their errors shaped like the crowd's (the pooled matrix's
    /// off-diagonal). Few labels: one skill parameter, learned from all of
    /// them, and the crowd's confusions; many labels: a matrix of their own.
    fn worker_matrix(&self, w: usize, pooled: &Matrix, priors: &Priors) -> Matrix {
        let k = self.k;
        let s = priors.matrix_strength.max(1e-6);
        let counts = &self.worker[w];
        let diag: f64 = (0..k).map(|t| counts[t * k + t]).sum();
        let total: f64 = counts.iter().sum();
        let skill = skill(diag, total, priors);
        let mut p = vec![0.0; k * k];
        for t in 0..k {
            let sum: f64 = counts[t * k..(t + 1) * k].iter().sum::<f64>() + s;
            for a in 0..k {
                let c = centre(skill, t, a, |t, a| pooled.p(t, a));
                p[t * k + a] = (counts[t * k + a] + s * c) / sum;
            }
        }
        Matrix { k, p }
    }
}

/// A worker's overall accuracy, the diagonal of the centre their matrix is
/// shrunk towards: their expected right answers (`diag`) over all their
/// labels (`total`), with the pooled prior's pseudo-labels
/// (`pooled_strength` at `pooled_accuracy`). Shared with the game's EM
/// ([`crate::truth::em`]).
pub(crate) fn skill(diag: f64, total: f64, priors: &Priors) -> f64 {
    let s0 = priors.pooled_strength.max(1e-6);
    ((diag + s0 * priors.pooled_accuracy.clamp(1e-3, 1.0 - 1e-3)) / (total + s0))
        .clamp(1e-3, 1.0 - 1e-3)
}

/// The centre of a worker's matrix at (`truth`, `answer`): their `skill` on
/// the diagonal, their errors shaped like the crowd's (the pooled matrix
/// `pooled(truth, answer)`'s off-diagonal, renormalised). Each row sums to 1.
pub(crate) fn centre(
    skill: f64,
    truth: usize,
    answer: usize,
    pooled: impl Fn(usize, usize) -> f64,
) -> f64 {
    if answer == truth {
        skill
    } else {
        (1.0 - skill) * pooled(truth, answer) / (1.0 - pooled(truth, truth)).max(1e-12)
    }
}

/// A task's posterior from the class prior and its labels' matrices, with
/// the logarithms taken once per sweep: `log_prior[t]` and
/// `log_m[(w·k + t)·k + a]`.
fn judge_log(k: usize, log_prior: &[f64], log_m: &[f64], labels: &[(u32, u8)]) -> Vec<f64> {
    let mut log = log_prior.to_vec();
    for (w, a) in labels {
        let base = *w as usize * k * k + usize::from(*a);
        for (t, l) in log.iter_mut().enumerate() {
            *l += log_m[base + t * k];
        }
    }
    normalize_log(k, log)
}

fn normalize_log(k: usize, mut log: Vec<f64>) -> Vec<f64> {
    let max = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    log.iter_mut().for_each(|l| *l = (*l - max).exp());
    let sum: f64 = log.iter().sum();
    log.iter_mut().for_each(|x| *x /= sum);
    debug_assert_eq!(log.len(), k);
    log
}

fn one_hot(k: usize, class: usize) -> Vec<f64> {
    let mut v = vec![0.0; k];
    v[class] = 1.0;
    v
}

/// Labels grouped by task: `(worker, class)`.
fn by_task(tasks: usize, labels: &[Label]) -> Vec<Vec<(u32, u8)>> {
    let mut out = vec![Vec::new(); tasks];
    for l in labels {
        out[l.task as usize].push((l.worker, l.class));
    }
    out
}

/// Batch EM over a whole label set. `gold` fixes known tasks' classes.
/// With `priors.iterations = 0` this is majority vote (the vote shares,
/// gold fixed) with the matrices those shares imply.
pub fn em(
    k: usize,
    tasks: usize,
    workers: usize,
    labels: &[Label],
    gold: &[(u32, u8)],
    priors: &Priors,
) -> Result<Fit, CrowdError> {
    validate(k, tasks, workers, labels)?;
    let gold_of = gold_by_task(k, tasks, gold)?;
    let priors = if priors.auto_strength && priors.iterations > 0 {
        Priors {
            matrix_strength: choose(k, tasks, workers, labels, &gold_of, priors).0,
            ..*priors
        }
    } else {
        *priors
    };
    Ok(fit_from_votes(k, tasks, workers, labels, &gold_of, &priors))
}

/// EM from the vote shares (gold fixed).
fn fit_from_votes(
    k: usize,
    tasks: usize,
    workers: usize,
    labels: &[Label],
    gold_of: &[Option<usize>],
    priors: &Priors,
) -> Fit {
    let grouped = by_task(tasks, labels);
    let mut posts = majority(k, tasks, labels);
    for (p, g) in posts.iter_mut().zip(gold_of) {
        if let Some(c) = g {
            *p = one_hot(k, *c);
        }
    }
    sweeps(
        k,
        workers,
        &grouped,
        gold_of,
        posts,
        priors,
        priors.iterations,
    )
    .0
}

/// The matrix strengths [`choose_strength`] tries.
pub const STRENGTHS: [f64; 5] = [0.25, 1.0, 4.0, 16.0, 64.0];

/// A label's fold when choosing the strength, by a hash of its task and
/// worker (so neither the rows' order nor the class names change folds).
fn fold(l: &Label) -> u64 {
    let mut h = u64::from(l.task).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(l.worker).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    h
}

/// Folds of the cross-validation that chooses the strength.
const FOLDS: u64 = 5;
/// Labels the choice reads at most (a task sample of larger sets).
const CHOICE_LABELS: usize = 100_000;
/// The choice compares strengths, so its fits stop earlier than the final one.
const CHOICE_ITERATIONS: usize = 50;
const CHOICE_TOLERANCE: f64 = 1e-4;

/// Chooses the matrix prior's strength for this label set by measurement:
/// five-fold cross-validation over the labels (folds by task and worker);
/// each of [`STRENGTHS`] fits four folds, and the strength whose fits
/// predict the held-out answers best (mean log-likelihood of each answer
/// given its task's posterior and its worker's matrix) wins — or, by the
/// one-standard-error rule, the weakest strength that is not measurably
/// worse than it. Sets over 100,000 labels are sampled by task for the
/// choice. Prolific workers earn a weak pull towards the
/// crowd; a set of one-off workers, a strong one. Returns the choice and
/// every candidate's score.
pub fn choose_strength(
    k: usize,
    tasks: usize,
    workers: usize,
    labels: &[Label],
    gold: &[(u32, u8)],
    priors: &Priors,
) -> Result<(f64, Vec<(f64, f64)>), CrowdError> {
    validate(k, tasks, workers, labels)?;
    let gold_of = gold_by_task(k, tasks, gold)?;
    Ok(choose(k, tasks, workers, labels, &gold_of, priors))
}

/// The known class of each task (gold for tasks past `tasks` is ignored).
fn gold_by_task(
    k: usize,
    tasks: usize,
    gold: &[(u32, u8)],
) -> Result<Vec<Option<usize>>, CrowdError> {
    let mut gold_of = vec![None; tasks];
    for (t, c) in gold {
        if usize::from(*c) >= k {
            return Err(CrowdError::Gold {
                task: *t,
                class: *c,
                k,
            });
        }
        if let Some(g) = gold_of.get_mut(*t as usize) {
            *g = Some(usize::from(*c));
        }
    }
    Ok(gold_of)
}

fn choose(
    k: usize,
    tasks: usize,
    workers: usize,
    labels: &[Label],
    gold_of: &[Option<usize>],
    priors: &Priors,
) -> (f64, Vec<(f64, f64)>) {
    // Large sets: a sample of whole tasks, by hash, of about CHOICE_LABELS labels.
    let keep = (labels.len() / CHOICE_LABELS).max(1) as u64;
    let sample: Vec<Label> = labels
        .iter()
        .filter(|l| {
            keep == 1 || (u64::from(l.task).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) % keep == 0
        })
        .copied()
        .collect();
    if sample.len() < 2 * FOLDS as usize {
        return (priors.matrix_strength, Vec::new());
    }
    // Per strength: the held-out log-likelihood of every sampled label.
    let mut lls: Vec<Vec<f64>> = vec![Vec::with_capacity(sample.len()); STRENGTHS.len()];
    for f in 0..FOLDS {
        let (test, train): (Vec<Label>, Vec<Label>) =
            sample.iter().partition(|l| fold(l) % FOLDS == f);
        for (s, ll) in STRENGTHS.iter().zip(lls.iter_mut()) {
            let p = Priors {
                matrix_strength: *s,
                iterations: priors.iterations.min(CHOICE_ITERATIONS),
                tolerance: priors.tolerance.max(CHOICE_TOLERANCE),
                ..*priors
            };
            let fit = fit_from_votes(k, tasks, workers, &train, gold_of, &p);
            ll.extend(test.iter().map(|l| {
                let post = &fit.posteriors[l.task as usize];
                let m = &fit.matrices[l.worker as usize];
                let a = usize::from(l.class);
                (0..k)
                    .map(|t| post[t] * m.p(t, a))
                    .sum::<f64>()
                    .max(1e-300)
                    .ln()
            }));
        }
    }
    let n = sample.len() as f64;
    let scores: Vec<(f64, f64)> = STRENGTHS
        .iter()
        .zip(&lls)
        .map(|(s, ll)| (*s, ll.iter().sum::<f64>() / n))
        .collect();
    let best = (0..scores.len())
        .max_by(|a, b| scores[*a].1.total_cmp(&scores[*b].1))
        .unwrap_or(0);
    // The one-standard-error rule: the weakest strength whose score is
    // within one standard error (of the paired per-label differences) of
    // the best: no stronger assumption than the data ask for.
    let chosen = (0..scores.len())
        .find(|i| {
            let d: Vec<f64> = lls[best].iter().zip(&lls[*i]).map(|(b, x)| b - x).collect();
            let mean = d.iter().sum::<f64>() / n;
            let var = d.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0).max(1.0);
            mean <= (var / n).sqrt()
        })
        .unwrap_or(best);
    (scores[chosen].0, scores)
}

/// EM sweeps from the given posteriors; returns the fit and whether it converged.
fn sweeps(
    k: usize,
    workers: usize,
    grouped: &[Vec<(u32, u8)>],
    gold_of: &[Option<usize>],
    mut posts: Vec<Vec<f64>>,
    priors: &Priors,
    iterations: usize,
) -> (Fit, bool) {
    let mut done = 0;
    let mut converged = false;
    let (mut class_prior, mut pooled, mut matrices);
    loop {
        (class_prior, pooled, matrices) = Counts::of(k, workers, grouped, &posts).estimate(priors);
        if done >= iterations || converged {
            break;
        }
        let log_prior: Vec<f64> = class_prior.iter().map(|p| p.max(1e-300).ln()).collect();
        let log_m: Vec<f64> = matrices
            .iter()
            .flat_map(|m| m.p.iter().map(|p| p.max(1e-300).ln()))
            .collect();
        let mut change: f64 = 0.0;
        for (i, labels) in grouped.iter().enumerate() {
            let next = match gold_of.get(i).copied().flatten() {
                Some(c) => one_hot(k, c),
                None => judge_log(k, &log_prior, &log_m, labels),
            };
            for (a, b) in next.iter().zip(&posts[i]) {
                change = change.max((a - b).abs());
            }
            posts[i] = next;
        }
        done += 1;
        converged = change < priors.tolerance;
    }
    (
        Fit {
            k,
            posteriors: posts,
            class_prior,
            matrices,
            pooled,
            matrix_strength: priors.matrix_strength,
            iterations: done,
        },
        converged,
    )
}

/// Why a worker's labels look automatic, judged against this pool. Workers
/// who are merely poor are not flagged: their matrices already give their
/// labels the little weight they carry (see [`WorkerReport::informativeness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerFlag {
    /// Nearly every answer on one class, and the answers say next to
    /// nothing about the truth: more than the pool's share of that class
    /// would explain.
    SameButton,
    /// The game's spam rules (a replay through the game's step,
    /// [`crate::replay`]): answers faster than a person looks…
    TooFast,
    /// …following the shown suggestion even when it is a test…
    AlwaysCopies,
    /// …no better than guessing on tasks whose answer was known before.
    ChanceOnGold,
}

impl WorkerFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerFlag::SameButton => "same_button",
            WorkerFlag::TooFast => "too_fast",
            WorkerFlag::AlwaysCopies => "always_copies",
            WorkerFlag::ChanceOnGold => "chance_on_gold",
        }
    }
}

/// Thresholds of [`workers`]' flags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlagRules {
    /// Labels a worker needs before any flag.
    pub min_labels: u32,
    /// Share of answers on one class that makes a worker a same-button suspect…
    pub same_share: f64,
    /// …flagged when their answers carry less than this share of the
    /// information an answer could (see [`Matrix::informativeness`]).
    pub min_informativeness: f64,
}

impl Default for FlagRules {
    fn default() -> Self {
        FlagRules {
            min_labels: 15,
            same_share: 0.9,
            min_informativeness: 0.15,
        }
    }
}

/// One worker's summary in a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReport {
    pub labels: u32,
    /// Expected accuracy under the learned class prior.
    pub accuracy: f64,
    /// Share of the answers that agree with their task's most probable class.
    pub agreement: f64,
    pub informativeness: f64,
    pub flag: Option<WorkerFlag>,
}

/// Every worker's summary and flag. A worker is judged against what an
/// honest worker would do on this pool: answering the majority class 90%
/// of the time is honest when 90% of the tasks are that class.
pub fn workers(fit: &Fit, labels: &[Label], rules: &FlagRules) -> Vec<WorkerReport> {
    let k = fit.k;
    let n = fit.matrices.len();
    let mut answers = vec![vec![0u32; k]; n];
    let mut agree = vec![0u32; n];
    for l in labels {
        let w = l.worker as usize;
        if w >= n {
            continue;
        }
        answers[w][usize::from(l.class)] += 1;
        if fit
            .posteriors
            .get(l.task as usize)
            .is_some_and(|p| top(p).0 == usize::from(l.class))
        {
            agree[w] += 1;
        }
    }
    (0..n)
        .map(|w| {
            let m = &fit.matrices[w];
            let count: u32 = answers[w].iter().sum();
            let shares: Vec<f64> = answers[w]
                .iter()
                .map(|a| f64::from(*a) / f64::from(count.max(1)))
                .collect();
            let agreement = f64::from(agree[w]) / f64::from(count.max(1));
            let informativeness = m.informativeness(&fit.class_prior);
            let top_share = shares.iter().copied().fold(0.0, f64::max);
            let flag = if count < rules.min_labels {
                None
            } else if top_share >= rules.same_share && informativeness < rules.min_informativeness {
                Some(WorkerFlag::SameButton)
            } else {
                None
            };
            WorkerReport {
                labels: count,
                accuracy: m.accuracy(&fit.class_prior),
                agreement,
                informativeness,
                flag,
            }
        })
        .collect()
}
