//! The in-process board of the embedded default (one replica): every
//! period's buckets in memory, rebuilt from the store at start.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use emofy_game::period::rank_key;
use emofy_game::{Bucket, Millis, Period, PlayerId};

use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, PlayerRecord, ScoreChange, StoreError};

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
