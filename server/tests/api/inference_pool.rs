//! The inference pool: concurrent requests, a bounded queue (`Busy`), surviving a
//! model panic, and swapping model versions without dropping requests.

use std::sync::Arc;
use std::time::Duration;

use emofy_inference::mini_xception::MiniXception;
use emofy_inference::{Classifier, InferenceError, Prediction};
use emofy_server::actors::inference::{InferencePool, PoolError};

/// A test model: sleeps a while, panics on an all-255 input, and puts its mass on pixel 0 % 7.
struct Fake {
    delay: Duration,
    version: &'static str,
}

impl Fake {
    fn new(delay: Duration) -> Fake {
        Fake {
            delay,
            version: "fake-1",
        }
    }
}

impl Classifier for Fake {
    fn version(&self) -> &str {
        self.version
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
        Prediction::new(self.version, p)
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
    let pool = InferencePool::start(Arc::new(Fake::new(Duration::from_millis(300))), 1, 2);
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
    let pool = InferencePool::start(Arc::new(Fake::new(Duration::ZERO)), 1, 8);
    let bad = pool.classify(vec![255; 4]).await;
    assert!(matches!(bad, Err(PoolError::Model(_))), "{bad:?}");
    // The single worker is still there.
    for k in 0..5u8 {
        let p = pool.classify(vec![k, 0, 0, 0]).await.unwrap();
        assert_eq!(p.top().index(), usize::from(k) % 7);
    }
}

#[actix_rt::test]
async fn swaps_model_versions_without_dropping_requests() {
    let pool = InferencePool::start(Arc::new(Fake::new(Duration::from_millis(40))), 2, 64);
    // Requests sent before the swap, still queued or running when it happens.
    let before: Vec<_> = (0..12u8)
        .map(|k| {
            let pool = pool.clone();
            actix_rt::spawn(async move { pool.classify(vec![k, 0, 0, 0]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let previous = pool.swap(Arc::new(Fake {
        delay: Duration::from_millis(5),
        version: "fake-2",
    }));
    assert_eq!(previous, "fake-1");
    assert_eq!(pool.version(), "fake-2");
    let after = pool.classify(vec![3, 0, 0, 0]).await.unwrap();
    assert_eq!(after.model, "fake-2");
    for (k, h) in before.into_iter().enumerate() {
        let p = h.await.unwrap().expect("no request is dropped by the swap");
        assert_eq!(
            p.model, "fake-1",
            "request {k} finishes on the version it was sent to"
        );
        assert_eq!(p.top().index(), k % 7);
    }
    // The old generation's workers are gone; the new one keeps serving.
    for k in 0..4u8 {
        assert_eq!(
            pool.classify(vec![k, 0, 0, 0]).await.unwrap().model,
            "fake-2"
        );
    }
}
