//! The storage-trait contract. One suite, run against every backend: today the
//! embedded SQLite store; production adapters add themselves here.

use std::sync::Arc;

use crate::common::mongo_uri;
use crate::fixtures::grey_png;

use emofy_game::{
    ConsensusRule, Emotion, ImageStatus, Millis, PlayerId, Role, RoundId, ScoringRules, SpamRules,
    Transition,
};
use emofy_server::store::mongo::{AnswerWrites, MongoOptions};
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use emofy_server::store::{
    AccountRecord, AnswerRecord, Consent, FaceRegion, GameRules, ImageAction, ImageSource,
    ImageStore, LabelCursor, LabelRecord, NewImage, NewUpload, OfferRecord, PlayerAction,
    PlayerStore, ReviewStore, RoundStore, StoreError, UploadCursor, UploadStore,
};
use uuid::Uuid;

struct Backend {
    players: Arc<dyn PlayerStore>,
    images: Arc<dyn ImageStore>,
    rounds: Arc<dyn RoundStore>,
    review: Arc<dyn ReviewStore>,
}

fn rules() -> GameRules {
    GameRules {
        consensus: ConsensusRule::new(3, 700, 4).unwrap(),
        scoring: ScoringRules::default(),
        spam: SpamRules::default(),
        // Everyone trusted from the first label and no known labels: the
        // contract is about what is written; `known_labels_reach_the_plan`
        // and the game tests hold the trust rules.
        trust: emofy_game::TrustRules {
            newcomer_weight: 1.0,
            min_established: 0,
            known_labels: false,
            ..emofy_game::TrustRules::default()
        },
    }
}

fn png(seed: u8) -> Vec<u8> {
    grey_png(4, seed.into())
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
        decoy: false,
        model_guess: None,
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
        failures: Default::default(),
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
    // Failed sign-ins: one turn per state (compare-and-set), cleared on success.
    use emofy_game::login::LoginFailures;
    let none = LoginFailures::default();
    let one = LoginFailures {
        count: 1,
        last: Millis(500),
    };
    assert!(
        b.players
            .claim_login_attempt("mod", none, one)
            .await
            .unwrap()
    );
    assert!(
        !b.players
            .claim_login_attempt("mod", none, one)
            .await
            .unwrap()
    );
    assert_eq!(
        b.players.account("mod").await.unwrap().unwrap().failures,
        one
    );
    let two = LoginFailures {
        count: 2,
        last: Millis(600),
    };
    assert!(
        b.players
            .claim_login_attempt("mod", one, two)
            .await
            .unwrap()
    );
    assert!(
        !b.players
            .claim_login_attempt("nobody", none, one)
            .await
            .unwrap()
    );
    b.players.clear_login_failures("mod").await.unwrap();
    assert_eq!(
        b.players.account("mod").await.unwrap().unwrap().failures,
        none
    );
    // A guest gets an account: the same player; once per player and per name.
    let guest = PlayerId(Uuid::new_v4());
    b.players
        .create_player(guest, "Gus", Role::Player, Millis(2))
        .await
        .unwrap();
    assert_eq!(b.players.username_of(guest).await.unwrap(), None);
    b.players
        .register_account(guest, "gus", "$argon2id$y", Millis(3))
        .await
        .unwrap();
    let a = b.players.account("gus").await.unwrap().unwrap();
    assert_eq!((a.player, a.role, a.failures), (guest, Role::Player, none));
    assert_eq!(
        b.players.username_of(guest).await.unwrap().as_deref(),
        Some("gus")
    );
    b.players
        .set_password("gus", "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(
        b.players
            .account("gus")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    assert!(matches!(
        b.players.set_password("nobody3", "$argon2id$new").await,
        Err(emofy_server::store::StoreError::NotFound(_))
    ));
    assert!(matches!(
        b.players
            .register_account(guest, "gus2", "$argon2id$y", Millis(4))
            .await,
        Err(emofy_server::store::StoreError::Conflict(_))
    ));
    let other = PlayerId(Uuid::new_v4());
    b.players
        .create_player(other, "Oz", Role::Player, Millis(2))
        .await
        .unwrap();
    assert!(matches!(
        b.players
            .register_account(other, "gus", "$argon2id$z", Millis(4))
            .await,
        Err(emofy_server::store::StoreError::Conflict(_))
    ));
    assert!(matches!(
        b.players
            .register_account(
                PlayerId(Uuid::new_v4()),
                "nobody2",
                "$argon2id$z",
                Millis(4)
            )
            .await,
        Err(emofy_server::store::StoreError::NotFound(_))
    ));
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
    // The posterior is stored with the image: the pool sees its leading class.
    let entries = b.images.pool_entries(Millis(0)).await.unwrap();
    let e = entries.iter().find(|e| e.image == img).unwrap();
    assert_eq!(e.leading.map(|l| l.0), Some(Emotion::Happy));
    assert!(e.leading.unwrap().1 >= 700);

    // Review: the disputed image is a candidate; a moderator overrides it
    // (it becomes gold and its labellers settle), bans a player, and every
    // action is in the audit log.
    let moderator = ids[3];
    let candidates = b.review.review_candidates(10).await.unwrap();
    assert!(
        candidates
            .iter()
            .any(|c| c.meta.id == other && c.posterior.is_some())
    );
    assert!(
        !candidates.iter().any(|c| c.meta.id == img),
        "retired images are not candidates"
    );
    let done = b
        .review
        .moderate_image(
            other,
            ImageAction::Override {
                label: Emotion::Sad,
            },
            moderator,
            Millis(40),
            &rules,
        )
        .await
        .unwrap();
    assert_eq!(
        done.status,
        ImageStatus::Retired {
            label: Emotion::Sad
        }
    );
    assert_eq!(done.gold, Some(Emotion::Sad));
    // P1 said sad: the consensus bonus (no suggestion was shown, so no correction bonus).
    assert_eq!(done.changes.len(), 1);
    assert_eq!((done.changes[0].player, done.changes[0].delta), (ids[1], 5));
    assert_eq!(b.images.gold_images().await.unwrap(), vec![other]);
    // A gold round: the answer is judged against the verified label.
    let (fourth, _) = b
        .images
        .insert_image(new_image(4, None), Millis(41))
        .await
        .unwrap();
    let _ = fourth;
    let p4 = PlayerId(Uuid::new_v4());
    b.players
        .create_player(p4, "Gold", Role::Player, Millis(42))
        .await
        .unwrap();
    let r = offer(&b, p4, other, None).await;
    let g = b
        .rounds
        .record_answer(answer(r, p4, other, Emotion::Sad, None), &rules)
        .await
        .unwrap();
    assert_eq!(g.gold, Some(Emotion::Sad));
    assert_eq!(g.award.agreement, emofy_game::Agreement::Agreed);
    assert_eq!(
        g.status,
        ImageStatus::Retired {
            label: Emotion::Sad
        }
    );
    let labels = b.rounds.image_labels(other, 100).await.unwrap();
    assert!(labels.iter().any(|l| l.player == p4 && l.gold && !l.decoy));
    let banned = b
        .review
        .moderate_player(ids[2], PlayerAction::Ban, moderator, Millis(43))
        .await
        .unwrap();
    assert!(!banned.counts());
    // The replicas find the ban from when it was made.
    assert!(
        b.review
            .banned_since(Millis(43))
            .await
            .unwrap()
            .contains(&ids[2])
    );
    assert!(
        !b.review
            .banned_since(Millis(44))
            .await
            .unwrap()
            .contains(&ids[2])
    );
    let of = b
        .review
        .reliabilities_of(&[ids[2], PlayerId(Uuid::new_v4())])
        .await
        .unwrap();
    assert_eq!(of.len(), 1);
    assert_eq!(of[0].0, ids[2]);
    assert_eq!(of[0].1.moderation, emofy_game::Moderation::Banned);
    let flagged = b.review.reliabilities(true, 10).await.unwrap();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].player, ids[2]);
    let everyone = b.review.reliabilities(false, 10).await.unwrap();
    assert_eq!(
        everyone.len(),
        5,
        "every player who answered has a reliability"
    );
    assert!(matches!(
        b.review
            .moderate_player(
                PlayerId(Uuid::new_v4()),
                PlayerAction::Ban,
                moderator,
                Millis(44)
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    let log = b.review.audit_log(10).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["ban", "override"]
    );
    assert_eq!(log[1].target, other.to_hex());
    assert_eq!(log[1].moderator, moderator);
    // Flagging takes an image out of play, and out of the gold set.
    b.review
        .moderate_image(
            other,
            ImageAction::Flag {
                reason: "not_a_face".into(),
            },
            moderator,
            Millis(45),
            &rules,
        )
        .await
        .unwrap();
    assert!(b.images.gold_images().await.unwrap().is_empty());
    assert!(matches!(
        b.review
            .moderate_image(other, ImageAction::Accept, moderator, Millis(46), &rules)
            .await,
        Err(StoreError::Conflict(_))
    ));

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
    let mut expected = vec![third, fourth];
    expected.sort();
    assert_eq!(missing, expected);

    b.rounds.flush().await.unwrap();
    let s = b.images.stats().await.unwrap();
    assert_eq!(
        (s.images, s.open, s.retired, s.disputed, s.removed),
        (4, 2, 1, 0, 1)
    );
    assert_eq!(s.labels, 8);
    assert_eq!(s.players, 8);

    // Dataset statistics for the moderators' charts.
    let d = b.review.dataset_stats(Millis(0)).await.unwrap();
    assert_eq!(d.labels_per_day, vec![("1970-01-01".to_owned(), 8)]);
    let mut want = [0u64; 7];
    want[Emotion::Happy.index()] = 1;
    assert_eq!(d.retired_per_class, want);
    assert!(
        b.review
            .dataset_stats(Millis(86_400_000))
            .await
            .unwrap()
            .labels_per_day
            .is_empty()
    );

    // The periodic truth pass: a snapshot of the labels, EM, and the matrices written back.
    let snap = b.review.truth_snapshot(1_000).await.unwrap();
    assert_eq!(snap.labels.len(), 8);
    assert_eq!(snap.reliabilities.len(), 5);
    assert!(
        snap.gold.is_empty(),
        "the flagged image lost its gold label"
    );
    assert!(b.review.truth_snapshot(3).await.unwrap().labels.len() == 3);
    let before = b.review.reliabilities(false, 10).await.unwrap();
    let pass = emofy_server::store::truth::em_pass(&snap, &emofy_game::TrustRules::default(), 20);
    let banned_in_pass = pass.matrices.iter().any(|(p, _)| *p == ids[2]);
    assert!(!banned_in_pass, "a banned player's labels do not count");
    b.review
        .apply_truth_pass(pass.clone(), Millis(50))
        .await
        .unwrap();
    let after = b.review.reliabilities(false, 10).await.unwrap();
    for (p, m) in &pass.matrices {
        let r = &after.iter().find(|r| r.player == *p).unwrap().reliability;
        for t in Emotion::ALL {
            for (a, b) in r.matrix.row(t).iter().zip(m.row(t)) {
                assert!((a - b).abs() < 1e-12, "stored matrix differs");
            }
        }
        let old = &before.iter().find(|r| r.player == *p).unwrap().reliability;
        assert_eq!(r.answers, old.answers, "counters are kept");
    }

    // Label history: a player's newest first, paged without gaps or repeats; an image's all.
    let mut seen = 0;
    for p in &ids {
        let all = b.rounds.player_labels(*p, None, 100).await.unwrap();
        let key = |l: &LabelRecord| (l.at, l.round.to_string());
        assert!(all.windows(2).all(|w| key(&w[0]) >= key(&w[1])));
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = b.rounds.player_labels(*p, cursor, 1).await.unwrap();
            let Some(l) = page.first() else { break };
            cursor = Some(LabelCursor {
                at: l.at,
                round: l.round,
            });
            paged.push(l.clone());
        }
        assert_eq!(paged, all);
        for l in &all {
            assert_eq!(l.player, *p);
            assert!(
                b.rounds
                    .image_labels(l.image, 100)
                    .await
                    .unwrap()
                    .contains(l)
            );
        }
        seen += all.len();
    }
    assert!(seen > 0);
    bans_reach_earlier_labels(&b).await;
    batched_reads_match_single_reads(&b).await;
    known_labels_reach_the_plan(&b).await;
    the_pass_rejudges_closed_images_that_are_still_as_read(&b).await;
    roles_are_set_and_audited(&b).await;
}

/// An admin's role change is stored, returns the role before, and is
/// audited with both; an unknown player is `NotFound` and changes nothing.
async fn roles_are_set_and_audited(b: &Backend) {
    let (admin, mo) = (PlayerId(Uuid::new_v4()), PlayerId(Uuid::new_v4()));
    b.players
        .create_player(admin, "Ada", Role::Admin, Millis(1))
        .await
        .unwrap();
    b.players
        .create_player(mo, "Mo", Role::Moderator, Millis(1))
        .await
        .unwrap();
    let before = b
        .review
        .set_role(mo, Role::Player, admin, Millis(50))
        .await
        .unwrap();
    assert_eq!(before, Role::Moderator);
    assert_eq!(
        b.players.player(mo).await.unwrap().unwrap().role,
        Role::Player
    );
    let entry = b.review.audit_log(1).await.unwrap().remove(0);
    assert_eq!(
        (entry.moderator, entry.action.as_str(), entry.target.clone()),
        (admin, "set_role", mo.to_string())
    );
    assert_eq!(
        entry.detail,
        serde_json::json!({"from": "moderator", "to": "player"})
    );
    assert_eq!(entry.at, Millis(50));
    let nobody = PlayerId(Uuid::new_v4());
    assert!(matches!(
        b.review
            .set_role(nobody, Role::Admin, admin, Millis(60))
            .await,
        Err(emofy_server::store::StoreError::NotFound(_))
    ));
    assert_eq!(b.review.audit_log(1).await.unwrap()[0].at, Millis(50));
}

/// The truth pass's snapshot names the closed images with their label
/// counts, and its re-judgement of one is written only while the image is
/// still as the snapshot read it (a retired image the fit moved off goes
/// to the moderators as disputed).
async fn the_pass_rejudges_closed_images_that_are_still_as_read(b: &Backend) {
    // Labels retire an image as soon as one class leads.
    let rules = GameRules {
        consensus: ConsensusRule::new(1, 501, 9).unwrap(),
        ..self::rules()
    };
    let (img, _) = b
        .images
        .insert_image(new_image(241, None), Millis(1))
        .await
        .unwrap();
    // Happy labels until it retires (the crowd prior the earlier passes
    // learned here leans to happy).
    let retired = ImageStatus::Retired {
        label: Emotion::Happy,
    };
    let mut n = 0u32;
    for name in [
        "Ida", "Jon", "Kay", "Lou", "Max", "Ned", "Ola", "Pia", "Quin",
    ] {
        let p = PlayerId(Uuid::new_v4());
        b.players
            .create_player(p, name, Role::Player, Millis(1))
            .await
            .unwrap();
        let r = offer(b, p, img, None).await;
        n += 1;
        let o = b
            .rounds
            .record_answer(answer(r, p, img, Emotion::Happy, None), &rules)
            .await
            .unwrap();
        if o.status == retired {
            break;
        }
    }
    b.rounds.flush().await.unwrap();
    assert_eq!(
        b.images.image_meta(img).await.unwrap().unwrap().status,
        retired
    );
    let snap = b.review.truth_snapshot(100_000).await.unwrap();
    assert!(
        snap.closed.contains(&(img, retired, n)),
        "{:?}",
        snap.closed
    );
    let mut moved = [0.02; 7];
    moved[Emotion::Sad.index()] = 0.88;
    let rejudge = |was| emofy_server::store::TruthPass {
        rejudged: vec![emofy_server::store::Rejudge {
            image: img,
            was,
            now: ImageStatus::Disputed,
            posterior: moved,
        }],
        crowd: snap.crowd.clone().unwrap_or_default(),
        ..Default::default()
    };
    // Stale: the image is not what this pass read.
    let stale = ImageStatus::Retired {
        label: Emotion::Sad,
    };
    b.review
        .apply_truth_pass(rejudge(stale), Millis(70))
        .await
        .unwrap();
    let meta = b.images.image_meta(img).await.unwrap().unwrap();
    assert_eq!(meta.status, retired, "a stale re-judgement is not written");
    b.review
        .apply_truth_pass(rejudge(retired), Millis(71))
        .await
        .unwrap();
    let meta = b.images.image_meta(img).await.unwrap().unwrap();
    assert_eq!(meta.status, ImageStatus::Disputed);
    let stored = meta.posterior.unwrap();
    assert!((stored[Emotion::Sad.index()] - 0.88).abs() < 1e-6);
    let again = b.review.truth_snapshot(100_000).await.unwrap();
    assert!(again.closed.contains(&(img, ImageStatus::Disputed, n)));
}

/// The label an image came with reaches the answer plan with its source
/// (a demo face's drawn emotion, a dataset's label; an upload has none),
/// and the truth pass's crowd prior is kept and read back.
async fn known_labels_reach_the_plan(b: &Backend) {
    let rules = GameRules {
        trust: emofy_game::TrustRules::default(),
        ..self::rules()
    };
    let player = PlayerId(Uuid::new_v4());
    b.players
        .create_player(player, "Kim", Role::Player, Millis(1))
        .await
        .unwrap();
    for (seed, source, label, known) in [
        (
            231u8,
            ImageSource::Demo,
            Some(Emotion::Fear),
            Some(emofy_game::KnownSource::Demo),
        ),
        (
            232,
            ImageSource::Import,
            Some(Emotion::Sad),
            Some(emofy_game::KnownSource::Dataset),
        ),
        (233, ImageSource::Upload, None, None),
    ] {
        let (img, new) = b
            .images
            .insert_image(
                NewImage {
                    source,
                    source_label: label,
                    ..new_image(seed, None)
                },
                Millis(20),
            )
            .await
            .unwrap();
        assert!(new);
        let r = offer(b, player, img, None).await;
        let o = b
            .rounds
            .record_answer(
                answer(r, player, img, label.unwrap_or(Emotion::Happy), None),
                &rules,
            )
            .await
            .unwrap();
        let want = known
            .zip(label)
            .map(|(source, label)| emofy_game::KnownLabel { label, source });
        assert_eq!(o.known, want, "{source:?}");
        // With a known label the first answer has a vote to agree with.
        assert_eq!(o.pending(), want.is_none(), "{source:?}");
        if want.is_some() {
            assert_eq!(o.award.agreement, emofy_game::Agreement::Agreed);
            let top = emofy_game::truth::map(&o.posterior).0;
            assert_eq!(Some(top), label, "the known label leads the posterior");
        }
    }
    // The truth pass keeps the crowd prior; the next snapshot reads it back,
    // and it never shows as a player.
    let snap = b.review.truth_snapshot(10_000).await.unwrap();
    assert!(snap.known.len() >= 2);
    let pass = emofy_server::store::truth::em_pass(&snap, &rules.trust, 20);
    b.review
        .apply_truth_pass(pass.clone(), Millis(60))
        .await
        .unwrap();
    let again = b.review.truth_snapshot(10_000).await.unwrap();
    assert_eq!(
        again.crowd.as_ref().map(|c| c.strength),
        Some(pass.crowd.strength)
    );
    assert!((again.crowd.unwrap().class_prior.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    let listed = b.review.reliabilities(false, 1_000).await.unwrap();
    assert_eq!(listed.len(), again.reliabilities.len().min(1_000));
}

/// The review queue's batched reads give what the one-image reads give.
async fn batched_reads_match_single_reads(b: &Backend) {
    // Confidence 1.0 is never reached: the images stay open candidates.
    let rules = GameRules {
        consensus: ConsensusRule::new(3, 1000, 9).unwrap(),
        ..self::rules()
    };
    for seed in [200u8, 201, 202] {
        let (img, _) = b
            .images
            .insert_image(new_image(seed, None), Millis(20))
            .await
            .unwrap();
        for k in 0..usize::from(seed - 199) {
            let p = PlayerId(Uuid::new_v4());
            b.players
                .create_player(p, &format!("B{seed}-{k}"), Role::Player, Millis(20))
                .await
                .unwrap();
            let round = offer(b, p, img, None).await;
            b.rounds
                .record_answer(answer(round, p, img, Emotion::ALL[k], None), &rules)
                .await
                .unwrap();
        }
    }
    b.rounds.flush().await.unwrap();
    let candidates = b.review.review_candidates(1_000).await.unwrap();
    assert!(candidates.len() >= 3, "{candidates:?}");
    let mut ids = Vec::new();
    for c in &candidates {
        assert_eq!(
            b.images.image_meta(c.meta.id).await.unwrap().as_ref(),
            Some(&c.meta)
        );
        ids.push(c.meta.id);
    }
    let unknown = emofy_game::ImageId::of_bytes(b"not stored");
    ids.push(unknown);
    for per_image in [1, 2, 100] {
        let batch = b.rounds.labels_of_images(&ids, per_image).await.unwrap();
        assert!(!batch.contains_key(&unknown));
        for id in &ids {
            let one = b.rounds.image_labels(*id, per_image).await.unwrap();
            assert_eq!(batch.get(id).cloned().unwrap_or_default(), one, "{id}");
        }
    }
    let metas = b.images.image_metas(&ids).await.unwrap();
    assert!(!metas.contains_key(&unknown));
    assert_eq!(metas.len(), ids.len() - 1);
    for id in &ids {
        assert_eq!(
            metas.get(id),
            b.images.image_meta(*id).await.unwrap().as_ref(),
            "{id}"
        );
    }
    assert!(b.images.image_metas(&[]).await.unwrap().is_empty());
    let p =
        emofy_inference::Prediction::new("m-batch", [0.3, 0.1, 0.1, 0.2, 0.1, 0.1, 0.1]).unwrap();
    b.images
        .save_predictions(vec![(ids[0], p.clone())])
        .await
        .unwrap();
    let batch = b.images.predictions_of(&ids, "m-batch").await.unwrap();
    assert_eq!(batch.len(), 1);
    for id in &ids {
        assert_eq!(
            batch.get(id),
            b.images.prediction(*id, "m-batch").await.unwrap().as_ref()
        );
    }
    assert!(
        b.images
            .predictions_of(&ids, "m1-none")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.rounds.labels_of_images(&[], 5).await.unwrap().is_empty());
}

/// A ban takes effect on labels already given: the next answer on an image
/// is judged without them; a reset brings them back.
async fn bans_reach_earlier_labels(b: &Backend) {
    // Three agreeing labels retire an image; nine close it whatever they say.
    let rules = GameRules {
        consensus: ConsensusRule::new(3, 600, 9).unwrap(),
        ..self::rules()
    };
    let moderator = PlayerId(Uuid::new_v4());
    b.players
        .create_player(moderator, "Mod", Role::Moderator, Millis(1))
        .await
        .unwrap();
    let mut players = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan", "Eve", "Fay", "Gus"] {
        let p = PlayerId(Uuid::new_v4());
        b.players
            .create_player(p, name, Role::Player, Millis(1))
            .await
            .unwrap();
        players.push(p);
    }
    let label = |p: PlayerId, img: emofy_game::ImageId| {
        let b = &*b;
        async move {
            let r = offer(b, p, img, None).await;
            b.rounds
                .record_answer(answer(r, p, img, Emotion::Sad, None), &rules)
                .await
                .unwrap()
                .status
        }
    };
    let retired = ImageStatus::Retired {
        label: Emotion::Sad,
    };
    // The control: three agreeing labels retire an image.
    let (control, _) = b
        .images
        .insert_image(new_image(76, None), Millis(1))
        .await
        .unwrap();
    assert_eq!(label(players[4], control).await, ImageStatus::Open);
    assert_eq!(label(players[5], control).await, ImageStatus::Open);
    assert_eq!(label(players[6], control).await, retired);

    let (img, _) = b
        .images
        .insert_image(new_image(77, None), Millis(1))
        .await
        .unwrap();
    label(players[0], img).await;
    label(players[1], img).await;
    b.review
        .moderate_player(players[0], PlayerAction::Ban, moderator, Millis(3))
        .await
        .unwrap();
    assert_eq!(
        label(players[2], img).await,
        ImageStatus::Open,
        "the banned player's earlier label no longer counts"
    );
    b.review
        .moderate_player(players[0], PlayerAction::Reset, moderator, Millis(4))
        .await
        .unwrap();
    assert_eq!(
        label(players[3], img).await,
        retired,
        "after a reset it counts again"
    );
}

#[actix_rt::test]
async fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    contract(Backend {
        players: store.clone(),
        images: store.clone(),
        rounds: store.clone(),
        review: store,
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

pub fn upload_of(player: PlayerId, seed: u8, show: bool) -> NewUpload {
    NewUpload {
        player,
        crop: NewImage {
            source: ImageSource::Upload,
            source_label: None,
            uploader: Some(player),
            ..new_image(seed, Some(player))
        },
        original: Some(png(seed.wrapping_add(100))),
        face: FaceRegion {
            x: 1,
            y: 2,
            w: 30,
            h: 31,
            score: 9.5,
        },
        consent: Consent {
            show_to_players: show,
            use_for_training: true,
            include_in_exports: false,
            keep_original: true,
            text_version: "v-test".into(),
        },
        fingerprint: format!("fp-{}", seed),
    }
}

/// The upload contract: consent kept as given, private faces out of the pool,
/// keyset pages, deletion that erases bytes and frees the crop for a new upload.
async fn upload_contract(images: Arc<dyn ImageStore>, uploads: Arc<dyn UploadStore>) {
    let alice = PlayerId(Uuid::new_v4());
    let bob = PlayerId(Uuid::new_v4());
    let shown = uploads
        .insert_upload(upload_of(alice, 1, true), Millis(1_000))
        .await
        .unwrap();
    let private = uploads
        .insert_upload(upload_of(alice, 2, false), Millis(2_000))
        .await
        .unwrap();
    assert!(matches!(
        uploads
            .insert_upload(upload_of(bob, 1, true), Millis(3_000))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let rec = uploads.upload(alice, shown).await.unwrap().unwrap();
    assert_eq!(rec.consent, upload_of(alice, 1, true).consent);
    assert_eq!((rec.face.w, rec.face.score), (30, 9.5));
    assert!(rec.has_original);
    assert_eq!(rec.created, Millis(1_000));
    assert!(uploads.upload(bob, shown).await.unwrap().is_none());
    assert_eq!(
        uploads.uploads_since(alice, Millis(1_500)).await.unwrap(),
        1
    );

    let pool: Vec<_> = images.pool_entries(Millis(0)).await.unwrap();
    assert!(
        pool.iter()
            .any(|e| e.image == shown && e.uploader == Some(alice))
    );
    assert!(
        !pool.iter().any(|e| e.image == private),
        "private faces never enter rounds"
    );

    let page = uploads.uploads(alice, None, 1).await.unwrap();
    assert_eq!(
        page.iter().map(|u| u.image).collect::<Vec<_>>(),
        vec![private]
    );
    let cursor = UploadCursor {
        created: page[0].created,
        image: page[0].image,
    };
    let page = uploads.uploads(alice, Some(cursor), 5).await.unwrap();
    assert_eq!(
        page.iter().map(|u| u.image).collect::<Vec<_>>(),
        vec![shown]
    );

    // Training consent: as given, and never for a face whose contributor
    // said no.
    assert!(uploads.training_allowed(shown).await.unwrap());
    let no_training = uploads
        .insert_upload(
            NewUpload {
                consent: Consent {
                    use_for_training: false,
                    ..upload_of(alice, 3, true).consent
                },
                ..upload_of(alice, 3, true)
            },
            Millis(2_500),
        )
        .await
        .unwrap();
    assert!(!uploads.training_allowed(no_training).await.unwrap());
    assert!(
        !uploads
            .training_allowed(emofy_game::ImageId::of_bytes(b"never uploaded"))
            .await
            .unwrap()
    );
    assert!(
        uploads
            .delete_upload(alice, no_training, Millis(2_600))
            .await
            .unwrap()
    );
    assert!(
        !uploads
            .delete_upload(bob, shown, Millis(4_000))
            .await
            .unwrap()
    );
    assert!(
        uploads
            .delete_upload(alice, shown, Millis(4_000))
            .await
            .unwrap()
    );
    assert!(
        !uploads
            .delete_upload(alice, shown, Millis(4_001))
            .await
            .unwrap()
    );
    assert!(images.image_bytes(shown).await.unwrap().is_none());
    assert!(uploads.upload(alice, shown).await.unwrap().is_none());
    assert!(
        !uploads.training_allowed(shown).await.unwrap(),
        "a deleted upload never trains"
    );
    let removed = images.pool_entries(Millis(3_999)).await.unwrap();
    assert!(
        removed
            .iter()
            .any(|e| e.image == shown && e.status == ImageStatus::Removed)
    );
    // Deleted uploads still count towards the hourly limit.
    assert_eq!(uploads.uploads_since(alice, Millis(0)).await.unwrap(), 3);
    // The same face may be contributed again, under a new consent.
    let again = uploads
        .insert_upload(upload_of(bob, 1, true), Millis(5_000))
        .await
        .unwrap();
    assert_eq!(again, shown);
    assert!(images.image_bytes(shown).await.unwrap().is_some());
    // The consent audit log keeps every grant and revocation, in order.
    let log = uploads.consent_log(shown).await.unwrap();
    let events: Vec<(&str, PlayerId, Millis)> = log
        .iter()
        .map(|e| (e.event.as_str(), e.player, e.at))
        .collect();
    assert_eq!(
        events,
        vec![
            ("given", alice, Millis(1_000)),
            ("revoked", alice, Millis(4_000)),
            ("given", bob, Millis(5_000)),
        ]
    );
    assert_eq!(log[1].consent, upload_of(alice, 1, true).consent);
    assert_eq!(
        uploads.upload(bob, shown).await.unwrap().unwrap().player,
        bob
    );
}

#[actix_rt::test]
async fn sqlite_store_meets_the_upload_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    upload_contract(store.clone(), store).await;
}

#[actix_rt::test]
async fn a_schema_2_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let (id, _) = store
        .insert_image(new_image(9, None), Millis(1))
        .await
        .unwrap();
    store.flush().await.unwrap();
    drop(store);
    // Make it look like a database written by schema version 2.
    let conn = rusqlite::Connection::open(dir.path().join("emofy.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE uploads; ALTER TABLE images DROP COLUMN playable; \
         ALTER TABLE images DROP COLUMN posterior; ALTER TABLE images DROP COLUMN gold; \
         ALTER TABLE images DROP COLUMN model_guess; ALTER TABLE labels DROP COLUMN decoy; \
         ALTER TABLE labels DROP COLUMN gold; DROP INDEX labels_counted; \
         ALTER TABLE labels DROP COLUMN counted; DROP TABLE reliability; DROP TABLE moderation_log; \
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    assert!(
        store
            .pool_entries(Millis(0))
            .await
            .unwrap()
            .iter()
            .any(|e| e.image == id)
    );
    upload_contract(store.clone(), store).await;
}

/// Schema 8 marks each label as counted or not: a schema 7 file gets the
/// column filled from its players' reliabilities, and the index.
#[actix_rt::test]
async fn a_schema_7_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let b = Backend {
        players: Arc::new(store.clone()),
        images: Arc::new(store.clone()),
        rounds: Arc::new(store.clone()),
        review: Arc::new(store.clone()),
    };
    let (img, _) = store
        .insert_image(new_image(9, None), Millis(1))
        .await
        .unwrap();
    let (kept, banned, moderator) = (
        PlayerId(Uuid::new_v4()),
        PlayerId(Uuid::new_v4()),
        PlayerId(Uuid::new_v4()),
    );
    for (p, role) in [
        (kept, Role::Player),
        (banned, Role::Player),
        (moderator, Role::Moderator),
    ] {
        store.create_player(p, "P", role, Millis(1)).await.unwrap();
    }
    for p in [kept, banned] {
        let r = offer(&b, p, img, None).await;
        store
            .record_answer(answer(r, p, img, Emotion::Sad, None), &rules())
            .await
            .unwrap();
    }
    store
        .moderate_player(banned, PlayerAction::Ban, moderator, Millis(3))
        .await
        .unwrap();
    store.flush().await.unwrap();
    drop((b, store));
    let db = dir.path().join("emofy.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP INDEX labels_counted; ALTER TABLE labels DROP COLUMN counted; \
         ALTER TABLE accounts DROP COLUMN failed_logins; ALTER TABLE accounts DROP COLUMN last_failed_ms; \
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    store.flush().await.unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 11);
    // v11: the accounts' failed sign-ins.
    conn.prepare("SELECT failed_logins, last_failed_ms FROM accounts")
        .unwrap();
    let counted = |p: PlayerId| -> bool {
        conn.query_row(
            "SELECT counted FROM labels WHERE player_id = ?1",
            [p.to_string()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(counted(kept));
    assert!(
        !counted(banned),
        "a banned player's label is marked as not counted"
    );
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT player_id FROM labels WHERE image_id = 'x' AND counted = 1 ORDER BY created_ms, id",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("labels_counted"), "{plan}");
}

async fn mongo_store() -> emofy_server::store::mongo::MongoStore {
    let db = format!("emofy_test_{}", Uuid::new_v4().simple());
    emofy_server::store::mongo::MongoStore::connect(&mongo_uri(), &db, false)
        .await
        .expect("the MongoDB test server is running (scripts/test.sh starts it)")
}

#[actix_rt::test]
async fn mongo_store_meets_the_contract() {
    let store = Arc::new(mongo_store().await);
    contract(Backend {
        players: store.clone(),
        images: store.clone(),
        rounds: store.clone(),
        review: store.clone(),
    })
    .await;
    store.database().drop().await.unwrap();
}

/// Labels written before each said whether it counts are marked when the
/// store opens, from their players' reliabilities.
#[actix_rt::test]
async fn mongo_labels_without_a_counted_mark_are_backfilled() {
    use mongodb::bson::{Document, doc};
    let db = format!("emofy_test_{}", Uuid::new_v4().simple());
    let store = emofy_server::store::mongo::MongoStore::connect(&mongo_uri(), &db, false)
        .await
        .unwrap();
    let labels = store.database().collection::<Document>("labels");
    labels
        .insert_many([
            doc! {"_id": "r1", "image_id": "i", "player_id": "kept", "emotion": "sad", "created_ms": 1_i64},
            doc! {"_id": "r2", "image_id": "i", "player_id": "banned", "emotion": "sad", "created_ms": 2_i64},
            doc! {"_id": "r3", "image_id": "i", "player_id": "flagged", "emotion": "sad", "created_ms": 3_i64},
            doc! {"_id": "r4", "image_id": "i", "player_id": "cleared", "emotion": "sad", "created_ms": 4_i64},
        ])
        .await
        .unwrap();
    store
        .database()
        .collection::<Document>("reliability")
        .insert_many([
            doc! {"_id": "banned", "data": "{}", "flag": null, "moderation": "banned", "updated_ms": 1_i64},
            doc! {"_id": "flagged", "data": "{}", "flag": "fast", "moderation": "none", "updated_ms": 1_i64},
            doc! {"_id": "cleared", "data": "{}", "flag": "fast", "moderation": "cleared", "updated_ms": 1_i64},
        ])
        .await
        .unwrap();
    drop(store);
    let store = emofy_server::store::mongo::MongoStore::connect(&mongo_uri(), &db, false)
        .await
        .unwrap();
    let labels = store.database().collection::<Document>("labels");
    for (round, counted) in [("r1", true), ("r2", false), ("r3", false), ("r4", true)] {
        let d = labels.find_one(doc! {"_id": round}).await.unwrap().unwrap();
        assert_eq!(d.get_bool("counted").unwrap(), counted, "{round}");
    }
    store.database().drop().await.unwrap();
}

#[actix_rt::test]
async fn mongo_store_meets_the_upload_contract() {
    let store = Arc::new(mongo_store().await);
    upload_contract(store.clone(), store.clone()).await;
    store.database().drop().await.unwrap();
}

#[actix_rt::test]
async fn mongo_store_one_transaction_per_answer_meets_the_contract() {
    let db = format!("emofy_test_{}", Uuid::new_v4().simple());
    let store = Arc::new(
        emofy_server::store::mongo::MongoStore::connect_with(
            &mongo_uri(),
            MongoOptions {
                writes: AnswerWrites::OnePerAnswer,
                ..MongoOptions::new(&db)
            },
        )
        .await
        .unwrap(),
    );
    contract(Backend {
        players: store.clone(),
        images: store.clone(),
        rounds: store.clone(),
        review: store.clone(),
    })
    .await;
    store.database().drop().await.unwrap();
}

/// Many answers at once through the label writer: each one is acknowledged
/// only once committed, and every acknowledged one is stored.
#[actix_rt::test]
async fn mongo_group_commit_acknowledges_only_stored_answers() {
    // All on one image: the hot-document case the label writer is for.
    concurrent_answers(AnswerWrites::GroupCommit { max_batch: 256 }, 1).await;
}

/// The same with one transaction per answer, spread over 20 images:
/// concurrent transactions that conflict are retried (TransientTransactionError)
/// until they commit. (120 at once on one image exhaust the retries on the
/// test server: that hot-document case is what the label writer is for.)
#[actix_rt::test]
async fn mongo_one_transaction_per_answer_retries_conflicts() {
    concurrent_answers(AnswerWrites::OnePerAnswer, 20).await;
}

/// The stress tests take turns: one single-process test server serves every
/// test, and each stress test would otherwise measure the other's load.
static STRESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn concurrent_answers(writes: AnswerWrites, images: u8) {
    let _turn = STRESS.lock().await;
    let db = format!("emofy_test_{}", Uuid::new_v4().simple());
    let store = Arc::new(
        emofy_server::store::mongo::MongoStore::connect_with(
            &mongo_uri(),
            MongoOptions {
                writes,
                ..MongoOptions::new(&db)
            },
        )
        .await
        .unwrap(),
    );
    let rules = rules();
    let mut imgs = Vec::new();
    for k in 0..images {
        let (img, _) = store
            .insert_image(new_image(100 + k, None), Millis(1))
            .await
            .unwrap();
        imgs.push(img);
    }
    let mut rounds = Vec::new();
    for i in 0..60 {
        let p = PlayerId(Uuid::new_v4());
        store
            .create_player(p, &format!("p{i}"), Role::Player, Millis(1))
            .await
            .unwrap();
        let img = imgs[i % imgs.len()];
        rounds.push((p, img, offer_round(store.as_ref(), p, img).await));
    }
    // Every answer twice at once: exactly one of each pair is stored.
    let mut tasks = Vec::new();
    for (p, img, r) in &rounds {
        for _ in 0..2 {
            let (s, p, img, r) = (store.clone(), *p, *img, *r);
            tasks.push(actix_rt::spawn(async move {
                s.record_answer(
                    AnswerRecord {
                        round: r,
                        player: p,
                        image: img,
                        emotion: Emotion::Sad,
                        shown: None,
                        decoy: false,
                        model_guess: None,
                        response_ms: 1000,
                        time_limit_ms: 15_000,
                        at: Millis(2),
                    },
                    &rules,
                )
                .await
            }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::RoundClosed(_)) | Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 60);
    assert_eq!(store.stats().await.unwrap().labels, 60);
    let mut votes = 0;
    for img in imgs {
        votes += store.image_meta(img).await.unwrap().unwrap().votes.total();
    }
    assert_eq!(votes, 60);
    store.database().drop().await.unwrap();
}

async fn offer_round(
    rounds: &dyn RoundStore,
    player: PlayerId,
    image: emofy_game::ImageId,
) -> RoundId {
    let round = RoundId(Uuid::new_v4());
    rounds
        .record_offer(OfferRecord {
            round,
            player,
            image,
            shown: None,
            offered: Millis(1),
            deadline: Millis(100_000),
        })
        .await
        .unwrap();
    round
}
