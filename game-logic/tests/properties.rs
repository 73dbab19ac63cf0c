//! Property tests for the pure game core.

use std::collections::HashSet;

use emofy_game::scoring::SettlementLabel;
use emofy_game::*;
use proptest::prelude::*;
use uuid::Uuid;

fn emotion() -> impl Strategy<Value = Emotion> {
    (0usize..7).prop_map(|i| Emotion::ALL[i])
}

fn counts() -> impl Strategy<Value = VoteCounts> {
    prop::array::uniform7(0u32..6).prop_map(VoteCounts)
}

fn rule() -> impl Strategy<Value = ConsensusRule> {
    (1u32..6, 501u32..=1000, 0u32..6).prop_filter_map("valid rule", |(k, tau, extra)| {
        ConsensusRule::new(k, tau, k + extra).ok()
    })
}

fn status() -> impl Strategy<Value = ImageStatus> {
    prop_oneof![
        Just(ImageStatus::Open),
        emotion().prop_map(|label| ImageStatus::Retired { label }),
        Just(ImageStatus::Disputed),
        Just(ImageStatus::Removed),
    ]
}

proptest! {
    #[test]
    fn player_score_never_decreases(
        steps in prop::collection::vec((emotion(), counts(), 0u64..20_000, 1u64..20_000, 0u32..30, prop::option::of(0u32..50)), 1..60)
    ) {
        let rules = ScoringRules::default();
        let mut tally = PlayerTally::default();
        for (answer, prior, response_ms, limit, _, settle) in steps {
            let before = tally.score;
            let award = rules.score_answer(&AnswerFacts { answer, prior, response_ms, time_limit_ms: limit, streak: tally.streak });
            let bound = u64::from(rules.agreement + rules.speed_bonus_max) * u64::from(rules.multiplier_percent(u32::MAX)) / 100;
            prop_assert!(u64::from(award.points) <= bound);
            if award.agreement != Agreement::Agreed {
                prop_assert_eq!(award.points, 0);
            }
            tally.apply_award(&award);
            if let Some(p) = settle { tally.add_points(p); }
            prop_assert!(tally.score >= before);
            prop_assert!(tally.best_streak >= tally.streak);
        }
    }

    #[test]
    fn settlement_is_order_independent(
        labels in prop::collection::vec((0u128..6, emotion(), prop::option::of(emotion())), 0..20),
        consensus in emotion(),
        seed in any::<u64>(),
    ) {
        let rules = ScoringRules::default();
        let labels: Vec<_> = labels.into_iter().map(|(p, answer, shown)| SettlementLabel { player: PlayerId(Uuid::from_u128(p)), answer, shown }).collect();
        let mut shuffled = labels.clone();
        // Deterministic Fisher-Yates with a tiny LCG.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (s >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let a = rules.settle(consensus, &labels);
        let b = rules.settle(consensus, &shuffled);
        prop_assert_eq!(&a, &b);
        // Only players who answered the consensus earn anything.
        for player in a.keys() {
            prop_assert!(labels.iter().any(|l| l.player == *player && l.answer == consensus));
        }
    }

    #[test]
    fn vote_counts_are_order_independent(votes in prop::collection::vec(emotion(), 0..30)) {
        let mut a = VoteCounts::default();
        let mut b = VoteCounts::default();
        for v in &votes { a.add(*v); }
        for v in votes.iter().rev() { b.add(*v); }
        prop_assert_eq!(a, b);
        prop_assert_eq!(a.total() as usize, votes.len());
    }

    #[test]
    fn retirement_only_when_confident(post in prop::array::uniform7(0.0f64..1.0), n in 0u32..12, support in 0u32..12, rule in rule()) {
        let s: f64 = post.iter().sum::<f64>().max(1e-9);
        let post = post.map(|p| p / s);
        let (top, p) = emofy_game::truth::map(&post);
        match rule.status::<Emotion, 7>(&post, n, support) {
            ImageStatus::Retired { label } => {
                prop_assert_eq!(label, top);
                prop_assert!(n >= rule.min_labels());
                prop_assert!(support >= 1);
                prop_assert!(p * 1000.0 >= f64::from(rule.confidence_permille()));
            }
            ImageStatus::Disputed => prop_assert!(n >= rule.max_labels()),
            ImageStatus::Open => prop_assert!(n < rule.max_labels()),
            ImageStatus::Removed => prop_assert!(false, "the rule never removes"),
        }
    }

    #[test]
    fn selection_never_offers_closed_seen_or_own_images(
        entries in prop::collection::vec((any::<[u8; 32]>(), counts(), status(), prop::option::of(0u128..4), prop::option::of((emotion(), 0u16..=1000)), prop::option::of(emotion())), 0..40),
        player in 0u128..4,
        seen_mask in any::<u64>(),
        spread in 1usize..5,
        pick in any::<u64>(),
        explore in any::<bool>(),
    ) {
        let player = PlayerId(Uuid::from_u128(player));
        let mut pool = ImagePool::new(ConsensusRule::default());
        let mut seen = HashSet::new();
        for (i, (digest, votes, status, uploader, leading, model_guess)) in entries.iter().enumerate() {
            let image = ImageId::from_digest(*digest);
            pool.upsert(PoolEntry { image, uploader: uploader.map(|u| PlayerId(Uuid::from_u128(u))), votes: *votes, status: *status, leading: *leading, model_guess: *model_guess });
            if seen_mask >> (i % 64) & 1 == 1 { seen.insert(image); }
        }
        let eligible: Vec<_> = entries.iter().map(|e| ImageId::from_digest(e.0)).filter(|id| {
            let e = pool.get(id);
            e.is_some_and(|e| e.status.is_open() && e.uploader != Some(player)) && !seen.contains(id)
        }).collect::<HashSet<_>>().into_iter().collect();
        match pool.select(player, |i| seen.contains(i), spread, pick, explore) {
            Some(id) => {
                let e = pool.get(&id);
                prop_assert!(e.is_some_and(|e| e.status.is_open()));
                prop_assert!(e.is_some_and(|e| e.uploader != Some(player)));
                prop_assert!(!seen.contains(&id));
                if !explore {
                    let best = eligible.iter().filter_map(|i| pool.priority(i)).min();
                    prop_assert_eq!(pool.priority(&id), best);
                }
            }
            None => prop_assert!(eligible.is_empty()),
        }
    }

    #[test]
    fn settled_checks_are_only_confident_retired_unseen_faces_of_others(
        entries in prop::collection::vec((0u8..24, counts(), status(), prop::option::of(0u128..4), prop::option::of((emotion(), 800u16..=1000))), 0..60),
        player in 0u128..4,
        seen_mask in any::<u32>(),
        picks in prop::collection::vec(any::<u64>(), 1..8),
    ) {
        // Small digests so later entries overwrite earlier ones (status changes, removals).
        let player = PlayerId(Uuid::from_u128(player));
        let checks = SettledChecks::default();
        let mut pool = ImagePool::with_checks(ConsensusRule::default(), checks);
        for (n, votes, status, uploader, leading) in &entries {
            let image = ImageId::from_digest([*n; 32]);
            if *status == ImageStatus::Removed && n % 3 == 0 {
                pool.remove(&image);
                continue;
            }
            pool.upsert(PoolEntry { image, uploader: uploader.map(|u| PlayerId(Uuid::from_u128(u))), votes: *votes, status: *status, leading: *leading, model_guess: None });
        }
        let seen = |i: &ImageId| seen_mask >> (i.short() % 32) & 1 == 1;
        let eligible: HashSet<ImageId> = (0u8..24).map(|n| ImageId::from_digest([n; 32])).filter(|id| {
            pool.get(id).is_some_and(|e| checks.admits(e) && e.uploader != Some(player)) && !seen(id)
        }).collect();
        for pick in picks {
            match pool.pick_settled(player, seen, pick) {
                Some(id) => {
                    let e = pool.get(&id).copied();
                    let retired = e.is_some_and(|e| e.status.name() == "retired");
                    prop_assert!(retired);
                    prop_assert!(e.is_some_and(|e| checks.admits(&e)));
                    prop_assert!(e.is_some_and(|e| e.uploader != Some(player)));
                    prop_assert!(!seen(&id));
                    prop_assert!(eligible.contains(&id));
                }
                None => prop_assert!(eligible.is_empty()),
            }
        }
    }

    #[test]
    fn a_player_never_gets_the_same_image_twice(n in 1usize..30, picks in prop::collection::vec(any::<u64>(), 40)) {
        let mut pool = ImagePool::new(ConsensusRule::default());
        for i in 0..n {
            let mut d = [0u8; 32];
            d[0] = i as u8;
            d[31] = (i * 37) as u8;
            pool.upsert(PoolEntry::fresh(ImageId::from_digest(d), None));
        }
        let player = PlayerId(Uuid::from_u128(1));
        let mut seen = HashSet::new();
        for pick in picks {
            match pool.select(player, |i| seen.contains(i), 3, pick, pick % 5 == 0) {
                Some(id) => prop_assert!(seen.insert(id)),
                None => { prop_assert_eq!(seen.len(), n); break; }
            }
        }
    }

    #[test]
    fn round_accepts_at_most_one_answer_before_deadline(
        offered in 0u64..1_000_000, limit in 1u64..60_000,
        attempts in prop::collection::vec((emotion(), 0u64..120_000), 1..6)
    ) {
        let mut r = Round::offer(RoundId(Uuid::from_u128(1)), PlayerId(Uuid::from_u128(2)), ImageId::from_digest([0; 32]), None, Millis(offered), limit);
        let mut accepted = 0;
        for (e, dt) in attempts {
            let now = Millis(offered + dt);
            if let Ok(a) = r.answer(e, now) {
                accepted += 1;
                prop_assert!(now <= r.deadline);
                prop_assert!(a.response_ms <= limit);
            }
        }
        prop_assert!(accepted <= 1);
    }
}

proptest! {
    /// Every moment is in exactly one bucket per period, which ends after it
    /// and no later than the period's length; its last moment is still in it.
    #[test]
    fn period_buckets_partition_time(at in 0u64..4_102_444_800_000) {
        use emofy_game::{Millis, Period};
        for (period, len) in [(Period::Daily, 86_400_000u64), (Period::Weekly, 7 * 86_400_000)] {
            let b = period.bucket(Millis(at));
            prop_assert!(b.ends.is_some());
            let ends = b.ends.map_or(0, |e| e.0);
            prop_assert!(ends > at && ends - at <= len);
            prop_assert_eq!(&period.bucket(Millis(ends - 1)).id, &b.id);
            prop_assert_ne!(&period.bucket(Millis(ends)).id, &b.id);
            prop_assert_eq!(period.bucket(Millis(ends)).ends, Some(Millis(ends + len)));
        }
    }
}

mod truth_properties {
    use emofy_game::truth::{
        Confusion, CrowdPrior, Evidence, ImageFacts, KnownSource, LabelFact, MatrixPrior,
        Reliability, SpamFlag, SpamRules, TrustRules, UNIFORM, gold, judge, posterior,
        posterior_copying,
    };
    use emofy_game::{ConsensusRule, EMOTION_COUNT, Emotion, ImageStatus};
    use proptest::prelude::*;

    fn emotion() -> impl Strategy<Value = Emotion> {
        (0..EMOTION_COUNT).prop_map(|i| Emotion::ALL[i])
    }

    /// A matrix learned from arbitrary soft observations.
    fn matrix() -> impl Strategy<Value = Confusion> {
        (
            0.05f64..10.0,
            0.05f64..10.0,
            proptest::collection::vec((proptest::array::uniform7(0.0f64..1.0), emotion()), 0..20),
        )
            .prop_map(|(d, o, obs)| {
                let mut m = Confusion::new(MatrixPrior {
                    diagonal: d,
                    off_diagonal: o,
                });
                for (w, a) in obs {
                    let s: f64 = w.iter().sum::<f64>().max(1e-9);
                    let belief = w.map(|x| x / s);
                    m.observe(&belief, a);
                }
                m
            })
    }

    proptest! {
        #[test]
        fn matrix_rows_sum_to_one(m in matrix()) {
            for t in Emotion::ALL {
                let s: f64 = m.row(t).iter().sum();
                prop_assert!((s - 1.0).abs() < 1e-9);
            }
        }

        #[test]
        fn posteriors_sum_to_one(
            prior in proptest::array::uniform7(0.01f64..1.0),
            labels in proptest::collection::vec((matrix(), emotion()), 0..8),
        ) {
            let s: f64 = prior.iter().sum();
            let prior = prior.map(|p| p / s);
            let post = posterior(&prior, labels.iter().map(|(m, a)| (m, *a)));
            let total: f64 = post.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
            prop_assert!(post.iter().all(|p| p.is_finite() && *p >= 0.0));
        }

        /// A label for the gold class from a labeler who gives that answer
        /// most often when it is the truth never lowers the gold class's
        /// posterior; and a gold image's posterior is certain.
        #[test]
        fn an_agreeing_label_never_lowers_the_gold_class(
            labels in proptest::collection::vec((matrix(), emotion()), 0..6),
            extra in matrix(),
            g in emotion(),
        ) {
            let uniform = [1.0 / EMOTION_COUNT as f64; EMOTION_COUNT];
            let before = posterior(&uniform, labels.iter().map(|(m, a)| (m, *a)));
            let informative = Emotion::ALL.iter().all(|t| extra.p(g, g) >= extra.p(*t, g));
            prop_assume!(informative);
            let after = posterior(
                &uniform,
                labels.iter().map(|(m, a)| (m, *a)).chain(std::iter::once((&extra, g))),
            );
            prop_assert!(after[g.index()] >= before[g.index()] - 1e-12);
            prop_assert_eq!(gold::<Emotion, 7>(g)[g.index()], 1.0);
        }

        #[test]
        fn posteriors_with_copying_sum_to_one(
            labels in proptest::collection::vec((matrix(), 0.0f64..1.0, emotion(), proptest::option::of(emotion())), 0..8),
        ) {
            let uniform = [1.0 / EMOTION_COUNT as f64; EMOTION_COUNT];
            let post = posterior_copying(&uniform, labels.iter().map(|(m, c, a, s)| (m, *c, *a, *s)));
            let total: f64 = post.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
            prop_assert!(post.iter().all(|p| p.is_finite() && *p >= 0.0));
        }

        /// Learning from a gold label keeps every matrix row a distribution,
        /// and a right answer on gold never lowers P(answer = g | truth = g).
        #[test]
        fn gold_labels_teach_matrices(
            answers in proptest::collection::vec((emotion(), emotion(), proptest::option::of(emotion()), any::<bool>(), 0u64..5_000), 1..40),
        ) {
            let mut r = Reliability::default();
            let rules = SpamRules::default();
            for (g, answer, shown, decoy, ms) in answers {
                let before = r.matrix.p(g, g);
                let belief = [1.0 / EMOTION_COUNT as f64; EMOTION_COUNT];
                r.learn(&LabelFact { answer, shown, decoy, gold: Some(g), reference: None, response_ms: ms }, &belief, &rules, &UNIFORM);
                for t in Emotion::ALL {
                    let s: f64 = r.matrix.row(t).iter().sum();
                    prop_assert!((s - 1.0).abs() < 1e-9);
                }
                if answer == g {
                    prop_assert!(r.matrix.p(g, g) >= before - 1e-12);
                }
                prop_assert!(r.gold_right <= r.gold && r.decoys_followed <= r.decoys);
                prop_assert!(r.checks_right <= r.checks && r.checks == r.gold);
                prop_assert!((0.0..1.0).contains(&r.copy_rate()));
            }
        }

        /// Making an image gold (a verified label) never lowers the gold
        /// class's posterior, and [`judge`]'s posterior always sums to 1.
        #[test]
        fn a_gold_label_never_lowers_the_gold_class(
            labels in proptest::collection::vec((emotion(), proptest::option::of(emotion())), 0..9),
            g in emotion(),
        ) {
            let r = Reliability::default();
            let ev: Vec<Evidence<'_>> = labels.iter().map(|(a, s)| Evidence { reliability: &r, answer: *a, shown: *s }).collect();
            let rule = ConsensusRule::default();
            let trust = TrustRules::default();
            let facts = |gold| ImageFacts { status: ImageStatus::Open, gold, prior: UNIFORM, model: None, known: false };
            let crowd = judge(&rule, &trust, &facts(None), &ev);
            let verified = judge(&rule, &trust, &facts(Some(g)), &ev);
            prop_assert!((crowd.posterior.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(verified.posterior[g.index()] >= crowd.posterior[g.index()]);
        }

        /// However many newcomers agree, and however sure the posterior,
        /// an image does not retire (or go to review) on newcomers' word
        /// alone; one established player agreeing lets it retire.
        #[test]
        fn newcomers_alone_never_retire_an_image(
            n in 3usize..40,
            answer in emotion(),
            known in proptest::option::of((emotion(), any::<bool>())),
        ) {
            let trust = TrustRules::default();
            let crowd = CrowdPrior::<7>::default();
            let newcomer = crowd.newcomer();
            let mut proven = crowd.newcomer();
            proven.checks = trust.checks_to_trust;
            proven.checks_right = trust.checks_to_trust;
            prop_assert!(!newcomer.established(&trust) && proven.established(&trust));
            let rule = ConsensusRule::default();
            let prior = crowd.image_prior(known.map(|(e, demo)| {
                let source = if demo { KnownSource::Demo } else { KnownSource::Dataset };
                (e, trust.trust_of(source))
            }));
            let facts = ImageFacts { status: ImageStatus::Open, gold: None, prior, model: None, known: known.is_some() };
            let mut ev: Vec<Evidence<'_>> = (0..n).map(|_| Evidence { reliability: &newcomer, answer, shown: None }).collect();
            let j = judge(&rule, &trust, &facts, &ev);
            prop_assert_eq!(j.status, ImageStatus::Open, "newcomers alone neither retire nor dispute");
            ev.push(Evidence { reliability: &proven, answer, shown: None });
            let j = judge(&rule, &trust, &facts, &ev);
            if j.posterior[answer.index()] >= 0.9 {
                prop_assert_eq!(j.status, ImageStatus::Retired { label: answer });
            }
        }

        /// A newcomer weighs between `newcomer_weight` and 1, more with
        /// every right check, fully once established, and loses it again
        /// when most checks are wrong.
        #[test]
        fn weight_grows_with_right_checks(right in 0u32..10, wrong in 0u32..10) {
            let trust = TrustRules::default();
            let mut r = CrowdPrior::<7>::default().newcomer();
            r.checks = right + wrong;
            r.checks_right = right;
            let w = r.weight(&trust);
            prop_assert!(w >= trust.newcomer_weight - 1e-12 && w <= 1.0);
            let mut more = r.clone();
            more.checks += 1;
            more.checks_right += 1;
            prop_assert!(more.weight(&trust) >= w);
            prop_assert_eq!(r.established(&trust), w == 1.0);
            // Trust spent on lies is lost: enough wrong checks after the
            // right ones bring a newcomer's weight back.
            let mut liar = r.clone();
            liar.checks += 4 * (right + 1);
            prop_assert!(!liar.established(&trust));
            prop_assert!(liar.weight(&trust) <= w);
        }

        /// An image's prior is a distribution, led by the label it came
        /// with when that label is trusted more than chance.
        #[test]
        fn image_priors_are_distributions(
            prior in proptest::array::uniform7(0.01f64..1.0),
            label in emotion(),
            trust in 0.0f64..1.0,
        ) {
            let s: f64 = prior.iter().sum();
            let crowd = CrowdPrior { class_prior: prior.map(|p| p / s), ..CrowdPrior::<7>::default() };
            let p = crowd.image_prior(Some((label, trust)));
            prop_assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let plain = crowd.image_prior(None::<(Emotion, f64)>);
            prop_assert!(p[label.index()] >= plain[label.index()] - 1e-12 || trust < 1.0 / EMOTION_COUNT as f64 + 1e-9);
        }

        /// The check test flags a player wrong on every checked face once
        /// they have `min_gold` checks, and never one right on at least
        /// half of them.
        #[test]
        fn chance_on_checks_flags_liars_not_the_honest(checks in 0u32..40, liar in any::<bool>()) {
            let rules = SpamRules::default();
            let mut r = CrowdPrior::<7>::default().newcomer();
            r.checks = checks;
            r.checks_right = if liar { 0 } else { checks.div_ceil(2) };
            let flagged = r.verdict(&rules, &UNIFORM) == Some(SpamFlag::ChanceOnGold);
            if liar {
                prop_assert_eq!(flagged, checks >= rules.min_gold);
            } else {
                prop_assert!(!flagged);
            }
        }
    }
}

/// The game's same-button rule judges a player against the pool: honest
/// players on a pool that is 90% one class are not flagged, a bot pressing
/// one button on a balanced pool is.
mod same_button_is_judged_against_the_pool {
    use emofy_game::truth::{CrowdPrior, LabelFact, SpamFlag, SpamRules, UNIFORM, gold};
    use emofy_game::{EMOTION_COUNT, Emotion};

    fn play(
        truths: &[Emotion],
        answer: impl Fn(usize, Emotion) -> Emotion,
        prior: &[f64; EMOTION_COUNT],
    ) -> Option<SpamFlag> {
        let rules = SpamRules::default();
        let mut r = CrowdPrior {
            class_prior: *prior,
            ..CrowdPrior::<7>::default()
        }
        .newcomer();
        for (i, t) in truths.iter().enumerate() {
            let fact = LabelFact {
                answer: answer(i, *t),
                shown: None,
                decoy: false,
                gold: None,
                reference: None,
                response_ms: 2_000,
            };
            // The crowd is sure of each face (what the posterior says once
            // enough others labelled it).
            r.learn(&fact, &gold(*t), &rules, prior);
        }
        r.flag
    }

    #[test]
    fn honest_on_a_skewed_pool_bots_on_a_balanced_one() {
        let happy = Emotion::Happy;
        let skewed: Vec<Emotion> = (0..200)
            .map(|i| {
                if i % 10 == 0 {
                    Emotion::ALL[(i / 10) % 7]
                } else {
                    happy
                }
            })
            .collect();
        let mut prior = [0.1 / 6.0; EMOTION_COUNT];
        prior[happy.index()] = 0.9;
        // Right 95% of the time, mistakes spread: about 91% "happy".
        let honest = |i: usize, t: Emotion| {
            if i % 20 == 7 {
                Emotion::ALL[(t.index() + 1) % 7]
            } else {
                t
            }
        };
        for n in [15, 40, 200] {
            assert_eq!(play(&skewed[..n], honest, &prior), None, "honest after {n}");
        }
        let balanced: Vec<Emotion> = (0..200).map(|i| Emotion::ALL[i % 7]).collect();
        assert_eq!(
            play(&balanced[..40], |_, _| happy, &UNIFORM),
            Some(SpamFlag::SameButton)
        );
        // The same bot on the skewed pool is still found out once the
        // faces it calls happy are not.
        assert_eq!(
            play(&balanced, |_, _| happy, &prior),
            Some(SpamFlag::SameButton)
        );
    }
}
