//! The inference actor pool.
//!
//! **Owns:** N [`InferenceWorker`] threads (an actix `SyncArbiter`), each
//! holding a handle to the same loaded model, and the count of requests in
//! flight. The queue in front is bounded: past `capacity` requests in flight,
//! [`InferencePool::classify`] answers [`PoolError::Busy`] at once instead of
//! queueing without limit. A panic inside the model is caught in the worker,
//! which answers [`PoolError::Model`] and keeps serving.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use emofy_inference::{Classifier, InferenceError, Prediction};

/// Errors from the pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Too many requests in flight; try again later.
    #[error("inference is busy ({0} requests in flight)")]
    Busy(usize),
    #[error(transparent)]
    Model(#[from] InferenceError),
    /// The worker went away (only while the system shuts down).
    #[error("inference worker unavailable")]
    WorkerLost,
}

/// Classify one face crop (8-bit grayscale, `input_side`² pixels).
#[derive(Message)]
#[rtype(result = "Result<Prediction, InferenceError>")]
pub struct Classify {
    pub pixels: Vec<u8>,
}

/// One inference thread. **Owns:** a handle to the shared model.
pub struct InferenceWorker {
    model: Arc<dyn Classifier>,
}

impl Actor for InferenceWorker {
    type Context = SyncContext<Self>;
}

impl Handler<Classify> for InferenceWorker {
    type Result = Result<Prediction, InferenceError>;

    fn handle(&mut self, msg: Classify, _: &mut SyncContext<Self>) -> Self::Result {
        let model = self.model.clone();
        std::panic::catch_unwind(AssertUnwindSafe(move || model.classify(&msg.pixels)))
            .unwrap_or_else(|_| {
                Err(InferenceError::BadOutput(
                    "the model panicked on this input".into(),
                ))
            })
    }
}

/// A bounded pool of inference workers for one model version. Cheap to clone.
#[derive(Clone)]
pub struct InferencePool {
    workers: Addr<InferenceWorker>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    version: String,
    side: u32,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InferencePool {
    /// Starts `workers` threads (at least 1) serving `model`, accepting at most
    /// `capacity` requests in flight. Must run inside an actix system.
    pub fn start(model: Arc<dyn Classifier>, workers: usize, capacity: usize) -> InferencePool {
        let version = model.version().to_owned();
        let side = model.input_side();
        let workers = SyncArbiter::start(workers.max(1), move || InferenceWorker {
            model: model.clone(),
        });
        InferencePool {
            workers,
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            version,
            side,
        }
    }

    /// Workers to use by default: one per core but one, at least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1)
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn input_side(&self) -> u32 {
        self.side
    }

    /// Classifies one face crop, or refuses at once with `Busy` when full.
    pub async fn classify(&self, pixels: Vec<u8>) -> Result<Prediction, PoolError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _slot = InFlight(self.in_flight.clone());
        if before >= self.capacity {
            return Err(PoolError::Busy(before));
        }
        let reply = self
            .workers
            .send(Classify { pixels })
            .await
            .map_err(|_| PoolError::WorkerLost)?;
        Ok(reply?)
    }
}
