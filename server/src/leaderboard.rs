//! Leaderboards: the in-process board of the embedded default, and the
//! buffer that keeps play going while a remote board (Redis) is down.
//!
//! Every board is one period's bucket (all-time, the UTC day, the UTC week;
//! [`emofy_game::Period`]). Ordering, identical on every implementation:
//! more points first; on equal points, whoever reached them earlier (to the
//! second) first; then the larger player id first (Redis orders equal
//! scores by member, descending, in a reverse range). Changes are applied
//! once by their idempotency key (`answer:<round>`, `settle:<image>:<player>`),
//! so a retry or a replay never double-counts.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use emofy_game::period::rank_key;
use emofy_game::{Bucket, Millis, Period, PlayerId};

use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, PlayerRecord, RoundStore, ScoreChange, StoreError};

/// Keys remembered by the in-process board to make `apply` idempotent.
const REMEMBERED_KEYS: usize = 500_000;

type Key = (Reverse<u64>, Reverse<PlayerId>);

#[derive(Default)]
struct Board {
    points: HashMap<PlayerId, (u64, Key)>,
    order: BTreeSet<Key>,
    ends: Option<Millis>,
}

impl Board {
    fn add(&mut self, player: PlayerId, delta: u64, at: Millis) {
        let points = match self.points.get(&player) {
            Some((p, key)) => {
                let key = *key;
                self.order.remove(&key);
                p + delta
            }
            None => delta,
        };
        let key = (Reverse(rank_key(points, at)), Reverse(player));
        self.order.insert(key);
        self.points.insert(player, (points, key));
    }

    fn row(&self, rank: usize, key: &Key, names: &HashMap<PlayerId, String>) -> LeaderboardRow {
        let player = key.1.0;
        LeaderboardRow {
            rank: rank as u64 + 1,
            player,
            name: names.get(&player).cloned().unwrap_or_default(),
            score: self.points.get(&player).map_or(0, |p| p.0),
        }
    }

    fn rank(&self, player: PlayerId) -> Option<(usize, u64)> {
        let (points, key) = self.points.get(&player)?;
        Some((self.order.range(..*key).count(), *points))
    }
}

#[derive(Default)]
struct Inner {
    boards: HashMap<String, Board>,
    names: HashMap<PlayerId, String>,
    applied: HashSet<String>,
    applied_order: VecDeque<String>,
}

impl Inner {
    fn apply(&mut self, c: &ScoreChange, periods: &[Period]) -> bool {
        if !self.applied.insert(c.key.clone()) {
            return false;
        }
        self.applied_order.push_back(c.key.clone());
        if self.applied_order.len() > REMEMBERED_KEYS
            && let Some(old) = self.applied_order.pop_front()
        {
            self.applied.remove(&old);
        }
        self.names.insert(c.player, c.name.clone());
        for period in periods {
            let bucket = period.bucket(c.at);
            let board = self.boards.entry(bucket.id).or_default();
            board.ends = bucket.ends;
            board.add(c.player, u64::from(c.delta), c.at);
        }
        true
    }

    /// Forgets day and week boards that ended more than two days ago.
    fn expire(&mut self, now: Millis) {
        self.boards
            .retain(|_, b| b.ends.is_none_or(|e| e.0 + 2 * 86_400_000 > now.0));
    }
}

/// The in-process leaderboard (embedded default).
#[derive(Default)]
pub struct MemoryLeaderboard {
    inner: Mutex<Inner>,
}

impl MemoryLeaderboard {
    /// A board holding the stored all-time totals, with the day and week
    /// boards rebuilt from the score ledger (`recent`: changes of the current week).
    pub fn seeded(players: &[PlayerRecord], recent: &[ScoreChange]) -> Self {
        let board = MemoryLeaderboard::default();
        if let Ok(mut inner) = board.inner.lock() {
            let all = inner.boards.entry("all".into()).or_default();
            for p in players.iter().filter(|p| p.tally.score > 0) {
                all.add(p.id, p.tally.score, p.score_at);
            }
            for p in players {
                inner.names.insert(p.id, p.name.clone());
            }
            for c in recent {
                inner.apply(c, &[Period::Daily, Period::Weekly]);
            }
        }
        board
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("leaderboard lock poisoned".into()))
    }
}

#[async_trait]
impl Leaderboard for MemoryLeaderboard {
    async fn apply(&self, changes: &[ScoreChange]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for c in changes {
            inner.apply(c, &Period::ALL);
        }
        inner.expire(crate::clock::now());
        Ok(())
    }

    async fn top(&self, bucket: &Bucket, n: usize) -> Result<Vec<LeaderboardRow>, StoreError> {
        let inner = self.lock()?;
        let Some(board) = inner.boards.get(&bucket.id) else {
            return Ok(Vec::new());
        };
        Ok(board
            .order
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, k)| board.row(i, k, &inner.names))
            .collect())
    }

    async fn around(
        &self,
        bucket: &Bucket,
        player: PlayerId,
        k: usize,
    ) -> Result<Vec<LeaderboardRow>, StoreError> {
        let inner = self.lock()?;
        let Some(board) = inner.boards.get(&bucket.id) else {
            return Ok(Vec::new());
        };
        let Some((rank, _)) = board.rank(player) else {
            return Ok(Vec::new());
        };
        let from = rank.saturating_sub(k);
        Ok(board
            .order
            .iter()
            .enumerate()
            .skip(from)
            .take(rank - from + k + 1)
            .map(|(i, key)| board.row(i, key, &inner.names))
            .collect())
    }

    async fn standing(
        &self,
        bucket: &Bucket,
        player: PlayerId,
    ) -> Result<Option<OwnStanding>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .boards
            .get(&bucket.id)
            .and_then(|b| b.rank(player))
            .map(|(rank, score)| OwnStanding {
                rank: rank as u64 + 1,
                score,
            }))
    }

    async fn count(&self, bucket: &Bucket) -> Result<u64, StoreError> {
        Ok(self
            .lock()?
            .boards
            .get(&bucket.id)
            .map_or(0, |b| b.order.len() as u64))
    }
}

/// Applies every change of the store's score ledger from `since` on to
/// `board`, oldest first, a page at a time; returns how many were read.
/// Safe to repeat: changes are applied once by key.
pub async fn replay_ledger(
    ledger: &dyn RoundStore,
    board: &dyn Leaderboard,
    since: Millis,
) -> Result<u64, StoreError> {
    const PAGE: usize = 1000;
    let mut from = since;
    let mut read = 0u64;
    loop {
        let page = ledger.score_events_since(from, PAGE).await?;
        board.apply(&page).await?;
        read += page.len() as u64;
        match page.last() {
            // A full page ending in the same millisecond it began cannot advance: step past it.
            Some(last) if page.len() == PAGE => {
                from = if last.at == from {
                    Millis(last.at.0 + 1)
                } else {
                    last.at
                }
            }
            _ => return Ok(read),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ScoreReason;
    use uuid::Uuid;

    fn change(p: u128, delta: u32, at: u64, key: &str) -> ScoreChange {
        ScoreChange {
            player: PlayerId(Uuid::from_u128(p)),
            name: format!("p{p}"),
            delta,
            total: 0,
            key: key.into(),
            at: Millis(at),
            reason: ScoreReason::Answer,
        }
    }

    const T: u64 = 1_827_144_000_000; // 2027-11-25T12:00Z, in the future: nothing expires

    #[actix_rt::test]
    async fn ties_go_to_the_earlier_achiever_and_reapplying_is_harmless() {
        let b = MemoryLeaderboard::default();
        b.apply(&[
            change(1, 10, T + 200_000, "a"),
            change(2, 10, T + 100_000, "b"),
            change(3, 30, T + 300_000, "c"),
        ])
        .await
        .ok();
        b.apply(&[change(1, 10, T + 200_000, "a")]).await.ok();
        let all = Period::AllTime.bucket(Millis(T));
        let top = b.top(&all, 10).await.unwrap_or_default();
        let order: Vec<u128> = top.iter().map(|r| r.player.0.as_u128()).collect();
        assert_eq!(order, vec![3, 2, 1]);
        assert_eq!(top[2].score, 10);
        let s = b.standing(&all, PlayerId(Uuid::from_u128(1))).await.ok();
        assert_eq!(s, Some(Some(OwnStanding { rank: 3, score: 10 })));
        assert_eq!(b.count(&all).await.ok(), Some(3));
        let around = b
            .around(&all, PlayerId(Uuid::from_u128(3)), 1)
            .await
            .unwrap_or_default();
        assert_eq!(
            around.iter().map(|r| r.rank).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[actix_rt::test]
    async fn periods_split_by_utc_day_and_week() {
        let b = MemoryLeaderboard::default();
        let day = 86_400_000;
        b.apply(&[change(1, 5, T, "x"), change(1, 7, T + day, "y")])
            .await
            .ok();
        let today = Period::Daily.bucket(Millis(T + day));
        let yesterday = Period::Daily.bucket(Millis(T));
        let p1 = PlayerId(Uuid::from_u128(1));
        let score = |s: Option<OwnStanding>| s.map(|s| s.score);
        assert_eq!(score(b.standing(&today, p1).await.unwrap_or(None)), Some(7));
        assert_eq!(
            score(b.standing(&yesterday, p1).await.unwrap_or(None)),
            Some(5)
        );
        let all = Period::AllTime.bucket(Millis(T));
        assert_eq!(score(b.standing(&all, p1).await.unwrap_or(None)), Some(12));
    }
}
