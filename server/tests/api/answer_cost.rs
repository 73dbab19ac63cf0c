//! What one answer costs the embedded store, counted (not timed): the same
//! number of statements whatever the image already holds, rows read and
//! SQLite VM instructions that grow with the counted labels only up to the
//! cap, and labels of players who do not count (banned before or after they
//! answered) never walked at all, however many an image collected.

use emofy_game::{
    ConsensusRule, Emotion, ImageId, Millis, PlayerId, Role, RoundId, ScoringRules, SpamRules,
};
use emofy_server::store::sqlite::{AnswerCostTotals, SqliteOptions, SqliteStore};
use emofy_server::store::{
    AnswerRecord, GameRules, ImageSource, ImageStore, NewImage, OfferRecord, PlayerAction,
    PlayerStore, ReviewStore, RoundStore,
};
use uuid::Uuid;

use crate::fixtures::grey_png;

pub(crate) async fn image(store: &SqliteStore, seed: u32) -> ImageId {
    store
        .insert_image(
            NewImage {
                bytes: grey_png(4, seed),
                mime: "image/png".into(),
                width: 4,
                height: 4,
                source: ImageSource::Demo,
                source_label: None,
                uploader: None,
            },
            Millis(1),
        )
        .await
        .unwrap()
        .0
}

pub(crate) async fn player(store: &SqliteStore) -> PlayerId {
    let id = PlayerId(Uuid::new_v4());
    store
        .create_player(id, "bot", Role::Player, Millis(1))
        .await
        .unwrap();
    id
}

/// One answer of `p` on `img`; what it cost, less the one ledger row written
/// per score change (an answer that earns points writes one more row than
/// one that does not; that is not the image's doing).
pub(crate) async fn answer(
    store: &SqliteStore,
    rules: &GameRules,
    p: PlayerId,
    img: ImageId,
    emotion: Emotion,
) -> AnswerCostTotals {
    let round = offer(store, p, img).await;
    let before = store.answer_costs();
    let outcome = answer_offered(store, rules, round, p, img, emotion).await;
    let after = store.answer_costs();
    let ledger = outcome.changes.len() as u64;
    AnswerCostTotals {
        answers: after.answers - before.answers,
        statements: after.statements - before.statements - ledger,
        rows_read: after.rows_read - before.rows_read,
        rows_written: after.rows_written - before.rows_written - ledger,
        vm_steps: after.vm_steps - before.vm_steps,
    }
}

/// Offers `p` a round on `img` now (answered later with [`answer_offered`]).
async fn offer(store: &SqliteStore, p: PlayerId, img: ImageId) -> RoundId {
    let round = RoundId(Uuid::new_v4());
    store
        .record_offer(OfferRecord {
            round,
            player: p,
            image: img,
            shown: Some(Emotion::Happy),
            offered: Millis(1_000),
            deadline: Millis(16_000),
        })
        .await
        .unwrap();
    round
}

async fn answer_offered(
    store: &SqliteStore,
    rules: &GameRules,
    round: RoundId,
    p: PlayerId,
    img: ImageId,
    emotion: Emotion,
) -> emofy_game::plan::AnswerOutcome {
    store
        .record_answer(
            AnswerRecord {
                round,
                player: p,
                image: img,
                emotion,
                shown: Some(Emotion::Happy),
                decoy: false,
                model_guess: Some(Emotion::Happy),
                response_ms: 2_000,
                time_limit_ms: 15_000,
                at: Millis(2_000),
            },
            rules,
        )
        .await
        .unwrap()
}

/// VM instructions are counted in ticks of a few; two answers that walk the
/// same rows differ by at most this much.
const VM_SLACK: u64 = 32;

/// What reading one more counted label may cost, at most.
const PER_LABEL_VM_STEPS: u64 = 64;

#[actix_rt::test]
async fn an_answer_costs_the_same_whatever_the_image_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    // Confidence 1.0 is never reached: the image stays open until `max_labels`.
    let max_labels = 12;
    let rules = GameRules {
        consensus: ConsensusRule::new(3, 1000, max_labels).unwrap(),
        scoring: ScoringRules::default(),
        spam: SpamRules::default(),
        trust: crate::answer_cost::everyone_trusted(),
    };
    let img = image(&store, 1).await;
    let mut costs = Vec::new();
    for i in 0..max_labels - 1 {
        let p = player(&store).await;
        let emotion = if i % 2 == 0 {
            Emotion::Sad
        } else {
            Emotion::Angry
        };
        costs.push(answer(&store, &rules, p, img, emotion).await);
    }
    let first = costs[0];
    assert_eq!(first.answers, 1);
    for (i, c) in costs.iter().enumerate() {
        assert_eq!(
            c.statements, first.statements,
            "answer {i}: the same statements whatever the image holds"
        );
        assert_eq!(
            c.rows_read,
            first.rows_read + i as u64,
            "answer {i}: one more row read per counted label"
        );
    }
    // The engine's work grows with the counted labels by a few dozen
    // instructions each (an index step, the row, the join to its reliability).
    for (i, c) in costs.iter().enumerate() {
        let bound = first.vm_steps + i as u64 * PER_LABEL_VM_STEPS + VM_SLACK;
        assert!(
            c.vm_steps <= bound,
            "answer {i}: {} VM steps, more than {bound}",
            c.vm_steps
        );
    }
    assert!(costs[costs.len() - 1].vm_steps > first.vm_steps + VM_SLACK);

    // An image flooded by labels of players who do not count: not one of them is read.
    let flooded = image(&store, 2).await;
    let moderator = player(&store).await;
    for _ in 0..3 * max_labels {
        let p = player(&store).await;
        store
            .moderate_player(p, PlayerAction::Ban, moderator, Millis(10))
            .await
            .unwrap();
        answer(&store, &rules, p, flooded, Emotion::Disgust).await;
    }
    let honest = player(&store).await;
    let c = answer(&store, &rules, honest, flooded, Emotion::Sad).await;
    assert_eq!(c.statements, first.statements);
    assert_eq!(
        c.rows_read, first.rows_read,
        "banned players' labels are not read"
    );
    assert!(
        c.vm_steps.abs_diff(first.vm_steps) <= VM_SLACK,
        "banned players' labels are not walked: {} VM steps against {} on a fresh image",
        c.vm_steps,
        first.vm_steps
    );

    // Players banned after they answered: their labels stop counting at once
    // and are not walked either.
    let later = image(&store, 3).await;
    for _ in 0..max_labels - 1 {
        let p = player(&store).await;
        answer(&store, &rules, p, later, Emotion::Disgust).await;
        store
            .moderate_player(p, PlayerAction::Ban, moderator, Millis(20))
            .await
            .unwrap();
    }
    let honest = player(&store).await;
    let c = answer(&store, &rules, honest, later, Emotion::Sad).await;
    assert_eq!(c.rows_read, first.rows_read);
    assert!(
        c.vm_steps.abs_diff(first.vm_steps) <= VM_SLACK,
        "labels of players banned later are not walked: {} VM steps against {}",
        c.vm_steps,
        first.vm_steps
    );
}

#[actix_rt::test]
async fn an_image_holding_labels_beyond_the_cap_costs_no_more_than_one_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let max_labels = 5;
    let rules = GameRules {
        consensus: ConsensusRule::new(3, 1000, max_labels).unwrap(),
        scoring: ScoringRules::default(),
        spam: SpamRules::default(),
        trust: crate::answer_cost::everyone_trusted(),
    };
    let cap = rules.labels_read_cap() as usize;
    // Rounds offered while the image was open and answered after it closed:
    // every one of them is a counted label (many players answering at once).
    let fill = |img: ImageId, labels: usize| {
        let store = store.clone();
        async move {
            let mut offered = Vec::new();
            for _ in 0..labels {
                let p = player(&store).await;
                offered.push((p, offer(&store, p, img).await));
            }
            for (i, (p, round)) in offered.into_iter().enumerate() {
                let e = if i % 2 == 0 {
                    Emotion::Sad
                } else {
                    Emotion::Angry
                };
                answer_offered(&store, &rules, round, p, img, e).await;
            }
        }
    };
    let at_cap = image(&store, 10).await;
    fill(at_cap, cap).await;
    let flooded = image(&store, 11).await;
    fill(flooded, 20 * cap).await;
    let p = player(&store).await;
    let c_cap = answer(&store, &rules, p, at_cap, Emotion::Sad).await;
    let p = player(&store).await;
    let c_flood = answer(&store, &rules, p, flooded, Emotion::Sad).await;
    assert_eq!(c_flood.statements, c_cap.statements);
    assert_eq!(
        c_flood.rows_read, c_cap.rows_read,
        "at most the cap of labels is read"
    );
    assert!(
        c_flood.vm_steps.abs_diff(c_cap.vm_steps) <= VM_SLACK,
        "an image with {} labels walks no more than one with {cap}: {} VM steps against {}",
        20 * cap,
        c_flood.vm_steps,
        c_cap.vm_steps
    );
}

/// Trust rules under which every label counts in full from the first and no
/// image's own label is used: these tests count what one answer reads and
/// writes, whoever answers (the newcomer rules have tests of their own).
pub fn everyone_trusted() -> emofy_game::TrustRules {
    emofy_game::TrustRules {
        newcomer_weight: 1.0,
        min_established: 0,
        known_labels: false,
        ..emofy_game::TrustRules::default()
    }
}
