//! The leaderboard hub's bounds: a viewer that does not keep up is dropped,
//! never buffered; the others keep getting coalesced updates.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use emofy_game::{Millis, Period, PlayerId};
use emofy_server::actors::hub::{
    BoardPush, LeaderboardHub, ScoresMoved, ViewerCount, ViewerJoined,
};
use emofy_server::clock::Clock;
use emofy_server::leaderboard::MemoryLeaderboard;
use emofy_server::metrics::Metrics;
use emofy_server::store::{Leaderboard, ScoreChange, ScoreReason};
use uuid::Uuid;

/// A viewer that takes 300 ms per update, with room for one waiting update.
struct Slow;

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<BoardPush> for Slow {
    type Result = ();
    fn handle(&mut self, _: BoardPush, _: &mut Context<Self>) {
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A viewer that counts updates.
struct Fast(Arc<AtomicUsize>);

impl Actor for Fast {
    type Context = Context<Self>;
}

impl Handler<BoardPush> for Fast {
    type Result = ();
    fn handle(&mut self, m: BoardPush, _: &mut Context<Self>) {
        assert!(m.0.starts_with(r#"{"type":"board""#), "{}", m.0);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[actix_rt::test]
async fn a_slow_viewer_is_dropped_and_the_others_keep_up() {
    let board = Arc::new(MemoryLeaderboard::default());
    let hub = LeaderboardHub::new(
        board.clone(),
        None,
        Clock::new(),
        Arc::new(Metrics::new()),
        Duration::from_millis(10),
    )
    .start();
    let slow_arbiter = Arbiter::new();
    let slow = Slow::start_in_arbiter(&slow_arbiter.handle(), |ctx| {
        ctx.set_mailbox_capacity(1);
        Slow
    });
    let seen = Arc::new(AtomicUsize::new(0));
    let fast = Fast(seen.clone()).start();
    let slow_dropped = Arc::new(AtomicBool::new(false));
    let fast_dropped = Arc::new(AtomicBool::new(false));
    for (id, addr, dropped) in [
        (1, slow.recipient(), slow_dropped.clone()),
        (2, fast.recipient(), fast_dropped.clone()),
    ] {
        hub.send(ViewerJoined {
            id,
            addr,
            period: Period::AllTime,
            top: 10,
            player: None,
            dropped,
        })
        .await
        .unwrap();
    }
    // Scores move 400 times, every ~5 ms: far more than one update per push interval.
    let started = std::time::Instant::now();
    for i in 0..400u32 {
        let change = ScoreChange {
            player: PlayerId(Uuid::from_u128(u128::from(i % 20))),
            name: format!("p{}", i % 20),
            delta: 1 + i % 3,
            total: 0,
            key: format!("k{i}"),
            at: Millis(emofy_server::clock::now().0),
            reason: ScoreReason::Answer,
        };
        board.apply(&[change]).await.unwrap();
        hub.do_send(ScoresMoved { players: vec![] });
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let intervals = started.elapsed().as_millis() as usize / 10;
    assert!(
        slow_dropped.load(Ordering::Acquire),
        "the slow viewer is dropped"
    );
    assert!(!fast_dropped.load(Ordering::Acquire));
    assert_eq!(hub.send(ViewerCount).await.unwrap(), 1);
    let updates = seen.load(Ordering::Relaxed);
    // Coalesced: at most one per 10 ms interval (plus the snapshot), far fewer than 400 changes.
    assert!(
        updates >= 20,
        "the fast viewer kept getting updates ({updates})"
    );
    assert!(
        updates <= intervals + 2,
        "coalesced: {updates} updates in {intervals} intervals"
    );
    assert!(updates < 400);
    slow_arbiter.stop();
}
