//! The storage-trait contract. One suite, run against every backend: today the
//! embedded SQLite store; production adapters add themselves here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use emofy_game::{
    ConsensusRule, Emotion, ImageStatus, Millis, PlayerId, Role, RoundId, ScoringRules, Transition,
};
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use emofy_server::store::{
    AccountRecord, AnswerRecord, GameRules, ImageSource, ImageStore, NewImage, OfferRecord,
    PlayerStore, RoundStore, StoreError,
};
use uuid::Uuid;

struct Backend {
    players: Arc<dyn PlayerStore>,
    images: Arc<dyn ImageStore>,
    rounds: Arc<dyn RoundStore>,
}

fn rules() -> GameRules {
    GameRules {
        consensus: ConsensusRule::new(3, 700, 4).unwrap(),
        scoring: ScoringRules::default(),
    }
}

fn png(seed: u8) -> Vec<u8> {
    let mut img = image::GrayImage::new(4, 4);
    img.put_pixel(0, 0, image::Luma([seed]));
    let mut out = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn new_image(seed: u8, uploader: Option<PlayerId>) -> NewImage {
    NewImage {
        bytes: png(seed),
        mime: "image/png".into(),
        width: 4,
        height: 4,
        source: ImageSource::Demo,
        source_label: Some(Emotion::Happy),
        uploader,
    }
}

async fn offer(
    b: &Backend,
    player: PlayerId,
    image: emofy_game::ImageId,
    shown: Option<Emotion>,
) -> RoundId {
    let round = RoundId(Uuid::new_v4());
    b.rounds
        .record_offer(OfferRecord {
            round,
            player,
            image,
            shown,
            offered: Millis(1_000),
            deadline: Millis(16_000),
        })
        .await
        .unwrap();
    round
}

fn answer(
    round: RoundId,
    player: PlayerId,
    image: emofy_game::ImageId,
    emotion: Emotion,
    shown: Option<Emotion>,
) -> AnswerRecord {
    AnswerRecord {
        round,
        player,
        image,
        emotion,
        shown,
        response_ms: 1_000,
        time_limit_ms: 15_000,
        at: Millis(2_000),
    }
}

async fn contract(b: Backend) {
    let rules = rules();
    // Players.
    let ids: Vec<PlayerId> = (0..4).map(|_| PlayerId(Uuid::new_v4())).collect();
    for (i, id) in ids.iter().enumerate() {
        let p = b
            .players
            .create_player(*id, &format!("P{i}"), Role::Player, Millis(5))
            .await
            .unwrap();
        assert_eq!(p.tally.score, 0);
    }
    assert!(matches!(
        b.players
            .create_player(ids[0], "dup", Role::Player, Millis(5))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(b.players.player(ids[1]).await.unwrap().unwrap().name, "P1");
    assert!(
        b.players
            .player(PlayerId(Uuid::new_v4()))
            .await
            .unwrap()
            .is_none()
    );

    // Accounts.
    let acct = AccountRecord {
        username: "mod".into(),
        player: PlayerId(Uuid::new_v4()),
        password_hash: "$argon2id$x".into(),
        role: Role::Moderator,
    };
    b.players
        .create_account(acct.clone(), "Mod", Millis(1))
        .await
        .unwrap();
    assert_eq!(b.players.account("mod").await.unwrap(), Some(acct.clone()));
    assert!(
        b.players
            .create_account(acct, "Mod", Millis(1))
            .await
            .is_err()
    );
    assert_eq!(b.players.account("nobody").await.unwrap(), None);
    // Operator-looking input is just a string that matches nothing.
    assert_eq!(b.players.account("{\"$gt\": \"\"}").await.unwrap(), None);

    // Images are content-addressed and deduplicated.
    let (img, new) = b
        .images
        .insert_image(new_image(1, None), Millis(10))
        .await
        .unwrap();
    assert!(new);
    let (again, new) = b
        .images
        .insert_image(new_image(1, None), Millis(11))
        .await
        .unwrap();
    assert_eq!((again, new), (img, false));
    let (other, _) = b
        .images
        .insert_image(new_image(2, Some(ids[3])), Millis(12))
        .await
        .unwrap();
    assert_ne!(img, other);
    let (bytes, mime) = b.images.image_bytes(img).await.unwrap().unwrap();
    assert_eq!((bytes, mime.as_str()), (png(1), "image/png"));
    let meta = b.images.image_meta(other).await.unwrap().unwrap();
    assert_eq!(meta.uploader, Some(ids[3]));
    assert_eq!(meta.status, ImageStatus::Open);
    assert_eq!(b.images.image_count().await.unwrap(), 2);
    assert_eq!(b.images.pool_entries(Millis(0)).await.unwrap().len(), 2);

    // Offers: one per (player, image).
    let r0 = offer(&b, ids[0], img, Some(Emotion::Sad)).await;
    let dup = b
        .rounds
        .record_offer(OfferRecord {
            round: RoundId(Uuid::new_v4()),
            player: ids[0],
            image: img,
            shown: None,
            offered: Millis(1),
            deadline: Millis(2),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    assert_eq!(b.rounds.seen_images(ids[0]).await.unwrap(), vec![img]);

    // Answers: first opinion, agreement, retirement with settlement.
    let o = b
        .rounds
        .record_answer(
            answer(r0, ids[0], img, Emotion::Happy, Some(Emotion::Sad)),
            &rules,
        )
        .await
        .unwrap();
    assert!(o.pending());
    assert_eq!(o.votes.total(), 1);
    // The same round cannot be answered twice (a retry is refused, not double-counted).
    let again = b
        .rounds
        .record_answer(
            answer(r0, ids[0], img, Emotion::Happy, Some(Emotion::Sad)),
            &rules,
        )
        .await;
    assert!(matches!(again, Err(StoreError::RoundClosed(_))));
    // A round that does not belong to the player is refused.
    let r1 = offer(&b, ids[1], img, None).await;
    assert!(matches!(
        b.rounds
            .record_answer(answer(r1, ids[2], img, Emotion::Happy, None), &rules)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let o1 = b
        .rounds
        .record_answer(answer(r1, ids[1], img, Emotion::Happy, None), &rules)
        .await
        .unwrap();
    assert!(o1.award.points > 0);
    assert_eq!(o1.changes.len(), 1);
    let r2 = offer(&b, ids[2], img, Some(Emotion::Happy)).await;
    let o2 = b
        .rounds
        .record_answer(
            answer(r2, ids[2], img, Emotion::Happy, Some(Emotion::Happy)),
            &rules,
        )
        .await
        .unwrap();
    assert_eq!(
        o2.transition,
        Transition::Retired {
            label: Emotion::Happy
        }
    );
    assert_eq!(
        o2.status,
        ImageStatus::Retired {
            label: Emotion::Happy
        }
    );
    // Settlement: everyone who said happy gets the consensus bonus; P0 also corrected the shown "sad".
    let settle: Vec<_> = o2
        .changes
        .iter()
        .filter(|c| c.key.starts_with("settle:"))
        .collect();
    assert_eq!(settle.len(), 3);
    let p0 = settle.iter().find(|c| c.player == ids[0]).unwrap();
    assert_eq!(p0.delta, 5 + 15);
    assert_eq!(
        b.players.player(ids[0]).await.unwrap().unwrap().tally.score,
        20
    );
    let p1 = b.players.player(ids[1]).await.unwrap().unwrap();
    assert_eq!(p1.tally.score, u64::from(o1.award.points) + 5);
    assert_eq!(p1.tally.answers, 1);
    assert_eq!(p1.tally.streak, 1);
    assert_eq!(o2.tally.score, u64::from(o2.award.points) + 5);
    let scored = b.players.scored_players().await.unwrap();
    assert_eq!(scored.len(), 3);

    // Dispute at max labels on the other image.
    for (i, e) in [
        (0usize, Emotion::Angry),
        (1, Emotion::Sad),
        (2, Emotion::Fear),
    ] {
        let r = offer(&b, ids[i], other, None).await;
        let o = b
            .rounds
            .record_answer(answer(r, ids[i], other, e, None), &rules)
            .await
            .unwrap();
        assert_eq!(o.status, ImageStatus::Open);
    }
    let r = offer(&b, ids[3], other, None).await;
    let o = b
        .rounds
        .record_answer(answer(r, ids[3], other, Emotion::Happy, None), &rules)
        .await
        .unwrap();
    assert_eq!(o.transition, Transition::Disputed);

    // Closing rounds without an answer.
    let (third, _) = b
        .images
        .insert_image(new_image(3, None), Millis(20))
        .await
        .unwrap();
    let timed = offer(&b, ids[0], third, None).await;
    b.rounds
        .close_round(timed, "timed_out", Millis(30))
        .await
        .unwrap();
    assert!(matches!(
        b.rounds
            .record_answer(answer(timed, ids[0], third, Emotion::Happy, None), &rules)
            .await,
        Err(StoreError::RoundClosed(_))
    ));

    // Predictions are cached per image and model version.
    assert_eq!(b.images.unpredicted_images("m1").await.unwrap().len(), 3);
    let p = emofy_inference::Prediction::new("m1", [0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]).unwrap();
    b.images
        .save_predictions(vec![(img, p.clone())])
        .await
        .unwrap();
    b.images
        .save_predictions(vec![(img, p.clone())])
        .await
        .unwrap();
    assert_eq!(b.images.predictions("m1").await.unwrap(), vec![(img, p)]);
    assert!(b.images.predictions("m2").await.unwrap().is_empty());
    let mut missing = b.images.unpredicted_images("m1").await.unwrap();
    missing.sort();
    let mut expected = vec![other, third];
    expected.sort();
    assert_eq!(missing, expected);

    b.rounds.flush().await.unwrap();
    let s = b.images.stats().await.unwrap();
    assert_eq!((s.images, s.open, s.retired, s.disputed), (3, 1, 1, 1));
    assert_eq!(s.labels, 7);
    assert_eq!(s.players, 5);
}

#[actix_rt::test]
async fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    contract(Backend {
        players: store.clone(),
        images: store.clone(),
        rounds: store,
    })
    .await;
}

#[actix_rt::test]
async fn sqlite_group_commit_answers_many_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            dir.path(),
            SqliteOptions {
                queue: 16,
                max_batch: 64,
                readers: 1,
                ..SqliteOptions::default()
            },
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let s = store.clone();
        tasks.push(actix_rt::spawn(async move {
            s.create_player(
                PlayerId(Uuid::new_v4()),
                &format!("p{i}"),
                Role::Player,
                Millis(1),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.stats().await.unwrap().players, 200);
}
