//! The inference actor pool.
//!
//! **Owns:** N [`InferenceWorker`] threads (an actix `SyncArbiter`) per model
//! version, each holding a handle to that version's loaded model, which
//! version is current, and the count of requests in flight. The queue in front is bounded: past `capacity` requests in flight,
//! [`InferencePool::classify`] answers [`PoolError::Busy`] at once instead of
//! queueing without limit. A panic inside the model is caught in the worker,
//! which answers [`PoolError::Model`] and keeps serving.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

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

/// The workers serving one model version.
struct Generation {
    workers: Addr<InferenceWorker>,
    version: String,
    side: u32,
}

/// A bounded pool of inference workers. Cheap to clone; clones share the
/// bound and the current model version.
///
/// **Model versions:** [`InferencePool::swap`] starts workers for a new model
/// and makes them current; requests already sent keep their generation alive
/// (they hold it until their reply) and finish on the old workers, whose
/// threads end once the last of them is answered. No request is dropped.
#[derive(Clone)]
pub struct InferencePool {
    current: Arc<RwLock<Arc<Generation>>>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    threads: usize,
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn start_generation(model: Arc<dyn Classifier>, threads: usize) -> Generation {
    let version = model.version().to_owned();
    let side = model.input_side();
    let workers = SyncArbiter::start(threads, move || InferenceWorker {
        model: model.clone(),
    });
    Generation {
        workers,
        version,
        side,
    }
}

impl InferencePool {
    /// Starts `workers` threads (at least 1) serving `model`, accepting at most
    /// `capacity` requests in flight. Must run inside an actix system.
    pub fn start(model: Arc<dyn Classifier>, workers: usize, capacity: usize) -> InferencePool {
        let threads = workers.max(1);
        InferencePool {
            current: Arc::new(RwLock::new(Arc::new(start_generation(model, threads)))),
            in_flight: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            threads,
        }
    }

    /// Workers to use by default: one per core but one, at least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1)
    }

    fn generation(&self) -> Arc<Generation> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The current model version.
    pub fn version(&self) -> String {
        self.generation().version.clone()
    }

    /// The current model's square input side in pixels.
    pub fn input_side(&self) -> u32 {
        self.generation().side
    }

    /// Makes `model` current; returns the version it replaced. Requests in
    /// flight finish on the previous model. Must run inside an actix system.
    pub fn swap(&self, model: Arc<dyn Classifier>) -> String {
        let next = Arc::new(start_generation(model, self.threads));
        let old = match self.current.write() {
            Ok(mut g) => std::mem::replace(&mut *g, next),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), next),
        };
        old.version.clone()
    }

    /// Classifies one face crop with the current model, or refuses at once
    /// with `Busy` when full. The crop must be `input_side()²` pixels.
    pub async fn classify(&self, pixels: Vec<u8>) -> Result<Prediction, PoolError> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _slot = InFlight(self.in_flight.clone());
        if before >= self.capacity {
            return Err(PoolError::Busy(before));
        }
        // Held until the reply: the generation's workers live while it is in use.
        let generation = self.generation();
        let reply = generation
            .workers
            .send(Classify { pixels })
            .await
            .map_err(|_| PoolError::WorkerLost)?;
        Ok(reply?)
    }
}
