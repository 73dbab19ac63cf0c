//! The inference pool: concurrent requests, a bounded queue (`Busy`), and surviving a model panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use emofy_inference::mini_xception::MiniXception;
use emofy_inference::{Classifier, InferenceError, Prediction};
use emofy_server::actors::inference::{InferencePool, PoolError};

/// A test model: sleeps a while, panics on an all-255 input, and puts its mass on pixel 0 % 7.
struct Fake {
    delay: Duration,
}

impl Classifier for Fake {
    fn version(&self) -> &str {
        "fake-1"
    }

    fn input_side(&self) -> u32 {
        2
    }

    fn classify(&self, gray: &[u8]) -> Result<Prediction, InferenceError> {
        std::thread::sleep(self.delay);
        if gray.iter().all(|p| *p == 255) {
            panic!("fake model panics on white input");
        }
        let mut p = [0.0; 7];
        p[usize::from(gray[0]) % 7] = 1.0;
        Prediction::new("fake-1", p)
    }
}

#[actix_rt::test]
async fn answers_many_concurrent_requests_like_the_model_itself() {
    let model = Arc::new(MiniXception::bundled().unwrap());
    let pool = InferencePool::start(model.clone(), 2, 64);
    assert_eq!(pool.version(), model.version());
    let inputs: Vec<Vec<u8>> = (0..16u8).map(|k| vec![k * 15; 64 * 64]).collect();
    let results =
        futures_util::future::join_all(inputs.iter().map(|x| pool.classify(x.clone()))).await;
    for (x, r) in inputs.iter().zip(results) {
        assert_eq!(r.unwrap(), model.classify(x).unwrap());
    }
}

#[actix_rt::test]
async fn refuses_with_busy_past_its_bound_then_recovers() {
    let pool = InferencePool::start(
        Arc::new(Fake {
            delay: Duration::from_millis(300),
        }),
        1,
        2,
    );
    let a = pool.classify(vec![1, 0, 0, 0]);
    let b = pool.classify(vec![2, 0, 0, 0]);
    let c = pool.classify(vec![3, 0, 0, 0]);
    let (a, b, c) = tokio::join!(a, b, c);
    assert!(a.is_ok() && b.is_ok());
    assert!(matches!(c, Err(PoolError::Busy(2))), "{c:?}");
    // Slots free up once requests finish.
    assert!(pool.classify(vec![4, 0, 0, 0]).await.is_ok());
}

#[actix_rt::test]
async fn survives_a_panicking_model() {
    let pool = InferencePool::start(
        Arc::new(Fake {
            delay: Duration::ZERO,
        }),
        1,
        8,
    );
    let bad = pool.classify(vec![255; 4]).await;
    assert!(matches!(bad, Err(PoolError::Model(_))), "{bad:?}");
    // The single worker is still there.
    for k in 0..5u8 {
        let p = pool.classify(vec![k, 0, 0, 0]).await.unwrap();
        assert_eq!(p.top().index(), usize::from(k) % 7);
    }
}
