//! The review queue reads the store a fixed number of times, however many
//! candidates and labels it ranks, and ranks them as the pure rule says.

use emofy_game::{ConsensusRule, Emotion, ImageStatus, ScoringRules, SpamRules};
use emofy_server::service::review::{QueueBounds, review_queue};
use emofy_server::store::sqlite::{SqliteOptions, SqliteStore};
use emofy_server::store::{GameRules, ImageStore, RoundStore};

use crate::answer_cost::{answer, image, player};

/// `images` labelled images (every fifth disputed), all classified by "m".
async fn seeded(images: u32) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    // Confidence 1.0 is never reached: images stay open until four labels
    // dispute them.
    let rules = GameRules {
        consensus: ConsensusRule::new(3, 1000, 4).unwrap(),
        scoring: ScoringRules::default(),
        spam: SpamRules::default(),
        trust: crate::answer_cost::everyone_trusted(),
    };
    let players = [
        player(&store).await,
        player(&store).await,
        player(&store).await,
        player(&store).await,
    ];
    let mut predictions = Vec::new();
    for i in 0..images {
        let img = image(&store, i + 1).await;
        let labels = if i % 5 == 0 { 4 } else { 1 + i as usize % 3 };
        for (k, p) in players.iter().take(labels).enumerate() {
            let e = Emotion::ALL[(i as usize + k) % 7];
            answer(&store, &rules, *p, img, e).await;
        }
        let mut probs = [0.1f32; 7];
        probs[i as usize % 7] = 0.4;
        predictions.push((img, emofy_inference::Prediction::new("m", probs).unwrap()));
    }
    store.save_predictions(predictions).await.unwrap();
    store.flush().await.unwrap();
    (dir, store)
}

#[actix_rt::test]
async fn the_queue_costs_four_reads_whatever_it_ranks() {
    for images in [10, 60] {
        let (_dir, store) = seeded(images).await;
        let bounds = QueueBounds {
            candidates: 500,
            labels: 100,
            limit: 20,
        };
        let before = store.reads();
        let queue = review_queue(&store, &store, &store, Some("m"), bounds)
            .await
            .unwrap();
        let reads = store.reads() - before;
        assert_eq!(
            reads, 4,
            "{images} images: candidates, labels, reliabilities, predictions"
        );
        assert_eq!(queue.len(), (images as usize).min(20));

        let disputed = (0..images).filter(|i| i % 5 == 0).count().min(20);
        for (pos, e) in queue.iter().enumerate() {
            assert_eq!(
                matches!(e.candidate.meta.status, ImageStatus::Disputed),
                pos < disputed,
                "{images} images: disputed images lead (position {pos})"
            );
            let stored = store.image_labels(e.candidate.meta.id, 100).await.unwrap();
            let shown: Vec<_> = e.labels.iter().map(|(l, _)| l.clone()).collect();
            assert_eq!(shown, stored);
            assert!(e.labels.iter().all(|(_, counted)| *counted));
            assert_eq!(e.model_probabilities.as_ref().map(Vec::len), Some(7));
        }
        for w in queue.windows(2) {
            assert!(w[0].rank.priority >= w[1].rank.priority);
        }

        // Without a model there is nothing to classify: three reads.
        let before = store.reads();
        let queue = review_queue(&store, &store, &store, None, bounds)
            .await
            .unwrap();
        assert_eq!(store.reads() - before, 3);
        assert!(queue.iter().all(|e| e.model_probabilities.is_none()));
    }
}
