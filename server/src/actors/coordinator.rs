//! The round coordinator.
//!
//! **Owns:** the image pool (open images ranked for selection, a cache of the
//! store), the gold images (moderator-verified, for gold rounds), the seen-image
//! set of every connected player (loaded from the store when they join), and
//! the address of every connected session (for score pushes and shutdown).
//! The pool also keeps the faces the crowd settled beyond doubt: a gold
//! round with no verified face left for the player checks them on one of
//! those instead (a "settled check").
//! The store stays the truth: the pool and the gold list are reloaded from it
//! every `pool_refresh_secs`, so votes cast on other replicas show up here;
//! so are the players banned since the last refresh, whose open sessions
//! here are closed (`bye` `banned`), wherever the ban was made.
//!
//! Each pick plans the round with the pure [`emofy_game::Schedule`]: a gold
//! round (on a schedule that starts high for new players and decays), a
//! decoy suggestion (a deliberately wrong class, never for new players), or
//! an exploring pick.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use emofy_game::{
    Emotion, ImageId, ImagePool, ImageStatus, Millis, PlayerId, PoolEntry, VoteCounts,
};

use crate::actors::inference::InferencePool;
use crate::config::TruthConfig;
use crate::dataset::demo_faces::Rng;
use crate::metrics::Metrics;
use crate::protocol::Suggestion;
use crate::store::{ImageStore, ReviewStore, ScoreChange, StoreError};

/// The image picked for a round, with the suggestion to show.
#[derive(Debug, Clone)]
pub struct Picked {
    pub image: ImageId,
    /// What the round shows: the model's cached guess, or a decoy.
    pub suggestion: Option<Suggestion>,
    /// The model's real guess (differs from the suggestion on decoy rounds).
    pub model_guess: Option<Emotion>,
    pub gold: bool,
    /// A gold round on a face the crowd settled (no moderator-verified one
    /// was left for the player).
    pub settled: bool,
    pub decoy: bool,
    /// A test-split face shown without the model's guess (blind evaluation).
    pub blind: bool,
}

/// A push from the coordinator to one session.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum SessionPush {
    /// The player's score changed because of someone else's answer.
    ScoreChanged {
        score: u64,
        delta: u32,
        reason: String,
        /// The face a settlement confirmed the player's answer on.
        image: Option<emofy_game::ImageId>,
    },
    /// The server is shutting down.
    ServerShutdown,
    /// The player may no longer play (a moderator banned them): close with this `bye` reason.
    Revoked { reason: &'static str },
}

struct Connected {
    seen: HashSet<ImageId>,
    sessions: HashMap<u64, Recipient<SessionPush>>,
}

/// See the module docs.
pub struct Coordinator {
    pool: ImagePool,
    suggestions: HashMap<ImageId, Suggestion>,
    players: HashMap<PlayerId, Connected>,
    images: Arc<dyn ImageStore>,
    review: Arc<dyn ReviewStore>,
    metrics: Arc<Metrics>,
    rng: Rng,
    spread: usize,
    refresh_every: Duration,
    refreshed_to: Millis,
    refreshing: bool,
    /// The serving model, for the cached guesses of images other replicas add.
    model: Option<InferencePool>,
    /// Images with a moderator-verified label.
    gold: Vec<ImageId>,
    truth: TruthConfig,
}

/// What a coordinator starts from.
pub struct CoordinatorSetup {
    /// The store's images at start-up.
    pub pool: ImagePool,
    /// The model's cached guess per image.
    pub suggestions: HashMap<ImageId, Suggestion>,
    /// When `pool` was read from the store.
    pub loaded_at: Millis,
    pub images: Arc<dyn ImageStore>,
    /// For the players banned since the last refresh.
    pub review: Arc<dyn ReviewStore>,
    pub metrics: Arc<Metrics>,
    /// Pick randomly among this many equally ranked images.
    pub spread: usize,
    /// Reload changed images this often (zero: never).
    pub refresh_every: Duration,
    /// Seed of the tie-breaking random numbers.
    pub seed: u64,
    /// The serving model (`None`: disabled).
    pub model: Option<InferencePool>,
    /// Gold images at start-up.
    pub gold: Vec<ImageId>,
    pub truth: TruthConfig,
}

impl Coordinator {
    pub fn new(s: CoordinatorSetup) -> Coordinator {
        Coordinator {
            pool: s.pool,
            suggestions: s.suggestions,
            players: HashMap::new(),
            images: s.images,
            review: s.review,
            metrics: s.metrics,
            rng: Rng::new(s.seed),
            spread: s.spread,
            refresh_every: s.refresh_every,
            refreshed_to: s.loaded_at,
            refreshing: false,
            model: s.model,
            gold: s.gold,
            truth: s.truth,
        }
    }

    /// Puts an entry in the pool, with the model's guess when the store has none yet.
    fn upsert(&mut self, mut e: PoolEntry) {
        if e.model_guess.is_none() {
            e.model_guess = self.suggestions.get(&e.image).map(|s| s.emotion);
        }
        self.pool.upsert(e);
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn push(&self, to: &Recipient<SessionPush>, msg: SessionPush) {
        if to.try_send(msg).is_err() {
            // Full mailbox (slow client) or a session that is already gone: drop, never buffer.
            self.metrics.dropped_messages.inc();
        }
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        // Look back a little: writes on other replicas may carry slightly older timestamps.
        let since = Millis(self.refreshed_to.0.saturating_sub(2_000));
        let started = crate::clock::now();
        let images = self.images.clone();
        let review = self.review.clone();
        type Refreshed = (Vec<PoolEntry>, Vec<ImageId>, Vec<PlayerId>);
        ctx.spawn(
            async move {
                let entries = images.pool_entries(since).await?;
                let gold = images.gold_images().await?;
                let banned = review.banned_since(since).await?;
                Ok((entries, gold, banned))
            }
            .into_actor(self)
            .map(move |res: Result<Refreshed, StoreError>, act, ctx| {
                act.refreshing = false;
                match res {
                    Ok((entries, gold, banned)) => {
                        act.close_banned(&banned);
                        act.gold = gold;
                        let missing: Vec<ImageId> = entries
                            .iter()
                            .filter(|e| {
                                e.status.is_open() && !act.suggestions.contains_key(&e.image)
                            })
                            .map(|e| e.image)
                            .collect();
                        for e in entries {
                            act.upsert(e);
                        }
                        act.refreshed_to = started;
                        act.load_suggestions(missing, ctx);
                    }
                    Err(e) => tracing::warn!(error = %e, "pool refresh failed"),
                }
            }),
        );
    }

    /// Closes the open sessions of players banned since the last refresh.
    fn close_banned(&mut self, banned: &[PlayerId]) {
        for p in banned {
            if let Some(c) = self.players.remove(p) {
                tracing::info!(player = %p, sessions = c.sessions.len(), "closing a banned player's sessions");
                for s in c.sessions.values() {
                    self.push(s, SessionPush::Revoked { reason: "banned" });
                }
            }
        }
    }

    /// Loads the serving model's cached guesses for images new to this
    /// replica (e.g. uploads through another one).
    fn load_suggestions(&mut self, ids: Vec<ImageId>, ctx: &mut Context<Self>) {
        let Some(model) = self.model.as_ref().map(|m| m.version()) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let images = self.images.clone();
        let fetch = async move {
            let mut found = Vec::new();
            for id in ids {
                if let Some(p) = images.prediction(id, &model).await? {
                    found.push((id, Suggestion::from(&p)));
                }
            }
            Ok::<_, StoreError>(found)
        };
        ctx.spawn(fetch.into_actor(self).map(|res, act, _| match res {
            Ok(found) => act.suggestions.extend(found),
            Err(e) => tracing::warn!(error = %e, "loading cached guesses failed"),
        }));
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(8192);
        let every = self.refresh_every;
        if !every.is_zero() {
            ctx.run_interval(every, |act, ctx| act.refresh(ctx));
        }
    }
}

/// A session joined as `player`; `seen` is what the store says they have been offered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionJoined {
    pub session: u64,
    pub player: PlayerId,
    pub seen: Vec<ImageId>,
    pub addr: Recipient<SessionPush>,
}

impl Handler<SessionJoined> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: SessionJoined, _: &mut Context<Self>) {
        let entry = self.players.entry(m.player).or_insert_with(|| Connected {
            seen: HashSet::new(),
            sessions: HashMap::new(),
        });
        entry.seen.extend(m.seen);
        entry.sessions.insert(m.session, m.addr);
    }
}

/// A session closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionLeft {
    pub session: u64,
    pub player: PlayerId,
}

impl Handler<SessionLeft> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: SessionLeft, _: &mut Context<Self>) {
        if let Some(c) = self.players.get_mut(&m.player) {
            c.sessions.remove(&m.session);
            if c.sessions.is_empty() {
                self.players.remove(&m.player);
            }
        }
    }
}

/// Pick the next image for a player and mark it seen. `None`: nothing left for them.
#[derive(Message)]
#[rtype(result = "Option<Picked>")]
pub struct PickImage {
    pub player: PlayerId,
    /// Rounds the player has answered (the gold and decoy schedules depend on it).
    pub played: u32,
}

impl Handler<PickImage> for Coordinator {
    type Result = Option<Picked>;

    fn handle(&mut self, m: PickImage, _: &mut Context<Self>) -> Option<Picked> {
        let pick = self.rng.next_u64();
        let (u_gold, u_decoy, u_explore) = (self.unit(), self.unit(), self.unit());
        let decoy_pick = self.rng.next_u64();
        let connected = self.players.get(&m.player)?;
        let gold_available =
            self.truth.gold && (!self.gold.is_empty() || self.pool.settled_len() > 0);
        let plan = self
            .truth
            .schedule
            .plan(m.played, gold_available, u_gold, u_decoy);
        let mut gold = None;
        if plan.gold {
            // A random unseen gold image.
            gold = emofy_game::selection::first_from(&self.gold, pick, |i| {
                !connected.seen.contains(i)
            });
        }
        let settled = match (plan.gold, gold) {
            (true, None) => self
                .pool
                .pick_settled(m.player, |i| connected.seen.contains(i), pick),
            _ => None,
        };
        let image = match gold.or(settled) {
            Some(i) => i,
            None => self.pool.select(
                m.player,
                |i| connected.seen.contains(i),
                self.spread,
                pick,
                u_explore < self.truth.explore,
            )?,
        };
        if let Some(c) = self.players.get_mut(&m.player) {
            c.seen.insert(image);
        }
        // Blind evaluation: no model guess shown or counted on test-split images.
        let blind = !emofy_game::training::shows_model_guess(image, self.truth.blind_test);
        let real = if blind {
            None
        } else {
            self.suggestions.get(&image).cloned()
        };
        let model_guess = real.as_ref().map(|s| s.emotion);
        let decoy = self.truth.decoys && plan.decoy && real.is_some();
        let suggestion = match real {
            Some(s) if decoy => Some(Suggestion {
                emotion: emofy_game::truth::decoy_class(s.emotion, decoy_pick),
                ..s
            }),
            other => other,
        };
        Some(Picked {
            image,
            suggestion,
            model_guess,
            gold: gold.is_some(),
            settled: settled.is_some(),
            decoy,
            blind,
        })
    }
}

/// An answer changed an image's votes and maybe its status.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImageTallied {
    pub image: ImageId,
    pub votes: VoteCounts,
    pub status: ImageStatus,
    pub posterior: [f64; emofy_game::EMOTION_COUNT],
}

impl Handler<ImageTallied> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: ImageTallied, _: &mut Context<Self>) {
        let Some(known) = self.pool.get(&m.image).copied() else {
            // A gold image (not in the pool) or one this replica does not know yet.
            return;
        };
        self.upsert(PoolEntry {
            votes: m.votes,
            status: m.status,
            leading: crate::store::truth::leading(Some(m.posterior)),
            ..known
        });
    }
}

/// A moderator verified an image's label (it becomes gold) or took it out of play.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImageModerated {
    pub image: ImageId,
    pub status: ImageStatus,
    pub gold: bool,
}

impl Handler<ImageModerated> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: ImageModerated, _: &mut Context<Self>) {
        if let Some(known) = self.pool.get(&m.image).copied() {
            self.pool.upsert(PoolEntry {
                status: m.status,
                ..known
            });
        }
        self.gold.retain(|i| *i != m.image);
        if m.gold && m.status != ImageStatus::Removed {
            self.gold.push(m.image);
        }
    }
}

/// Scores changed; tell the affected players' other sessions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScoresChanged {
    pub changes: Vec<ScoreChange>,
    /// The session that caused it (it reports its own points in its result).
    pub origin: u64,
}

impl Handler<ScoresChanged> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: ScoresChanged, _: &mut Context<Self>) {
        for c in &m.changes {
            let Some(conn) = self.players.get(&c.player) else {
                continue;
            };
            for (sid, addr) in &conn.sessions {
                if *sid != m.origin {
                    self.push(
                        addr,
                        SessionPush::ScoreChanged {
                            score: c.total,
                            delta: c.delta,
                            reason: c.reason.as_str().to_owned(),
                            image: emofy_game::plan::LedgerKey::settled_image(&c.key),
                        },
                    );
                }
            }
        }
    }
}

/// Tell every session the server is going down. Replies with how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ShutdownSessions;

impl Handler<ShutdownSessions> for Coordinator {
    type Result = usize;

    fn handle(&mut self, _: ShutdownSessions, _: &mut Context<Self>) -> usize {
        let mut n = 0;
        for conn in self.players.values() {
            for addr in conn.sessions.values() {
                self.push(addr, SessionPush::ServerShutdown);
                n += 1;
            }
        }
        n
    }
}

/// Counts of the pool: open images and known images.
#[derive(Message)]
#[rtype(result = "PoolCounts")]
pub struct PoolSize;

/// Reply to [`PoolSize`].
#[derive(Debug, Clone, Copy, MessageResponse)]
pub struct PoolCounts {
    pub open: usize,
    pub known: usize,
}

impl Handler<PoolSize> for Coordinator {
    type Result = PoolCounts;

    fn handle(&mut self, _: PoolSize, _: &mut Context<Self>) -> PoolCounts {
        PoolCounts {
            open: self.pool.open_len(),
            known: self.pool.len(),
        }
    }
}

/// A new image may be offered in rounds now (e.g. a contributor's upload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImageAdded {
    pub entry: PoolEntry,
    pub suggestion: Option<Suggestion>,
}

impl Handler<ImageAdded> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: ImageAdded, _: &mut Context<Self>) {
        if let Some(s) = m.suggestion {
            self.suggestions.insert(m.entry.image, s);
        }
        self.upsert(m.entry);
    }
}

/// An image must not be offered any more (its contributor deleted it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImageWithdrawn {
    pub image: ImageId,
}

impl Handler<ImageWithdrawn> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: ImageWithdrawn, _: &mut Context<Self>) {
        let known = self
            .pool
            .get(&m.image)
            .copied()
            .unwrap_or_else(|| PoolEntry::fresh(m.image, None));
        self.pool.upsert(PoolEntry {
            status: ImageStatus::Removed,
            ..known
        });
        self.gold.retain(|i| *i != m.image);
        self.suggestions.remove(&m.image);
    }
}

/// A model version took over: its cached guesses replace the old ones
/// (images it has not classified yet keep the previous model's guess).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SuggestionsLoaded {
    pub suggestions: HashMap<ImageId, Suggestion>,
}

impl Handler<SuggestionsLoaded> for Coordinator {
    type Result = ();

    fn handle(&mut self, m: SuggestionsLoaded, _: &mut Context<Self>) {
        self.suggestions.extend(m.suggestions);
    }
}
