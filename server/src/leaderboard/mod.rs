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
//!
//! | module | board |
//! | --- | --- |
//! | [`memory`] | `MemoryLeaderboard`: in the process (the embedded default) |
//! | [`buffered`] | `BufferedLeaderboard`: the outage buffer in front of a remote board |
//! | [`redis`] | `RedisLeaderboard`: on Redis, shared by replicas, with its pub/sub events |

use emofy_game::Millis;

use crate::store::{Leaderboard, RoundStore, StoreError};

pub mod buffered;
pub mod memory;
pub mod redis;

pub use buffered::BufferedLeaderboard;
pub use memory::MemoryLeaderboard;
pub use redis::RedisLeaderboard;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::OwnStanding;
    use crate::store::{ScoreChange, ScoreReason};
    use emofy_game::{Period, PlayerId};
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
