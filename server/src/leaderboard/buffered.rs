//! The buffer in front of a remote board (Redis): play goes on while it is
//! down, and nothing is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use emofy_game::{Bucket, Millis, PlayerId};

use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, RoundStore, ScoreChange, StoreError};

use super::replay_ledger;

/// Keeps play going while the board behind it is down.
///
/// **Owns:** a bounded queue of score changes the board has not taken yet
/// and the time the outage began. `apply` never fails: a change the board
/// refuses is queued (in order; later changes queue behind it), and a
/// background task retries every `retry` until the queue drains. If more
/// than `capacity` changes pile up, the queue is dropped and, once the board
/// answers again, every change since the outage began is replayed from the
/// store's score ledger instead (idempotency keys make replays harmless).
/// Nothing is lost either way; reads meanwhile report the board as stale.
pub struct BufferedLeaderboard {
    inner: Arc<dyn Leaderboard>,
    ledger: Arc<dyn RoundStore>,
    state: Mutex<Pending>,
    capacity: usize,
    stale: AtomicBool,
}

#[derive(Default)]
struct Pending {
    queue: VecDeque<ScoreChange>,
    /// Since when changes may be missing from the board (replay from here).
    since: Option<Millis>,
    /// The queue overflowed: replay from the ledger.
    overflowed: bool,
}

impl BufferedLeaderboard {
    /// Wraps `inner`; call [`BufferedLeaderboard::run_retries`] on a runtime.
    pub fn new(
        inner: Arc<dyn Leaderboard>,
        ledger: Arc<dyn RoundStore>,
        capacity: usize,
    ) -> Arc<BufferedLeaderboard> {
        Arc::new(BufferedLeaderboard {
            inner,
            ledger,
            state: Mutex::new(Pending::default()),
            capacity: capacity.max(1),
            stale: AtomicBool::new(false),
        })
    }

    /// Whether the board may be missing changes (an outage is in progress or not yet caught up).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Changes waiting for the board.
    pub fn pending(&self) -> usize {
        self.state.lock().map_or(0, |s| s.queue.len())
    }

    fn enqueue(&self, changes: &[ScoreChange]) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.since.is_none() {
            s.since = changes.iter().map(|c| c.at).min();
        }
        if s.overflowed {
            return;
        }
        s.queue.extend(changes.iter().cloned());
        if s.queue.len() > self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "leaderboard buffer full: will replay from the score ledger"
            );
            s.queue.clear();
            s.overflowed = true;
        }
        self.stale.store(true, Ordering::Release);
    }

    /// One retry pass: drains what it can. Returns whether the board is caught up.
    pub async fn retry_once(&self) -> bool {
        let (batch, overflowed, since) = {
            let Ok(s) = self.state.lock() else {
                return false;
            };
            if s.queue.is_empty() && !s.overflowed {
                return true;
            }
            (
                s.queue.iter().take(512).cloned().collect::<Vec<_>>(),
                s.overflowed,
                s.since,
            )
        };
        if overflowed {
            // Replay the ledger from the outage's start (keys make repeats no-ops).
            if let Err(e) = replay_ledger(
                self.ledger.as_ref(),
                self.inner.as_ref(),
                since.unwrap_or(Millis(0)),
            )
            .await
            {
                tracing::debug!(error = %e, "leaderboard replay not done yet");
                return false;
            }
            if let Ok(mut s) = self.state.lock() {
                // Changes queued while replaying are in the ledger too.
                s.queue.clear();
                s.overflowed = false;
            }
        } else {
            if let Err(e) = self.inner.apply(&batch).await {
                tracing::debug!(error = %e, "leaderboard still unavailable");
                return false;
            }
            if let Ok(mut s) = self.state.lock() {
                let n = batch.len().min(s.queue.len());
                s.queue.drain(..n);
            }
        }
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if s.queue.is_empty() && !s.overflowed {
            s.since = None;
            self.stale.store(false, Ordering::Release);
            tracing::info!("leaderboard caught up");
            true
        } else {
            false
        }
    }

    /// Retries queued changes every `every` for as long as the process runs.
    pub async fn run_retries(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if self.is_stale() {
                self.retry_once().await;
            }
        }
    }
}

#[async_trait]
impl Leaderboard for BufferedLeaderboard {
    async fn apply(&self, changes: &[ScoreChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let backlog = self
            .state
            .lock()
            .map_or(true, |s| !s.queue.is_empty() || s.overflowed);
        if backlog {
            // Keep order: behind what is already waiting.
            self.enqueue(changes);
            return Ok(());
        }
        if let Err(e) = self.inner.apply(changes).await {
            tracing::warn!(error = %e, changes = changes.len(), "leaderboard unavailable: queued");
            self.enqueue(changes);
        }
        Ok(())
    }

    async fn top(&self, bucket: &Bucket, n: usize) -> Result<Vec<LeaderboardRow>, StoreError> {
        self.inner.top(bucket, n).await
    }

    async fn around(
        &self,
        bucket: &Bucket,
        player: PlayerId,
        k: usize,
    ) -> Result<Vec<LeaderboardRow>, StoreError> {
        self.inner.around(bucket, player, k).await
    }

    async fn standing(
        &self,
        bucket: &Bucket,
        player: PlayerId,
    ) -> Result<Option<OwnStanding>, StoreError> {
        self.inner.standing(bucket, player).await
    }

    async fn count(&self, bucket: &Bucket) -> Result<u64, StoreError> {
        self.inner.count(bucket).await
    }
}
