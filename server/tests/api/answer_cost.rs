//! What one answer costs the embedded store, counted (not timed): the same
//! number of statements whatever the image already holds, rows read that grow
//! with the counted labels only up to the cap, and labels of players who do
//! not count (banned, flagged) never read at all, however many an image
//! collected.

use emofy_game::{
    ConsensusRule, Emotion, ImageId, Millis, PlayerId, Role, RoundId, ScoringRules, SpamRules,
};
use emofy_server::store::sqlite::{AnswerCostTotals, SqliteOptions, SqliteStore};
use emofy_server::store::{
    AnswerRecord, GameRules, ImageSource, ImageStore, NewImage, OfferRecord, PlayerAction,
    PlayerStore, ReviewStore, RoundStore,
};
use uuid::Uuid;

fn png(seed: u32) -> Vec<u8> {
    let mut img = image::GrayImage::new(4, 4);
    img.put_pixel(0, 0, image::Luma([(seed % 251) as u8]));
    img.put_pixel(1, 0, image::Luma([(seed / 251) as u8]));
    let mut out = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn image(store: &SqliteStore, seed: u32) -> ImageId {
    store
        .insert_image(
            NewImage {
                bytes: png(seed),
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

async fn player(store: &SqliteStore) -> PlayerId {
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
async fn answer(
    store: &SqliteStore,
    rules: &GameRules,
    p: PlayerId,
    img: ImageId,
    emotion: Emotion,
) -> AnswerCostTotals {
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
    let before = store.answer_costs();
    let outcome = store
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
        .unwrap();
    let after = store.answer_costs();
    let ledger = outcome.changes.len() as u64;
    AnswerCostTotals {
        answers: after.answers - before.answers,
        statements: after.statements - before.statements - ledger,
        rows_read: after.rows_read - before.rows_read,
        rows_written: after.rows_written - before.rows_written - ledger,
    }
}

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
}
