//! The answer and moderation plans, tested without any store: a tiny
//! in-memory "store" loads what a plan reads and applies what it writes, the
//! way both real stores do.

use std::collections::{HashMap, HashSet};

use emofy_game::plan::*;
use emofy_game::*;
use proptest::prelude::*;
use uuid::Uuid;

fn rules(min: u32, permille: u32, max: u32) -> GameRules {
    GameRules {
        consensus: ConsensusRule::new(min, permille, max).unwrap_or_else(|e| panic!("{e}")),
        scoring: ScoringRules::default(),
        spam: SpamRules::default(),
        // Everyone trusted from the first label: these tests are about the
        // writes; the newcomer rules have their own tests below.
        trust: TrustRules {
            newcomer_weight: 1.0,
            min_established: 0,
            ..TrustRules::default()
        },
    }
}

/// An in-memory store: what an answer reads, and applying its plan.
#[derive(Default)]
struct Memory {
    rounds: HashMap<RoundId, StoredRound>,
    images: HashMap<ImageId, StoredImage>,
    players: HashMap<PlayerId, (String, PlayerTally)>,
    labels: Vec<NewLabel>,
    reliabilities: HashMap<PlayerId, Reliability>,
    model: Option<Reliability>,
    ledger: Vec<ScoreChange>,
}

impl Memory {
    /// What a store reads: the image's labels marked as counted, oldest
    /// first, at most the cap (the stores' index on the `counted` mark).
    fn inputs(&self, a: &AnswerRecord, rules: &GameRules) -> AnswerInputs {
        self.inputs_where(a, rules, |l, _| l.counted)
    }

    /// The reference: every label filtered by its player's reliability now,
    /// then the cap; what the stores read before labels carried the mark.
    fn inputs_by_reliability(&self, a: &AnswerRecord, rules: &GameRules) -> AnswerInputs {
        self.inputs_where(a, rules, |_, r| r.counts())
    }

    fn inputs_where(
        &self,
        a: &AnswerRecord,
        rules: &GameRules,
        keep: impl Fn(&NewLabel, &Reliability) -> bool,
    ) -> AnswerInputs {
        AnswerInputs {
            round: self.rounds.get(&a.round).copied(),
            image: self.images.get(&a.image).copied(),
            player: self.players.get(&a.player).cloned(),
            earlier: self
                .labels
                .iter()
                .filter(|l| l.image == a.image)
                .map(|l| {
                    let r = self
                        .reliabilities
                        .get(&l.player)
                        .cloned()
                        .unwrap_or_default();
                    (l, r)
                })
                .filter(|(l, r)| keep(l, r))
                .take(rules.labels_read_cap() as usize)
                .map(|(l, reliability)| EarlierLabel {
                    player: l.player,
                    answer: l.emotion,
                    shown: l.shown,
                    decoy: l.decoy,
                    reliability,
                })
                .collect(),
            me: self.reliabilities.get(&a.player).cloned(),
            model: self.model.clone(),
            crowd: None,
        }
    }

    /// Marks every label of `player` (what both stores' `mark_counted` do).
    fn mark_counted(&mut self, player: PlayerId, counted: bool) {
        for l in self.labels.iter_mut().filter(|l| l.player == player) {
            l.counted = counted;
        }
    }

    /// A moderator's decision on a player, as the stores apply it.
    fn moderate(&mut self, player: PlayerId, action: PlayerAction) {
        let current = self.reliabilities.get(&player).cloned().unwrap_or_default();
        let plan = plan_player_moderation(action, current.clone());
        assert_eq!(plan.detail.before, current.moderation.as_str());
        assert_eq!(plan.reliability.moderation, action.moderation());
        assert_eq!(
            plan.recount.is_some(),
            plan.reliability.counts() != current.counts()
        );
        self.reliabilities.insert(player, plan.reliability);
        if let Some(counted) = plan.recount {
            self.mark_counted(player, counted);
        }
    }

    fn apply(&mut self, plan: &AnswerPlan) -> AnswerOutcome {
        let l = plan.label;
        self.labels.push(l);
        if let Some(img) = self.images.get_mut(&l.image) {
            img.votes = plan.image.votes;
            img.status = plan.image.status;
            img.model_guess = plan.image.model_guess;
        }
        self.reliabilities.insert(l.player, plan.me.clone());
        if let Some(counted) = plan.recount {
            self.mark_counted(l.player, counted);
        }
        if let Some(m) = &plan.model {
            self.model = Some(m.clone());
        }
        if let Some(p) = self.players.get_mut(&l.player) {
            p.1 = plan.tally;
        }
        if let Some(r) = self.rounds.get_mut(&l.round) {
            r.open = false;
        }
        let mut settled = Vec::new();
        for (p, pts) in &plan.settle {
            if let Some((name, tally)) = self.players.get_mut(p) {
                tally.add_points(*pts);
                settled.push(SettledTotal {
                    player: *p,
                    name: name.clone(),
                    total: tally.score,
                });
            }
        }
        let changes = plan.changes(&settled);
        self.ledger.extend(changes.iter().cloned());
        plan.outcome(changes)
    }

    fn answer(
        &mut self,
        a: &AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, AnswerRefusal> {
        let plan = plan_answer(self.inputs(a, rules), a, rules)?;
        Ok(self.apply(&plan))
    }

    fn offer(&mut self, player: PlayerId, image: ImageId) -> RoundId {
        let round = RoundId(Uuid::new_v4());
        self.rounds.insert(
            round,
            StoredRound {
                player,
                image,
                open: true,
            },
        );
        round
    }
}

fn image_id(n: u8) -> ImageId {
    ImageId::of_bytes(&[n])
}

fn record(round: RoundId, player: PlayerId, image: ImageId, emotion: Emotion) -> AnswerRecord {
    AnswerRecord {
        round,
        player,
        image,
        emotion,
        shown: Some(Emotion::Happy),
        decoy: false,
        model_guess: Some(Emotion::Happy),
        response_ms: 2_000,
        time_limit_ms: 15_000,
        at: Millis(10_000),
    }
}

fn open_image() -> StoredImage {
    StoredImage {
        votes: VoteCounts::default(),
        status: ImageStatus::Open,
        gold: None,
        model_guess: None,
        known: None,
    }
}

#[test]
fn refusals_write_nothing() {
    let mut m = Memory::default();
    let rules = rules(3, 900, 9);
    let (p, q, img) = (
        PlayerId(Uuid::new_v4()),
        PlayerId(Uuid::new_v4()),
        image_id(1),
    );
    m.players.insert(p, ("P".into(), PlayerTally::default()));
    m.images.insert(img, open_image());
    let round = m.offer(p, img);
    // Unknown round; another player's round; a closed round; a withdrawn image.
    let stray = record(RoundId(Uuid::new_v4()), p, img, Emotion::Sad);
    assert_eq!(m.answer(&stray, &rules), Err(AnswerRefusal::RoundNotFound));
    assert_eq!(
        m.answer(&record(round, q, img, Emotion::Sad), &rules),
        Err(AnswerRefusal::RoundNotFound)
    );
    assert!(
        m.answer(&record(round, p, img, Emotion::Sad), &rules)
            .is_ok()
    );
    assert_eq!(
        m.answer(&record(round, p, img, Emotion::Sad), &rules),
        Err(AnswerRefusal::RoundClosed)
    );
    let round = m.offer(q, img);
    m.players.insert(q, ("Q".into(), PlayerTally::default()));
    if let Some(i) = m.images.get_mut(&img) {
        i.status = ImageStatus::Removed;
    }
    assert_eq!(
        m.answer(&record(round, q, img, Emotion::Sad), &rules),
        Err(AnswerRefusal::RoundClosed)
    );
    assert_eq!(m.labels.len(), 1);
}

#[test]
fn a_retiring_answer_settles_each_agreeing_player_once_with_unique_keys() {
    let mut m = Memory::default();
    let rules = rules(3, 700, 9);
    let img = image_id(2);
    m.images.insert(img, open_image());
    let players: Vec<PlayerId> = (0..3).map(|_| PlayerId(Uuid::new_v4())).collect();
    let mut retired = None;
    for (i, p) in players.iter().enumerate() {
        m.players
            .insert(*p, (format!("P{i}"), PlayerTally::default()));
        let round = m.offer(*p, img);
        let out = m.answer(&record(round, *p, img, Emotion::Sad), &rules);
        let out = out.unwrap_or_else(|e| panic!("{e:?}"));
        if let Transition::Retired { label } = out.transition {
            retired = Some((label, out));
        }
    }
    let (label, out) = retired.unwrap_or_else(|| panic!("three agreeing labels retire the image"));
    assert_eq!(label, Emotion::Sad);
    let settled: Vec<&ScoreChange> = out
        .changes
        .iter()
        .filter(|c| c.reason == ScoreReason::Consensus)
        .collect();
    assert_eq!(settled.len(), 3, "every labeller who agreed is paid");
    for c in &settled {
        assert_eq!(c.key, LedgerKey::settle(img, c.player));
        // Sad against a shown "happy": the consensus bonus and the correction bonus.
        assert_eq!(c.delta, 5 + 15);
        assert_eq!(Some(c.total), m.players.get(&c.player).map(|p| p.1.score));
    }
    let keys: HashSet<&str> = m.ledger.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.len(), m.ledger.len(), "ledger keys are unique");
}

#[test]
fn moderation_plans() {
    let rules = rules(3, 700, 9);
    let img = image_id(3);
    let inputs = |status, posterior| ModerationInputs {
        image: img,
        status,
        posterior,
        gold: None,
        labels: Vec::new(),
    };
    assert_eq!(
        plan_moderation(
            inputs(ImageStatus::Removed, None),
            &ImageAction::Accept,
            &rules,
            Millis(1)
        )
        .err(),
        Some(ModerationRefusal::Removed)
    );
    assert_eq!(
        plan_moderation(
            inputs(ImageStatus::Open, None),
            &ImageAction::Accept,
            &rules,
            Millis(1)
        )
        .err(),
        Some(ModerationRefusal::Unlabelled)
    );
    let p = PlayerId(Uuid::new_v4());
    let labelled = ModerationInputs {
        labels: vec![EarlierLabel {
            player: p,
            answer: Emotion::Fear,
            shown: Some(Emotion::Happy),
            decoy: false,
            reliability: Reliability::default(),
        }],
        ..inputs(ImageStatus::Disputed, None)
    };
    let plan = plan_moderation(
        labelled.clone(),
        &ImageAction::Override {
            label: Emotion::Fear,
        },
        &rules,
        Millis(1),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        plan.status,
        ImageStatus::Retired {
            label: Emotion::Fear
        }
    );
    assert_eq!(plan.gold, Some(Emotion::Fear));
    assert_eq!(plan.settle, vec![(p, 20, LedgerKey::settle(img, p))]);
    // Overriding an image that already retired pays nobody again.
    let again = ModerationInputs {
        status: ImageStatus::Retired {
            label: Emotion::Fear,
        },
        ..labelled
    };
    let plan = plan_moderation(
        again,
        &ImageAction::Override {
            label: Emotion::Sad,
        },
        &rules,
        Millis(2),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(plan.settle.is_empty());
    // A flag takes the image out of play; the audit detail keeps the reason.
    let plan = plan_moderation(
        inputs(ImageStatus::Open, None),
        &ImageAction::Flag {
            reason: "not_a_face".into(),
        },
        &rules,
        Millis(3),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(plan.status, ImageStatus::Removed);
    assert_eq!(plan.detail.reason.as_deref(), Some("not_a_face"));
}

fn emotion() -> impl Strategy<Value = Emotion> {
    (0usize..7).prop_map(|i| Emotion::ALL[i])
}

proptest! {
    /// Replaying any sequence of answers (some to closed rounds, some by
    /// banned players) through the plan: the image's votes total the accepted
    /// answers; no ledger key is used twice; totals in the ledger match the
    /// players'; an image never changes after it closed.
    #[test]
    fn replays_keep_the_books(
        answers in prop::collection::vec((0usize..6, 0usize..3, emotion(), any::<bool>(), any::<bool>()), 1..60),
        banned in prop::collection::vec(any::<bool>(), 6),
        min in 1u32..4, extra in 0u32..5, permille in 600u32..=1000,
    ) {
        let rules = rules(min, permille, min + extra);
        let mut m = Memory::default();
        let players: Vec<PlayerId> = (0..6).map(|_| PlayerId(Uuid::new_v4())).collect();
        let images: Vec<ImageId> = (0..3).map(|i| image_id(10 + i as u8)).collect();
        for (i, p) in players.iter().enumerate() {
            m.players.insert(*p, (format!("P{i}"), PlayerTally::default()));
            if banned[i] {
                let r = Reliability { moderation: Moderation::Banned, ..Default::default() };
                m.reliabilities.insert(*p, r);
            }
        }
        for img in &images {
            m.images.insert(*img, open_image());
        }
        let mut accepted: HashMap<ImageId, u32> = HashMap::new();
        let mut seen: HashSet<(PlayerId, ImageId)> = HashSet::new();
        for (pi, ii, emotion, twice, decoy) in answers {
            let (p, img) = (players[pi], images[ii]);
            if !seen.insert((p, img)) {
                continue; // a player sees an image once
            }
            let before = m.images.get(&img).copied();
            let round = m.offer(p, img);
            let mut a = record(round, p, img, emotion);
            a.decoy = decoy;
            match m.answer(&a, &rules) {
                Ok(out) => {
                    *accepted.entry(img).or_default() += 1;
                    prop_assert_eq!(out.votes.total(), accepted[&img]);
                    if let Some(b) = before.filter(|b| !b.status.is_open()) {
                        prop_assert_eq!(out.status, b.status, "a closed image stays closed");
                    }
                    prop_assert!((out.posterior.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                }
                Err(e) => prop_assert!(false, "refused {:?}", e),
            }
            if twice {
                prop_assert_eq!(m.answer(&a, &rules).err(), Some(AnswerRefusal::RoundClosed));
            }
        }
        let keys: HashSet<&str> = m.ledger.iter().map(|c| c.key.as_str()).collect();
        prop_assert_eq!(keys.len(), m.ledger.len(), "a ledger key is used once");
        for p in &players {
            let last = m.ledger.iter().filter(|c| c.player == *p).map(|c| c.total).max().unwrap_or(0);
            prop_assert_eq!(last, m.players[p].1.score, "the ledger's last total is the player's score");
            let earned: u64 = m.ledger.iter().filter(|c| c.player == *p).map(|c| u64::from(c.delta)).sum();
            prop_assert_eq!(earned, m.players[p].1.score, "the ledger sums to the score");
        }
        for (i, p) in players.iter().enumerate() {
            if banned[i] {
                prop_assert!(m.ledger.iter().all(|c| c.player != *p || c.reason == ScoreReason::Answer),
                    "banned players are never settled");
            }
        }
    }

    /// Settlement does not depend on the order the store returns labels in.
    #[test]
    fn settlement_is_independent_of_label_order(
        votes in prop::collection::vec((emotion(), prop::option::of(emotion()), any::<bool>()), 1..10),
        seed in any::<u64>(),
    ) {
        let rules = rules(1, 501, 40);
        let labels: Vec<EarlierLabel> = votes.iter().map(|(answer, shown, decoy)| EarlierLabel {
            player: PlayerId(Uuid::new_v4()),
            answer: *answer,
            shown: *shown,
            decoy: *decoy,
            reliability: Reliability::default(),
        }).collect();
        let mut shuffled = labels.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let plan = |labels: Vec<EarlierLabel>| {
            let inputs = ModerationInputs {
                image: image_id(1),
                status: ImageStatus::Open,
                posterior: None,
                gold: None,
                labels,
            };
            let mut settle = plan_moderation(inputs, &ImageAction::Override { label: Emotion::Sad }, &rules, Millis(1))
                .map(|p| p.settle)
                .unwrap_or_default();
            settle.sort();
            settle
        };
        prop_assert_eq!(plan(labels), plan(shuffled));
    }

    /// Reading only the labels marked as counted plans exactly what reading
    /// every label and asking each player's reliability did, through any mix
    /// of answers (fast ones get players flagged by the spam rules) and
    /// moderators' bans, clears and resets; and every label's mark always
    /// matches its player.
    #[test]
    fn counted_marks_read_what_the_reliabilities_say(
        ops in prop::collection::vec((0usize..5, 0usize..12, emotion(), any::<bool>(), 0u8..10), 1..120),
        min in 1u32..4, extra in 0u32..4,
    ) {
        let mut rules = rules(min, 700, min + extra);
        // Flags after a few answers, so that the spam rules flag (and unflag) players here.
        rules.spam.min_answers = 3;
        let mut m = Memory::default();
        let players: Vec<PlayerId> = (0..5).map(|_| PlayerId(Uuid::new_v4())).collect();
        let images: Vec<ImageId> = (0..12).map(|i| image_id(30 + i as u8)).collect();
        for (i, p) in players.iter().enumerate() {
            m.players.insert(*p, (format!("P{i}"), PlayerTally::default()));
        }
        for img in &images {
            m.images.insert(*img, open_image());
        }
        let mut seen: HashSet<(PlayerId, ImageId)> = HashSet::new();
        for (pi, ii, emotion, fast, moderate) in ops {
            let (p, img) = (players[pi], images[ii]);
            match moderate {
                0 => m.moderate(p, PlayerAction::Ban),
                1 => m.moderate(p, PlayerAction::Clear),
                2 => m.moderate(p, PlayerAction::Reset),
                _ => {
                    if !seen.insert((p, img)) {
                        continue;
                    }
                    let round = m.offer(p, img);
                    let mut a = record(round, p, img, emotion);
                    if fast {
                        a.response_ms = 50;
                    }
                    let marked = plan_answer(m.inputs(&a, &rules), &a, &rules);
                    let reference = plan_answer(m.inputs_by_reliability(&a, &rules), &a, &rules);
                    prop_assert_eq!(&marked, &reference);
                    if let Ok(plan) = marked {
                        m.apply(&plan);
                    }
                }
            }
            for l in &m.labels {
                let counts = m.reliabilities.get(&l.player).is_none_or(Reliability::counts);
                prop_assert_eq!(l.counted, counts, "a label's mark follows its player");
            }
        }
    }
}
