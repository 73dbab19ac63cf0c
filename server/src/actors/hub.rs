//! The live leaderboard hub, one per replica.
//!
//! **Owns:** the connected leaderboard viewers (their address, period, how
//! many rows they watch, who they are if signed in, and the top rows they
//! were last sent), which periods changed since the last push, and the last
//! good snapshot of each period (served with `stale: true` while the board
//! cannot be read).
//!
//! Score changes arrive as [`ScoresMoved`] from this replica's answer path
//! and, through Redis pub/sub, from every replica. The hub marks the boards
//! dirty and pushes at most once per `push_every`: a change after a quiet
//! spell goes out at once; changes during a push interval are coalesced into
//! the next one. A push reads each dirty board once and sends each of its
//! viewers an update: at most ~10 a second per viewer however fast scores
//! move. Pushes use `try_send` into the viewer's
//! bounded mailbox; a viewer whose mailbox is full is dropped (its
//! connection closes), never buffered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use emofy_game::{Bucket, Period, PlayerId};
use serde::Serialize;

use crate::clock::Clock;
use crate::leaderboard::BufferedLeaderboard;
use crate::metrics::Metrics;
use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, StoreError};

/// How a viewer's top rows changed since its previous update.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BoardChanges {
    /// Players new in the viewer's top rows.
    pub entered: Vec<PlayerId>,
    /// Players whose rank changed: `(player, from, to)`.
    pub moved: Vec<RankMove>,
}

/// One player's rank change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankMove {
    pub player: PlayerId,
    pub from: u64,
    pub to: u64,
}

/// A board update for one viewer, less its top rows (see [`board_frame`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoardView {
    pub board: String,
    pub period: Period,
    pub bucket: String,
    pub you: Option<OwnStanding>,
    pub players: u64,
    /// The board may be missing recent changes (its store is unreachable).
    pub stale: bool,
    pub changes: BoardChanges,
}

/// One board as read: its bucket, top rows and number of players.
type BoardRead = (Bucket, Vec<LeaderboardRow>, u64);

/// A push from the hub to one viewer: a serialized `board` frame.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BoardPush(pub String);

/// A `board` frame. The top rows, the same for every viewer of a board, are
/// serialized once per push (`top_json`); the rest is per viewer.
fn board_frame(view: &BoardView, top_json: &str) -> String {
    let field = |v: serde_json::Result<String>| v.unwrap_or_else(|_| "null".into());
    format!(
        r#"{{"type":"board","board":{},"period":{},"bucket":{},"top":{top_json},"you":{},"players":{},"stale":{},"changes":{}}}"#,
        field(serde_json::to_string(&view.board)),
        field(serde_json::to_string(&view.period)),
        field(serde_json::to_string(&view.bucket)),
        field(serde_json::to_string(&view.you)),
        view.players,
        view.stale,
        field(serde_json::to_string(&view.changes)),
    )
}

/// Compares two top lists.
pub fn diff(before: &[LeaderboardRow], after: &[LeaderboardRow]) -> BoardChanges {
    let old: HashMap<PlayerId, u64> = before.iter().map(|r| (r.player, r.rank)).collect();
    let mut changes = BoardChanges::default();
    for r in after {
        match old.get(&r.player) {
            None => changes.entered.push(r.player),
            Some(&from) if from != r.rank => changes.moved.push(RankMove {
                player: r.player,
                from,
                to: r.rank,
            }),
            Some(_) => {}
        }
    }
    changes
}

struct Viewer {
    addr: Recipient<BoardPush>,
    period: Period,
    top: usize,
    player: Option<PlayerId>,
    last: Vec<LeaderboardRow>,
    dropped: Arc<AtomicBool>,
}

/// See the module docs.
pub struct LeaderboardHub {
    board: Arc<dyn Leaderboard>,
    buffered: Option<Arc<BufferedLeaderboard>>,
    clock: Clock,
    metrics: Arc<Metrics>,
    viewers: HashMap<u64, Viewer>,
    dirty: HashSet<Period>,
    last: HashMap<Period, (String, Vec<LeaderboardRow>, u64)>,
    push_every: Duration,
    pushing: bool,
    last_push: Option<std::time::Instant>,
}

impl LeaderboardHub {
    pub fn new(
        board: Arc<dyn Leaderboard>,
        buffered: Option<Arc<BufferedLeaderboard>>,
        clock: Clock,
        metrics: Arc<Metrics>,
        push_every: Duration,
    ) -> LeaderboardHub {
        LeaderboardHub {
            board,
            buffered,
            clock,
            metrics,
            viewers: HashMap::new(),
            dirty: HashSet::new(),
            last: HashMap::new(),
            push_every,
            pushing: false,
            last_push: None,
        }
    }

    /// Pushes the dirty boards now if the last push is at least `push_every` ago
    /// (leading edge: a lone change goes out at once; a burst waits for the next slot).
    fn push_dirty(&mut self, ctx: &mut Context<Self>) {
        if self.pushing
            || self.dirty.is_empty()
            || self
                .last_push
                .is_some_and(|t| t.elapsed() < self.push_every)
        {
            return;
        }
        self.last_push = Some(std::time::Instant::now());
        let dirty = std::mem::take(&mut self.dirty);
        self.push(dirty, None, ctx);
    }

    fn stale(&self) -> bool {
        self.buffered.as_ref().is_some_and(|b| b.is_stale())
    }

    /// Reads the boards in `periods` and pushes to their viewers (all of them, or only `only`).
    fn push(&mut self, periods: HashSet<Period>, only: Option<u64>, ctx: &mut Context<Self>) {
        let wanted: Vec<(u64, Period, usize, Option<PlayerId>)> = self
            .viewers
            .iter()
            .filter(|(id, v)| periods.contains(&v.period) && only.is_none_or(|o| o == **id))
            .map(|(id, v)| (*id, v.period, v.top, v.player))
            .collect();
        if wanted.is_empty() {
            return;
        }
        self.pushing = true;
        let board = self.board.clone();
        let now = self.clock.now();
        let stale = self.stale();
        let fut = async move {
            let mut tops: HashMap<Period, Result<BoardRead, StoreError>> = HashMap::new();
            for period in periods {
                let n = wanted
                    .iter()
                    .filter(|w| w.1 == period)
                    .map(|w| w.2)
                    .max()
                    .unwrap_or(0);
                if n == 0 {
                    continue;
                }
                let bucket = period.bucket(now);
                let read = async {
                    let top = board.top(&bucket, n).await?;
                    let count = board.count(&bucket).await?;
                    Ok((bucket.clone(), top, count))
                };
                tops.insert(period, read.await);
            }
            let standings = futures_util::future::join_all(wanted.iter().map(|w| {
                let board = board.clone();
                let bucket = w.1.bucket(now);
                async move {
                    match w.3 {
                        Some(p) => (w.0, board.standing(&bucket, p).await.ok().flatten()),
                        None => (w.0, None),
                    }
                }
            }))
            .await;
            (
                tops,
                standings.into_iter().collect::<HashMap<_, _>>(),
                stale,
            )
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(|(tops, standings, stale), act, _| {
                    act.pushing = false;
                    act.deliver(tops, standings, stale);
                }),
        );
    }

    fn deliver(
        &mut self,
        tops: HashMap<Period, Result<BoardRead, StoreError>>,
        standings: HashMap<u64, Option<OwnStanding>>,
        stale: bool,
    ) {
        let mut fresh: HashMap<Period, (String, Vec<LeaderboardRow>, u64, bool)> = HashMap::new();
        for (period, read) in tops {
            match read {
                Ok((bucket, top, count)) => {
                    self.last
                        .insert(period, (bucket.id.clone(), top.clone(), count));
                    fresh.insert(period, (bucket.id, top, count, stale));
                }
                Err(e) => {
                    tracing::warn!(error = %e, period = period.as_str(), "leaderboard unreadable: serving the last snapshot");
                    if let Some((bucket, top, count)) = self.last.get(&period) {
                        fresh.insert(period, (bucket.clone(), top.clone(), *count, true));
                    }
                }
            }
        }
        let mut gone = Vec::new();
        let mut tops_json: HashMap<(Period, usize), String> = HashMap::new();
        for (id, v) in &mut self.viewers {
            let Some(you) = standings.get(id) else {
                continue;
            };
            let Some((bucket, top, count, stale)) = fresh.get(&v.period) else {
                continue;
            };
            let top: Vec<LeaderboardRow> = top.iter().take(v.top).cloned().collect();
            let top_json = tops_json
                .entry((v.period, top.len()))
                .or_insert_with(|| serde_json::to_string(&top).unwrap_or_else(|_| "[]".into()));
            let view = BoardView {
                board: "global".into(),
                period: v.period,
                bucket: bucket.clone(),
                changes: diff(&v.last, &top),
                you: you.clone(),
                players: *count,
                stale: *stale,
            };
            if v.addr
                .try_send(BoardPush(board_frame(&view, top_json)))
                .is_err()
            {
                // A full mailbox: this viewer does not keep up. Drop it, never buffer.
                v.dropped.store(true, Ordering::Release);
                gone.push(*id);
            } else {
                v.last = top;
                self.metrics.board_pushes.inc();
            }
        }
        for id in gone {
            self.viewers.remove(&id);
            self.metrics.dropped_messages.inc();
        }
    }
}

impl Actor for LeaderboardHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16_384);
        let mut was_stale = false;
        // Check four times per interval so a change waits at most a quarter-interval past its slot.
        ctx.run_interval(self.push_every / 4, move |act, ctx| {
            // Going stale or catching up changes what viewers should see.
            let stale = act.stale();
            if let Some(b) = &act.buffered {
                act.metrics.board_pending.set(b.pending() as i64);
            }
            if stale != was_stale {
                was_stale = stale;
                act.dirty.extend(Period::ALL);
            }
            act.push_dirty(ctx);
        });
    }
}

/// A viewer connected and chose a board.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ViewerJoined {
    pub id: u64,
    pub addr: Recipient<BoardPush>,
    pub period: Period,
    pub top: usize,
    pub player: Option<PlayerId>,
    /// Set by the hub when it drops the viewer; the connection then closes.
    pub dropped: Arc<AtomicBool>,
}

impl Handler<ViewerJoined> for LeaderboardHub {
    type Result = ();

    fn handle(&mut self, m: ViewerJoined, ctx: &mut Context<Self>) {
        self.viewers.insert(
            m.id,
            Viewer {
                addr: m.addr,
                period: m.period,
                top: m.top,
                player: m.player,
                last: Vec::new(),
                dropped: m.dropped,
            },
        );
        // The snapshot, at once.
        self.push(HashSet::from([m.period]), Some(m.id), ctx);
    }
}

/// A viewer left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ViewerLeft {
    pub id: u64,
}

impl Handler<ViewerLeft> for LeaderboardHub {
    type Result = ();

    fn handle(&mut self, m: ViewerLeft, _: &mut Context<Self>) {
        self.viewers.remove(&m.id);
    }
}

/// These players' scores changed (here or on another replica).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScoresMoved {
    pub players: Vec<PlayerId>,
}

impl Handler<ScoresMoved> for LeaderboardHub {
    type Result = ();

    fn handle(&mut self, _: ScoresMoved, ctx: &mut Context<Self>) {
        self.dirty.extend(Period::ALL);
        self.push_dirty(ctx);
    }
}

/// The number of connected viewers.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ViewerCount;

impl Handler<ViewerCount> for LeaderboardHub {
    type Result = usize;

    fn handle(&mut self, _: ViewerCount, _: &mut Context<Self>) -> usize {
        self.viewers.len()
    }
}

/// The last good snapshot of a period's board: `(bucket, top, players)`.
#[derive(Message)]
#[rtype(result = "Option<(String, Vec<LeaderboardRow>, u64)>")]
pub struct LastSnapshot {
    pub period: Period,
}

impl Handler<LastSnapshot> for LeaderboardHub {
    type Result = Option<(String, Vec<LeaderboardRow>, u64)>;

    fn handle(&mut self, m: LastSnapshot, _: &mut Context<Self>) -> Self::Result {
        self.last.get(&m.period).cloned()
    }
}

/// A good read made elsewhere (HTTP): kept as the period's last snapshot if it is larger.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RememberSnapshot {
    pub period: Period,
    pub bucket: String,
    pub top: Vec<LeaderboardRow>,
    pub players: u64,
}

impl Handler<RememberSnapshot> for LeaderboardHub {
    type Result = ();

    fn handle(&mut self, m: RememberSnapshot, _: &mut Context<Self>) {
        let keep = self
            .last
            .get(&m.period)
            .is_none_or(|(bucket, top, _)| *bucket != m.bucket || top.len() <= m.top.len());
        if keep {
            self.last.insert(m.period, (m.bucket, m.top, m.players));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(p: u128, rank: u64) -> LeaderboardRow {
        LeaderboardRow {
            rank,
            player: PlayerId(Uuid::from_u128(p)),
            name: String::new(),
            score: 0,
        }
    }

    #[test]
    fn diff_reports_entries_and_moves() {
        let before = [row(1, 1), row(2, 2), row(3, 3)];
        let after = [row(2, 1), row(1, 2), row(4, 3)];
        let d = diff(&before, &after);
        assert_eq!(d.entered, vec![PlayerId(Uuid::from_u128(4))]);
        assert_eq!(d.moved.len(), 2);
        assert_eq!(d.moved[0].from, 2);
        assert_eq!(d.moved[0].to, 1);
        assert_eq!(diff(&after, &after), BoardChanges::default());
    }
}
