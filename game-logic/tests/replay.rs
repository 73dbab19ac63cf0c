//! The game's own truth step over any class set ([`emofy_game::replay`]):
//! the properties every replay must have whatever K, fair flags on skewed
//! pools, and agreement with the batch fit whatever the label order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use emofy_game::ConsensusRule;
use emofy_game::crowd::{self, Label, Priors};
use emofy_game::replay::{Replay, ReplayFit, ReplayRules};
use emofy_game::truth::{PASS_ITERATIONS, SpamFlag, SpamRules};
use proptest::prelude::*;

mod common;
use common::{FIRST_BOT, Rng, balanced_pool_with_button_bots, honest_crowd, skewed_honest_pool};

fn rules() -> ReplayRules {
    ReplayRules::closed_workforce(
        ConsensusRule::default(),
        SpamRules::default(),
        PASS_ITERATIONS,
    )
}

fn replay<const K: usize>(labels: &[Label]) -> ReplayFit<K> {
    let mut r = Replay::<K>::new(rules()).unwrap();
    for l in labels {
        let p = r.observe(*l).unwrap();
        assert!(sums_to_one(&p), "{p:?}");
    }
    r.finish()
}

fn sums_to_one(v: &[f64]) -> bool {
    (v.iter().sum::<f64>() - 1.0).abs() < 1e-9 && v.iter().all(|x| x.is_finite() && *x >= 0.0)
}

/// A random label set over `k` classes: up to 30 tasks, up to 12 workers.
fn label_set(k: u8) -> impl Strategy<Value = Vec<Label>> {
    (1u32..30, 1u32..12).prop_flat_map(move |(tasks, workers)| {
        let label = (0..tasks, 0..workers, 0..k).prop_map(|(task, worker, class)| Label {
            task,
            worker,
            class,
        });
        proptest::collection::vec(label, 1..120)
    })
}

/// Posteriors, the class prior and every matrix row are distributions; a
/// class nobody answered never beats an answered one; moving every class
/// by `shift` moves the posteriors with it.
fn check<const K: usize>(labels: &[Label], shift: usize) -> Result<(), TestCaseError> {
    let fit = replay::<K>(labels);
    for p in &fit.posteriors {
        prop_assert!(sums_to_one(p), "{:?}", p);
    }
    prop_assert!(sums_to_one(&fit.crowd.class_prior));
    for r in fit.players.iter().flatten() {
        for t in 0..K {
            let row = r.matrix.row(emofy_game::class::ClassId(t as u8));
            prop_assert!(sums_to_one(&row), "{:?}", row);
        }
    }
    let answered: std::collections::HashSet<u8> = labels.iter().map(|l| l.class).collect();
    for (task, p) in fit.posteriors.iter().enumerate() {
        if !labels.iter().any(|l| l.task as usize == task) {
            continue;
        }
        let best = (0..K)
            .filter(|c| answered.contains(&(*c as u8)))
            .map(|c| p[c])
            .fold(f64::NEG_INFINITY, f64::max);
        for c in (0..K).filter(|c| !answered.contains(&(*c as u8))) {
            prop_assert!(
                p[c] <= best + 1e-9,
                "task {}: unanswered class {} beats the answered ones: {:?}",
                task,
                c,
                p
            );
        }
    }
    let sigma = |c: usize| (c + shift) % K;
    let moved: Vec<Label> = labels
        .iter()
        .map(|l| Label {
            class: sigma(usize::from(l.class)) as u8,
            ..*l
        })
        .collect();
    // The fit moves with the classes. On sparse sets (a few labels over
    // many classes) the pass's EM may stop before converging, on a path
    // that rounding in another class order shifts: posteriors agree to
    // 0.05, and a top class that leads by more than that moves exactly.
    let other = replay::<K>(&moved);
    for (pa, pb) in fit.posteriors.iter().zip(&other.posteriors) {
        for c in 0..K {
            prop_assert!((pa[c] - pb[sigma(c)]).abs() < 0.05, "{:?} vs {:?}", pa, pb);
        }
        let mut order: Vec<usize> = (0..K).collect();
        order.sort_by(|a, b| pa[*b].total_cmp(&pa[*a]));
        if pa[order[0]] - pa[order[1]] > 0.05 {
            let top_b = (0..K).max_by(|a, b| pb[*a].total_cmp(&pb[*b])).unwrap();
            prop_assert_eq!(top_b, sigma(order[0]));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn two_classes(labels in label_set(2), shift in 1usize..4) {
        check::<2>(&labels, shift)?;
    }

    #[test]
    fn three_classes(labels in label_set(3), shift in 1usize..4) {
        check::<3>(&labels, shift)?;
    }

    #[test]
    fn five_classes(labels in label_set(5), shift in 1usize..6) {
        check::<5>(&labels, shift)?;
    }

}

proptest! {
    // Sixteen classes cost 37 times what two do per label: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn sixteen_classes(labels in label_set(16), shift in 1usize..16) {
        check::<16>(&labels, shift)?;
    }
}

fn accuracy<const K: usize>(fit: &ReplayFit<K>, truth: &[u8]) -> f64 {
    let right = fit
        .labels()
        .iter()
        .zip(truth)
        .filter(|(a, t)| a.0 == **t)
        .count();
    right as f64 / truth.len() as f64
}

#[test]
fn the_games_spam_rules_spare_honest_workers_on_a_skewed_pool_and_catch_button_bots() {
    let (truth, labels) = skewed_honest_pool();
    let fit = replay::<3>(&labels);
    for (w, f) in fit.flags().iter().enumerate() {
        assert_eq!(*f, None, "honest worker {w} flagged");
    }
    assert!(accuracy(&fit, &truth) > 0.95, "{}", accuracy(&fit, &truth));

    let (_, labels) = balanced_pool_with_button_bots();
    let fit = replay::<4>(&labels);
    for (w, f) in fit.flags().iter().enumerate() {
        if w >= FIRST_BOT {
            assert_eq!(*f, Some(SpamFlag::SameButton), "bot {w}");
        } else {
            assert_eq!(*f, None, "honest worker {w}");
        }
    }
}

#[test]
fn the_games_step_lands_near_the_batch_fit_whatever_the_order() {
    let mut rng = Rng(3);
    let (truth, labels) = honest_crowd(&mut rng, &[0.5, 0.3, 0.15, 0.05], 500, 30, 3, 0.7);
    let batch = crowd::em(4, truth.len(), 30, &labels, &[], &Priors::default()).unwrap();
    let em_acc = truth
        .iter()
        .zip(&batch.posteriors)
        .filter(|(t, p)| crowd::top(p).0 == usize::from(**t))
        .count() as f64
        / truth.len() as f64;
    let in_order = accuracy(&replay::<4>(&labels), &truth);
    assert!(
        (in_order - em_acc).abs() <= 0.01,
        "online {in_order} vs em {em_acc}"
    );
    let mut shuffled = labels.clone();
    for round in 0..3 {
        for i in (1..shuffled.len()).rev() {
            let j = (rng.next() * (i + 1) as f64) as usize;
            shuffled.swap(i, j);
        }
        let acc = accuracy(&replay::<4>(&shuffled), &truth);
        assert!(
            (acc - in_order).abs() <= 0.01,
            "shuffle {round}: {acc} vs {in_order}"
        );
    }
}
