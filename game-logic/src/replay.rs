//! The game's truth over a label set from elsewhere, one label at a time:
//! what the server's answer path and truth pass would make of it.
//!
//! Each label goes through [`truth::answer_step`], the step every answer in
//! the game takes ([`crate::plan::plan_answer`] calls it): the image is
//! re-judged with the counted labels of the other players, the player's
//! reliability learns from the answer with the new belief and is judged by
//! the spam rules. The truth [`truth::pass`] the server runs on a timer runs
//! here whenever the label count doubles (from 64: amortised constant work
//! per label) and once at the end, and is applied as the stores apply it:
//! the players' matrices, the crowd prior, and each task's posterior
//! re-judged ([`truth::rejudged`]: a retired task the fit has moved off is
//! disputed).
//!
//! A label set has no rounds: no suggestion is shown, no timing is known (so
//! no answer is too fast) and there is no model. The server's rules apply as
//! given; `emofy aggregate` passes rules for a closed workforce (everyone's
//! word counts in full: there are no free guest accounts to fear).

use crate::class::{ClassId, top};
use crate::consensus::{ConsensusRule, ImageStatus};
use crate::crowd::{CrowdError, Label, WorkerFlag};
use crate::truth::{
    self, Answer, CrowdPrior, Evidence, ImageFacts, PassLabel, Rejudged, Reliability, SpamRules,
    Step, TrustRules,
};

/// The rules a replay runs under (the server's `truth` configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayRules {
    pub consensus: ConsensusRule,
    pub trust: TrustRules,
    pub spam: SpamRules,
    /// EM iterations of each truth pass.
    pub pass_iterations: usize,
}

impl ReplayRules {
    /// The server's rules, with every worker's labels weighing in full and
    /// no need for established players before a task settles: a label set
    /// from a closed workforce has no throwaway accounts.
    pub fn closed_workforce(
        consensus: ConsensusRule,
        spam: SpamRules,
        pass_iterations: usize,
    ) -> ReplayRules {
        ReplayRules {
            consensus,
            trust: TrustRules {
                newcomer_weight: 1.0,
                min_established: 0,
                known_labels: false,
                ..TrustRules::default()
            },
            spam,
            pass_iterations,
        }
    }
}

#[derive(Debug, Clone)]
struct Task<const K: usize> {
    labels: Vec<(u32, ClassId)>,
    status: ImageStatus<ClassId>,
    gold: Option<ClassId>,
    posterior: Option<[f64; K]>,
}

impl<const K: usize> Default for Task<K> {
    fn default() -> Self {
        Task {
            labels: Vec::new(),
            status: ImageStatus::Open,
            gold: None,
            posterior: None,
        }
    }
}

/// A replay in progress; see the module docs.
#[derive(Debug, Clone)]
pub struct Replay<const K: usize> {
    rules: ReplayRules,
    crowd: CrowdPrior<K>,
    players: Vec<Option<Reliability<K>>>,
    tasks: Vec<Task<K>>,
    labels: usize,
    next_pass: usize,
    passes: usize,
}

/// What a replay ends with.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayFit<const K: usize> {
    /// Per task (uniform over the classes for a task nobody counted on).
    pub posteriors: Vec<[f64; K]>,
    /// Per worker: the record the server would hold (`None`: never labelled).
    pub players: Vec<Option<Reliability<K>>>,
    pub crowd: CrowdPrior<K>,
    /// Tasks that retired or became disputed along the way.
    pub retired: usize,
    pub disputed: usize,
    pub passes: usize,
}

impl<const K: usize> Replay<K> {
    pub fn new(rules: ReplayRules) -> Result<Replay<K>, CrowdError> {
        if !(2..=crate::crowd::MAX_CLASSES).contains(&K) {
            return Err(CrowdError::Classes(K));
        }
        Ok(Replay {
            rules,
            crowd: CrowdPrior::default(),
            players: Vec::new(),
            tasks: Vec::new(),
            labels: 0,
            next_pass: 64,
            passes: 0,
        })
    }

    fn task(&mut self, task: u32) -> &mut Task<K> {
        let t = task as usize;
        if self.tasks.len() <= t {
            self.tasks.resize_with(t + 1, Task::default);
        }
        &mut self.tasks[t]
    }

    /// Marks a task's class as known (a moderator's word: gold).
    pub fn gold(&mut self, task: u32, class: u8) -> Result<(), CrowdError> {
        if usize::from(class) >= K {
            return Err(CrowdError::Gold { task, class, k: K });
        }
        self.task(task).gold = Some(ClassId(class));
        Ok(())
    }

    /// Takes one label as an answer; returns its task's posterior after it.
    pub fn observe(&mut self, l: Label) -> Result<[f64; K], CrowdError> {
        if usize::from(l.class) >= K {
            return Err(CrowdError::Class {
                index: self.labels,
                class: l.class,
                k: K,
            });
        }
        let w = l.worker as usize;
        if self.players.len() <= w {
            self.players.resize_with(w + 1, || None);
        }
        let me = self.players[w]
            .clone()
            .unwrap_or_else(|| self.crowd.newcomer());
        let rules = self.rules;
        let class_prior = self.crowd.class_prior;
        let prior = self.crowd.image_prior(None::<(ClassId, f64)>);
        self.task(l.task);
        let task = &self.tasks[l.task as usize];
        let earlier: Vec<Evidence<'_, ClassId, K>> = task
            .labels
            .iter()
            .filter(|(p, _)| *p != l.worker)
            .filter_map(|(p, a)| {
                let r = self.players.get(*p as usize)?.as_ref()?;
                r.counts().then_some(Evidence {
                    reliability: r,
                    answer: *a,
                    shown: None,
                })
            })
            .collect();
        let facts = ImageFacts {
            status: task.status,
            gold: task.gold,
            prior,
            model: None,
            known: false,
        };
        let Step {
            judgement, learned, ..
        } = truth::answer_step(
            &rules.consensus,
            &rules.trust,
            &rules.spam,
            &class_prior,
            &facts,
            &earlier,
            &me,
            &Answer {
                answer: ClassId(l.class),
                shown: None,
                decoy: false,
                response_ms: u64::MAX,
            },
        );
        drop(earlier);
        self.players[w] = Some(learned);
        let task = &mut self.tasks[l.task as usize];
        task.labels.push((l.worker, ClassId(l.class)));
        task.status = judgement.status;
        task.posterior = Some(judgement.posterior);
        self.labels += 1;
        if self.labels >= self.next_pass {
            self.pass();
            self.next_pass = self.labels.saturating_mul(2);
        }
        Ok(judgement.posterior)
    }

    /// The truth pass over everything seen, applied as the stores apply it.
    fn pass(&mut self) {
        let records: Vec<Option<&Reliability<K>>> =
            self.players.iter().map(|r| r.as_ref()).collect();
        let mut labels = Vec::with_capacity(self.labels);
        let mut gold = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            for (p, a) in &t.labels {
                labels.push(PassLabel {
                    player: *p as usize,
                    image: i,
                    answer: *a,
                    shown: None,
                });
            }
            if let Some(g) = t.gold {
                gold.push((i, g));
            }
        }
        let fit = truth::pass(
            &records,
            self.tasks.len(),
            &labels,
            &[],
            &gold,
            &[],
            &self.crowd,
            &self.rules.trust,
            self.rules.pass_iterations,
        );
        drop(labels);
        for (slot, m) in self.players.iter_mut().zip(fit.matrices) {
            if let (Some(r), Some(m)) = (slot.as_mut(), m) {
                r.matrix = m;
            }
        }
        for (t, p) in self.tasks.iter_mut().zip(fit.posteriors) {
            let Some(p) = p else { continue };
            // Every label of a task is in the pass: it sees each in full.
            match truth::rejudged(t.status, &p, true) {
                Rejudged::Keep => {}
                Rejudged::Posterior => t.posterior = Some(p),
                Rejudged::Dispute { .. } => {
                    t.posterior = Some(p);
                    t.status = ImageStatus::Disputed;
                }
            }
        }
        self.crowd = fit.crowd;
        self.passes += 1;
    }

    /// Labels taken so far.
    pub fn labels(&self) -> usize {
        self.labels
    }

    /// The last truth pass, and what the server would hold after it.
    pub fn finish(mut self) -> ReplayFit<K> {
        self.pass();
        // The spam rules' verdict on each final record: what the player's
        // next answer would find (the server re-judges flags per answer).
        let class_prior = self.crowd.class_prior;
        for r in self.players.iter_mut().flatten() {
            r.flag = r.verdict(&self.rules.spam, &class_prior);
        }
        let mut retired = 0;
        let mut disputed = 0;
        for t in &self.tasks {
            match t.status {
                ImageStatus::Retired { .. } => retired += 1,
                ImageStatus::Disputed => disputed += 1,
                ImageStatus::Open | ImageStatus::Removed => {}
            }
        }
        ReplayFit {
            posteriors: self
                .tasks
                .iter()
                .map(|t| match (t.gold, t.posterior) {
                    (Some(g), _) => truth::gold(g),
                    (None, Some(p)) => p,
                    (None, None) => crate::class::uniform(),
                })
                .collect(),
            players: self.players,
            crowd: self.crowd,
            retired,
            disputed,
            passes: self.passes,
        }
    }
}

impl<const K: usize> ReplayFit<K> {
    /// The most probable class of each task.
    pub fn labels(&self) -> Vec<ClassId> {
        self.posteriors
            .iter()
            .map(|p| top::<ClassId, K>(p).0)
            .collect()
    }

    /// Each worker's automatic flag: the spam rules' verdict on their
    /// final record.
    pub fn flags(&self) -> Vec<Option<truth::SpamFlag>> {
        self.players
            .iter()
            .map(|r| r.as_ref().and_then(|r| r.flag))
            .collect()
    }
}

/// The game's spam verdicts as the K-class core's worker flags.
impl From<truth::SpamFlag> for WorkerFlag {
    fn from(f: crate::truth::SpamFlag) -> WorkerFlag {
        use truth::SpamFlag;
        match f {
            SpamFlag::SameButton => WorkerFlag::SameButton,
            SpamFlag::TooFast => WorkerFlag::TooFast,
            SpamFlag::AlwaysCopies => WorkerFlag::AlwaysCopies,
            SpamFlag::ChanceOnGold => WorkerFlag::ChanceOnGold,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn rules() -> ReplayRules {
        ReplayRules::closed_workforce(ConsensusRule::default(), SpamRules::default(), 50)
    }

    /// Three classes, 60% one of them; workers right 80% of the time, one
    /// worker always answering the majority class.
    fn labels(seed: u64) -> (Vec<u8>, Vec<Label>) {
        let mut rng = SplitMix64(seed);
        let truth: Vec<u8> = (0..300)
            .map(|_| {
                let u = rng.unit();
                if u < 0.6 {
                    0
                } else if u < 0.8 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let mut out = Vec::new();
        for (t, c) in truth.iter().enumerate() {
            for w in 0..5u32 {
                let class = if rng.unit() < 0.8 {
                    *c
                } else {
                    ((u64::from(*c) + 1 + rng.next_u64() % 2) % 3) as u8
                };
                out.push(Label {
                    task: t as u32,
                    worker: w,
                    class,
                });
            }
            out.push(Label {
                task: t as u32,
                worker: 5,
                class: 0,
            });
        }
        (truth, out)
    }

    #[test]
    fn the_game_step_recovers_the_truth_and_flags_the_button_masher() {
        let (truth, ls) = labels(7);
        let mut r = Replay::<3>::new(rules()).unwrap();
        for l in &ls {
            r.observe(*l).unwrap();
        }
        let fit = r.finish();
        let right = fit
            .labels()
            .iter()
            .zip(&truth)
            .filter(|(a, b)| a.0 == **b)
            .count();
        // Five 80% workers: majority vote gets ~94%; EM more.
        assert!(right >= 285, "{right} of 300");
        let flags = fit.flags();
        assert!(flags[..5].iter().all(Option::is_none), "{flags:?}");
        assert_eq!(flags[5], Some(truth::SpamFlag::SameButton));
        assert!(fit.passes >= 4);
        for p in &fit.posteriors {
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn gold_is_kept_and_bad_classes_are_refused() {
        let mut r = Replay::<2>::new(rules()).unwrap();
        assert!(r.gold(0, 2).is_err());
        r.gold(0, 1).unwrap();
        r.observe(Label {
            task: 0,
            worker: 0,
            class: 0,
        })
        .unwrap();
        assert!(
            r.observe(Label {
                task: 1,
                worker: 0,
                class: 5
            })
            .is_err()
        );
        let fit = r.finish();
        assert_eq!(fit.posteriors[0], [0.0, 1.0]);
        assert!(Replay::<1>::new(rules()).is_err());
    }
}
