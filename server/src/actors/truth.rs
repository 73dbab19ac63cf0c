//! The truth pass: a periodic full Dawid–Skene EM over recent labels.
//!
//! **Owns:** only its timer and whether a pass is running (never two at once).
//! Every `truth.pass_every_secs` it reads a [`TruthSnapshot`] from the store
//! (the newest `truth.pass_labels` labels, their images' gold labels and model
//! guesses, the labels images came with, every reliability and the last
//! crowd prior), runs [`em_pass`] on a blocking thread, and writes the
//! players' and the model's matrices, the crowd prior (class prior, pooled
//! matrix, strength) and the posteriors of open images back. The online updates in each answer learn a label once, with
//! the belief of that moment; this pass re-learns them all with today's
//! beliefs. Run it on one replica (`truth.pass_every_secs = 0` on the others):
//! two passes at once are harmless but wasted work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use emofy_game::TrustRules;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::store::truth::em_pass;
use crate::store::{ReviewStore, StoreError, TruthSnapshot};

/// See the module docs.
pub struct TruthPassActor {
    store: Arc<dyn ReviewStore>,
    metrics: Arc<Metrics>,
    clock: Clock,
    every: Duration,
    max_labels: usize,
    trust: TrustRules,
    running: bool,
}

impl TruthPassActor {
    pub fn new(
        store: Arc<dyn ReviewStore>,
        metrics: Arc<Metrics>,
        clock: Clock,
        every: Duration,
        max_labels: usize,
        trust: TrustRules,
    ) -> TruthPassActor {
        TruthPassActor {
            store,
            metrics,
            clock,
            every,
            max_labels,
            trust,
            running: false,
        }
    }
}

impl Actor for TruthPassActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.every.is_zero() {
            ctx.run_interval(self.every, |_, ctx| {
                ctx.notify(RunTruthPass);
            });
        }
    }
}

/// Run a pass now (the timer sends it; tests and operators may too).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunTruthPass;

/// What a finished pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassReport {
    pub labels: usize,
    pub players: usize,
    pub images: usize,
}

/// Runs one pass against `store`: read, EM, write. Shared by the actor and
/// `emofy admin truth-pass`.
pub async fn run_pass(
    store: &dyn ReviewStore,
    clock: Clock,
    max_labels: usize,
    trust: TrustRules,
) -> Result<PassReport, StoreError> {
    let snapshot: TruthSnapshot = store.truth_snapshot(max_labels).await?;
    let labels = snapshot.labels.len();
    let pass = tokio::task::spawn_blocking(move || {
        em_pass(&snapshot, &trust, emofy_game::truth::PASS_ITERATIONS)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("truth pass: {e}")))?;
    let report = PassReport {
        labels,
        players: pass.matrices.len(),
        images: pass.posteriors.len(),
    };
    store.apply_truth_pass(pass, clock.now()).await?;
    Ok(report)
}

impl Handler<RunTruthPass> for TruthPassActor {
    type Result = ();

    fn handle(&mut self, _: RunTruthPass, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let store = self.store.clone();
        let (clock, max, trust) = (self.clock, self.max_labels, self.trust);
        let started = Instant::now();
        let span = tracing::info_span!("truth_pass");
        ctx.spawn(
            async move { run_pass(store.as_ref(), clock, max, trust).await }
                .into_actor(self)
                .map(move |res, act, _| {
                    act.running = false;
                    let _enter = span.enter();
                    match res {
                        Ok(r) => {
                            act.metrics.truth_passes.inc();
                            act.metrics
                                .truth_pass_seconds
                                .set(started.elapsed().as_secs_f64());
                            tracing::info!(
                                labels = r.labels,
                                players = r.players,
                                images = r.images,
                                seconds = started.elapsed().as_secs_f64(),
                                "truth pass done"
                            );
                        }
                        Err(e) => tracing::warn!(error = %e, "truth pass failed"),
                    }
                }),
        );
    }
}
