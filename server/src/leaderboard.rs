//! The in-process leaderboard used by the embedded default.
//!
//! Ordering: higher score first; on equal scores, the player who reached the
//! score earlier ranks first; then by player id, so the order is total and
//! deterministic. It is seeded from the durable store at start-up and applies
//! [`ScoreChange`]s by their absolute `total`, so applying a change twice (or
//! an older one late) never double-counts.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use emofy_game::PlayerId;

use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, PlayerRecord, ScoreChange, StoreError};

type Key = (Reverse<u64>, u64, PlayerId);

#[derive(Default)]
struct Inner {
    players: HashMap<PlayerId, (Key, String)>,
    order: BTreeSet<Key>,
}

/// In-memory all-time leaderboard.
#[derive(Default)]
pub struct MemoryLeaderboard {
    inner: Mutex<Inner>,
}

impl MemoryLeaderboard {
    /// A board holding these players' stored totals.
    pub fn seeded(players: &[PlayerRecord]) -> Self {
        let board = MemoryLeaderboard::default();
        if let Ok(mut inner) = board.inner.lock() {
            for p in players.iter().filter(|p| p.tally.score > 0) {
                inner.set(p.id, &p.name, p.tally.score, p.score_at.0);
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

impl Inner {
    fn set(&mut self, player: PlayerId, name: &str, total: u64, at: u64) {
        if let Some((old, _)) = self.players.get(&player) {
            if old.0.0 >= total {
                return;
            }
            let old = *old;
            self.order.remove(&old);
        }
        let key = (Reverse(total), at, player);
        self.order.insert(key);
        self.players.insert(player, (key, name.to_owned()));
    }
}

#[async_trait]
impl Leaderboard for MemoryLeaderboard {
    async fn apply(&self, changes: &[ScoreChange]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for c in changes {
            inner.set(c.player, &c.name, c.total, c.at.0);
        }
        Ok(())
    }

    async fn top(&self, n: usize) -> Result<Vec<LeaderboardRow>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .order
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, (score, _, player))| LeaderboardRow {
                rank: i as u64 + 1,
                player: *player,
                name: inner
                    .players
                    .get(player)
                    .map(|p| p.1.clone())
                    .unwrap_or_default(),
                score: score.0,
            })
            .collect())
    }

    async fn standing(&self, player: PlayerId) -> Result<Option<OwnStanding>, StoreError> {
        let inner = self.lock()?;
        let Some((key, _)) = inner.players.get(&player) else {
            return Ok(None);
        };
        let rank = inner.order.range(..*key).count() as u64 + 1;
        Ok(Some(OwnStanding {
            rank,
            score: key.0.0,
        }))
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.order.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ScoreReason;
    use emofy_game::Millis;
    use uuid::Uuid;

    fn change(p: u128, total: u64, at: u64) -> ScoreChange {
        ScoreChange {
            player: PlayerId(Uuid::from_u128(p)),
            name: format!("p{p}"),
            delta: 1,
            total,
            key: format!("k{p}-{total}"),
            at: Millis(at),
            reason: ScoreReason::Answer,
        }
    }

    #[actix_rt::test]
    async fn ties_go_to_the_earlier_achiever_and_reapplying_is_harmless() {
        let b = MemoryLeaderboard::default();
        b.apply(&[change(1, 10, 200), change(2, 10, 100), change(3, 30, 300)])
            .await
            .ok();
        b.apply(&[change(1, 10, 200), change(1, 5, 50)]).await.ok();
        let top = b.top(10).await.unwrap_or_default();
        let order: Vec<u128> = top.iter().map(|r| r.player.0.as_u128()).collect();
        assert_eq!(order, vec![3, 2, 1]);
        assert_eq!(top[2].score, 10);
        let s = b
            .standing(PlayerId(Uuid::from_u128(1)))
            .await
            .ok()
            .flatten();
        assert_eq!(s, Some(OwnStanding { rank: 3, score: 10 }));
        assert_eq!(
            b.standing(PlayerId(Uuid::from_u128(9)))
                .await
                .ok()
                .flatten(),
            None
        );
        assert_eq!(b.count().await.ok(), Some(3));
    }
}
