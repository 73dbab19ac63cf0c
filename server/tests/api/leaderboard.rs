//! The leaderboard contract, run against the in-process board and against
//! the real local Redis (a random key prefix per test): periods, ties,
//! around-me at the edges, idempotent retries; and Redis expiry.

use std::sync::Arc;
use std::time::Duration;

use emofy_game::{Millis, Period, PlayerId};
use emofy_server::leaderboard::MemoryLeaderboard;
use emofy_server::leaderboard::redis::RedisLeaderboard;
use emofy_server::store::{Leaderboard, ScoreChange, ScoreReason};
use uuid::Uuid;

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn prefix() -> String {
    format!("emofy-test-{}", Uuid::new_v4().simple())
}

fn redis_board(prefix: &str, grace: Duration) -> RedisLeaderboard {
    RedisLeaderboard::connect(&redis_url(), prefix, grace, Duration::from_secs(2)).unwrap()
}

fn pid(n: u128) -> PlayerId {
    PlayerId(Uuid::from_u128(n))
}

/// 2027-11-25 (a Thursday) 12:00 UTC: in the future, so Redis keeps its day boards.
const T: u64 = 1_827_144_000_000;
const DAY: u64 = 86_400_000;

fn change(p: u128, delta: u32, at: u64, key: &str) -> ScoreChange {
    ScoreChange {
        player: pid(p),
        name: format!("player {p}"),
        delta,
        total: 0,
        key: key.into(),
        at: Millis(at),
        reason: ScoreReason::Answer,
    }
}

fn ids(rows: &[emofy_server::protocol::LeaderboardRow]) -> Vec<u128> {
    rows.iter().map(|r| r.player.0.as_u128()).collect()
}

async fn contract(b: Arc<dyn Leaderboard>) {
    let all = Period::AllTime.bucket(Millis(T));
    let today = Period::Daily.bucket(Millis(T));
    let week = Period::Weekly.bucket(Millis(T));
    let tuesday = Period::Daily.bucket(Millis(T - 2 * DAY));
    let last_week = Period::Weekly.bucket(Millis(T - 7 * DAY));

    // Player 1 scored on Tuesday and today; 2 today; 3 last week only.
    b.apply(&[
        change(1, 10, T - 2 * DAY, "m1"),
        change(1, 5, T, "t1"),
        change(2, 12, T + 1000, "t2"),
        change(3, 40, T - 7 * DAY, "w3"),
    ])
    .await
    .unwrap();
    assert_eq!(ids(&b.top(&all, 10).await.unwrap()), vec![3, 1, 2]);
    assert_eq!(ids(&b.top(&today, 10).await.unwrap()), vec![2, 1]);
    assert_eq!(ids(&b.top(&week, 10).await.unwrap()), vec![1, 2]);
    assert_eq!(ids(&b.top(&tuesday, 10).await.unwrap()), vec![1]);
    assert_eq!(ids(&b.top(&last_week, 10).await.unwrap()), vec![3]);
    let top = b.top(&all, 10).await.unwrap();
    assert_eq!(
        top.iter().map(|r| (r.rank, r.score)).collect::<Vec<_>>(),
        vec![(1, 40), (2, 15), (3, 12)]
    );
    assert_eq!(top[0].name, "player 3");
    assert_eq!(b.count(&week).await.unwrap(), 2);
    let s = b.standing(&today, pid(1)).await.unwrap().unwrap();
    assert_eq!((s.rank, s.score), (2, 5));
    assert!(b.standing(&today, pid(3)).await.unwrap().is_none());

    // Retries and replays never double-count.
    b.apply(&[change(1, 5, T, "t1"), change(2, 12, T + 1000, "t2")])
        .await
        .unwrap();
    assert_eq!(b.standing(&all, pid(1)).await.unwrap().unwrap().score, 15);
    assert_eq!(b.standing(&today, pid(2)).await.unwrap().unwrap().score, 12);

    // Ties: equal points, the earlier achiever first.
    b.apply(&[change(4, 12, T + 5000, "t4"), change(5, 12, T + 500, "t5")])
        .await
        .unwrap();
    assert_eq!(ids(&b.top(&today, 10).await.unwrap()), vec![5, 2, 4, 1]);

    // Around me, at the top edge, in the middle and at the bottom edge.
    assert_eq!(ids(&b.around(&today, pid(5), 1).await.unwrap()), vec![5, 2]);
    assert_eq!(
        ids(&b.around(&today, pid(4), 1).await.unwrap()),
        vec![2, 4, 1]
    );
    assert_eq!(
        ids(&b.around(&today, pid(1), 2).await.unwrap()),
        vec![2, 4, 1]
    );
    let around = b.around(&today, pid(1), 2).await.unwrap();
    assert_eq!(
        around.iter().map(|r| r.rank).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(b.around(&today, pid(99), 2).await.unwrap().is_empty());
    assert!(
        b.top(&Period::Daily.bucket(Millis(T + 9 * DAY)), 5)
            .await
            .unwrap()
            .is_empty()
    );
}

#[actix_rt::test]
async fn memory_board_meets_the_contract() {
    contract(Arc::new(MemoryLeaderboard::default())).await;
}

#[actix_rt::test]
async fn redis_board_meets_the_contract() {
    contract(Arc::new(redis_board(&prefix(), Duration::from_secs(3600)))).await;
}

#[actix_rt::test]
async fn redis_day_and_week_boards_expire_after_their_period_and_grace() {
    let p = prefix();
    let grace = Duration::from_secs(3600);
    let b = redis_board(&p, grace);
    let now = emofy_server::clock::now();
    b.apply(&[
        change(1, 3, now.0, "now"),
        // Long over: its day and week boards expire at once; all-time keeps it.
        change(2, 7, now.0 - 30 * DAY, "old"),
    ])
    .await
    .unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let day = Period::Daily.bucket(now);
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{p}:lb:global:{}", day.id))
        .query_async(&mut conn)
        .await
        .unwrap();
    let expected = (day.ends.unwrap().0.saturating_sub(now.0) / 1000) as i64 + 3600;
    assert!(
        (ttl - expected).abs() <= 5,
        "ttl {ttl}, expected about {expected}"
    );
    let all: i64 = redis::cmd("TTL")
        .arg(format!("{p}:lb:global:all"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(all, -1, "the all-time board never expires");
    let old_day = Period::Daily.bucket(Millis(now.0 - 30 * DAY));
    assert_eq!(b.count(&old_day).await.unwrap(), 0);
    assert_eq!(b.count(&Period::AllTime.bucket(now)).await.unwrap(), 2);
    // Idempotency keys expire too (after 8 days), so Redis does not grow without bound.
    let key_ttl: i64 = redis::cmd("TTL")
        .arg(format!("{p}:applied:now"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(key_ttl > 7 * 86_400, "{key_ttl}");
}

#[actix_rt::test]
async fn redis_board_publishes_changed_players() {
    let p = prefix();
    let b = redis_board(&p, Duration::from_secs(60));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(emofy_server::leaderboard::redis::follow_events(
        redis_url(),
        b.events_channel(),
        Duration::from_millis(100),
        move |players| {
            let _ = tx.send(players);
        },
    ));
    // Subscribing takes a moment; publish until the subscriber hears one.
    let mut heard = None;
    for i in 0..50 {
        b.apply(&[change(7, 1, T, &format!("e{i}"))]).await.unwrap();
        if let Ok(Some(players)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
        {
            heard = Some(players);
            break;
        }
    }
    assert_eq!(heard, Some(vec![pid(7)]));
}
