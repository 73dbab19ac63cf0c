//! Truth over any class set: the properties every fit must have, whatever K.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use emofy_game::crowd::*;
use proptest::prelude::*;

mod common;
use common::{FIRST_BOT, balanced_pool_with_button_bots, skewed_honest_pool};

/// A random label set: `k` classes, up to 30 tasks, up to 12 workers.
fn label_set() -> impl Strategy<Value = (usize, usize, usize, Vec<Label>)> {
    (2usize..=8, 1usize..30, 1usize..12).prop_flat_map(|(k, tasks, workers)| {
        let label =
            (0..tasks as u32, 0..workers as u32, 0..k as u8).prop_map(|(task, worker, class)| {
                Label {
                    task,
                    worker,
                    class,
                }
            });
        (
            Just(k),
            Just(tasks),
            Just(workers),
            proptest::collection::vec(label, 0..120),
        )
    })
}

/// The priors with a fixed strength (the cross-validated choice is
/// exercised by the relabelling property and the crowd tests below).
fn fixed() -> Priors {
    Priors {
        auto_strength: false,
        ..Priors::default()
    }
}

fn sums_to_one(v: &[f64]) -> bool {
    (v.iter().sum::<f64>() - 1.0).abs() < 1e-9 && v.iter().all(|x| x.is_finite() && *x >= 0.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn posteriors_priors_and_rows_are_distributions((k, tasks, workers, labels) in label_set()) {
        let fit = em(k, tasks, workers, &labels, &[], &fixed()).unwrap();
        prop_assert_eq!(fit.posteriors.len(), tasks);
        for p in &fit.posteriors {
            prop_assert_eq!(p.len(), k);
            prop_assert!(sums_to_one(p), "{:?}", p);
        }
        prop_assert!(sums_to_one(&fit.class_prior));
        for m in fit.matrices.iter().chain([&fit.pooled]) {
            for t in 0..k {
                prop_assert!(sums_to_one(m.row(t)));
            }
            let info = m.informativeness(&fit.class_prior);
            prop_assert!((0.0..=1.0).contains(&info));
        }
    }

    #[test]
    fn a_class_nobody_answered_never_wins((k, tasks, workers, labels) in label_set()) {
        let answered: std::collections::HashSet<u8> = labels.iter().map(|l| l.class).collect();
        let fit = em(k, tasks, workers, &labels, &[], &fixed()).unwrap();
        // An unanswered class may tie the best answered one (when nothing
        // tells them apart but the prior), never beat it.
        for (task, p) in fit.posteriors.iter().enumerate() {
            {
                let best_answered = (0..k)
                    .filter(|c| answered.contains(&(*c as u8)))
                    .map(|c| p[c])
                    .fold(f64::NEG_INFINITY, f64::max);
                if answered.is_empty() {
                    continue;
                }
                for c in (0..k).filter(|c| !answered.contains(&(*c as u8))) {
                    prop_assert!(p[c] <= best_answered + 1e-9, "task {task}: unanswered class {c} beats the answered ones: {p:?}");
                }
            }
        }
    }

    #[test]
    fn relabelling_the_classes_permutes_the_fit(
        (k, tasks, workers, labels) in label_set(),
        shift in 1usize..8,
    ) {
        let sigma = |c: usize| (c + shift) % k;
        let moved: Vec<Label> = labels
            .iter()
            .map(|l| Label { class: sigma(usize::from(l.class)) as u8, ..*l })
            .collect();
        let a = em(k, tasks, workers, &labels, &[], &Priors::default()).unwrap();
        let b = em(k, tasks, workers, &moved, &[], &Priors::default()).unwrap();
        for (pa, pb) in a.posteriors.iter().zip(&b.posteriors) {
            for c in 0..k {
                prop_assert!((pa[c] - pb[sigma(c)]).abs() < 1e-4, "{pa:?} vs {pb:?}");
            }
        }
        for c in 0..k {
            prop_assert!((a.class_prior[c] - b.class_prior[sigma(c)]).abs() < 1e-4);
        }
    }
}

fn accuracy(fit: &Fit, truth: &[u8]) -> f64 {
    let right = truth
        .iter()
        .zip(&fit.posteriors)
        .filter(|(t, p)| top(p).0 == usize::from(**t))
        .count();
    right as f64 / truth.len() as f64
}

#[test]
fn honest_workers_on_a_skewed_pool_are_not_flagged_but_button_bots_are() {
    let (truth, labels) = skewed_honest_pool();
    let fit = em(3, truth.len(), 20, &labels, &[], &Priors::default()).unwrap();
    let reports = workers(&fit, &labels, &FlagRules::default());
    for (w, r) in reports.iter().enumerate() {
        assert_eq!(r.flag, None, "honest worker {w} flagged: {r:?}");
    }
    assert!(accuracy(&fit, &truth) > 0.95);

    let (truth, labels) = balanced_pool_with_button_bots();
    let fit = em(4, truth.len(), 19, &labels, &[], &Priors::default()).unwrap();
    let reports = workers(&fit, &labels, &FlagRules::default());
    for (w, r) in reports.iter().enumerate() {
        if w >= FIRST_BOT {
            assert_eq!(r.flag, Some(WorkerFlag::SameButton), "bot {w}: {r:?}");
        } else {
            assert_eq!(r.flag, None, "honest worker {w}: {r:?}");
        }
    }
}

#[test]
fn gold_tasks_keep_their_class_and_teach_the_matrices() {
    // Worker 0 is right; worker 1 always swaps classes 0 and 1.
    let mut labels = Vec::new();
    for t in 0..40u32 {
        let c = (t % 2) as u8;
        labels.push(Label {
            task: t,
            worker: 0,
            class: c,
        });
        labels.push(Label {
            task: t,
            worker: 1,
            class: 1 - c,
        });
    }
    let gold: Vec<(u32, u8)> = (0..10u32).map(|t| (t, (t % 2) as u8)).collect();
    let fit = em(2, 40, 2, &labels, &gold, &Priors::default()).unwrap();
    for t in 0..40usize {
        assert_eq!(top(&fit.posteriors[t]).0, t % 2, "task {t}");
    }
    assert!(fit.matrices[1].p(0, 1) > 0.8);
}

#[test]
fn bad_label_sets_are_refused() {
    let l = Label {
        task: 0,
        worker: 0,
        class: 2,
    };
    assert_eq!(
        em(1, 1, 1, &[], &[], &Priors::default()).unwrap_err(),
        CrowdError::Classes(1)
    );
    assert_eq!(
        em(17, 1, 1, &[], &[], &Priors::default()).unwrap_err(),
        CrowdError::Classes(17)
    );
    assert!(matches!(
        em(2, 1, 1, &[l], &[], &Priors::default()),
        Err(CrowdError::Class { index: 0, .. })
    ));
    let far = Label {
        task: 5,
        worker: 0,
        class: 0,
    };
    assert!(matches!(
        em(2, 1, 1, &[far], &[], &Priors::default()),
        Err(CrowdError::Index { .. })
    ));
    assert!(matches!(
        em(2, 1, 1, &[], &[(0, 3)], &Priors::default()),
        Err(CrowdError::Gold { .. })
    ));
}
