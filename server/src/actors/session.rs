//! One player's WebSocket connection.
//!
//! **Owns:** the connection's phase (waiting for `hello`, joined as a player),
//! the player's cached totals, the one open round with its timer, the
//! connection's rate limiter, and its heartbeat/idle clocks.
//!
//! With the board viewer, the only actor that knows the WebSocket transport
//! (actix-web-actors); moving to `actix-ws` changes them and `web::sockets`.
//!
//! Bounds: the actor's mailbox is bounded (`session.mailbox`) and every
//! producer uses `try_send`, dropping messages for a full mailbox. Outgoing
//! frames are produced only by the actor itself and drained by the HTTP
//! dispatcher, which stops polling the actor when the client stops reading,
//! so a slow client stalls only itself; the heartbeat closes a silent one.
//! Game requests are handled one at a time (`ctx.wait`), so a client cannot
//! pile up work either.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use actix_web_actors::ws;
use emofy_game::{
    DisplayName, Emotion, ImageStatus, Millis, PlayerId, PlayerTally, Role, Round, RoundError,
    RoundId,
};
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::actors::coordinator::{PickImage, SessionJoined, SessionLeft, SessionPush};
use crate::error::ErrorCode;
use crate::net::{ClientKey, TokenBucket};
use crate::protocol::{
    ClientMessage, ImageProgress, ImageRef, KnownView, PROTOCOL_VERSION, PlayerView, PointsView,
    ServerMessage, prompt_for,
};
use crate::service::Services;
use crate::store::{
    AnswerOutcome, AnswerRecord, OfferRecord, PlayerRecord, ScoreReason, StoreError,
};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

struct Joined {
    player: PlayerId,
    name: String,
    role: Role,
    tally: PlayerTally,
}

struct OpenRound {
    round: Round,
    timer: SpawnHandle,
    plan: RoundExtras,
}

/// What the player is not told until they answer.
#[derive(Debug, Clone, Copy)]
struct RoundExtras {
    /// The model's real guess (differs from the shown suggestion on decoy rounds).
    model_guess: Option<Emotion>,
    decoy: bool,
    gold: bool,
    /// A gold round on a face the crowd settled.
    settled: bool,
    /// A test-split face: no model guess shown (blind evaluation labels).
    blind: bool,
}

/// See the module docs.
pub struct PlayerSession {
    id: u64,
    svc: Arc<Services>,
    joined: Option<Joined>,
    round: Option<OpenRound>,
    last_answered: Option<RoundId>,
    last_timed_out: Option<RoundId>,
    bucket: TokenBucket,
    violations: u32,
    last_limit_notice: Option<Instant>,
    last_board: Option<Instant>,
    /// A board is scheduled for the end of the current throttle interval.
    board_pending: bool,
    last_frame: Instant,
    last_game_message: Instant,
    started: Instant,
    closing: bool,
    /// `session{id, player}`: every event of this connection is logged inside it.
    span: tracing::Span,
    /// The client's network address (guest creation is limited per address).
    client: Option<ClientKey>,
    /// Set by the transport's frame guard when a frame header announced too many bytes.
    oversized: Arc<AtomicBool>,
}

impl PlayerSession {
    pub fn new(
        svc: Arc<Services>,
        client: Option<ClientKey>,
        oversized: Arc<AtomicBool>,
    ) -> PlayerSession {
        let s = &svc.config.session;
        let bucket = TokenBucket::new(f64::from(s.rate_per_sec), s.rate_burst);
        let now = Instant::now();
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        PlayerSession {
            span: tracing::info_span!("session", id, player = tracing::field::Empty),
            id,
            svc,
            joined: None,
            round: None,
            last_answered: None,
            last_timed_out: None,
            bucket,
            violations: 0,
            last_limit_notice: None,
            last_board: None,
            board_pending: false,
            last_frame: now,
            last_game_message: now,
            started: now,
            closing: false,
            client,
            oversized,
        }
    }

    /// Runs `fut` (inside this session's span), holding back other events of this
    /// session until it is done, then `then` with its output.
    fn wait_for<T: 'static>(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        fut: impl std::future::Future<Output = T> + 'static,
        then: impl FnOnce(&mut Self, T, &mut ws::WebsocketContext<Self>) + 'static,
    ) {
        let span = self.span.clone();
        ctx.wait(
            fut.instrument(span.clone())
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let _entered = span.enter();
                    then(act, res, ctx)
                }),
        );
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, msg: &ServerMessage) {
        if let ServerMessage::Error { code, .. } = msg {
            self.svc.metrics.client_error(code.as_str());
        }
        ctx.text(msg.to_json());
    }

    fn error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        code: ErrorCode,
        detail: Option<&str>,
        round: Option<RoundId>,
    ) {
        tracing::debug!(code = code.as_str(), detail, "client error");
        self.send(ctx, &ServerMessage::error(code, detail, round));
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: &str, code: ws::CloseCode) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.send(
            ctx,
            &ServerMessage::Bye {
                reason: reason.to_owned(),
            },
        );
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn now(&self) -> Millis {
        self.svc.clock.now()
    }

    fn tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        let s = &self.svc.config.session;
        if self.last_frame.elapsed() > Duration::from_secs(s.client_timeout_secs) {
            tracing::info!("client timed out (no frames or pongs)");
            self.close(ctx, "timeout", ws::CloseCode::Away);
            return;
        }
        if self.joined.is_none()
            && self.started.elapsed() > Duration::from_secs(s.hello_timeout_secs)
        {
            self.close(ctx, "hello_timeout", ws::CloseCode::Policy);
            return;
        }
        if self.joined.is_some()
            && self.last_game_message.elapsed() > Duration::from_secs(s.idle_timeout_secs)
        {
            self.close(ctx, "idle", ws::CloseCode::Normal);
            return;
        }
        ctx.ping(b"");
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let received = Instant::now();
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return self.error(ctx, e.code, Some(&e.detail), None),
        };
        self.last_game_message = received;
        match msg {
            ClientMessage::Hello { v, name, token } => self.on_hello(v, name, token, ctx),
            ClientMessage::Next => self.on_next(ctx),
            ClientMessage::Answer { round, emotion } => {
                self.on_answer(round, emotion, received, ctx)
            }
            ClientMessage::Leaderboard => self.send_leaderboard(ctx),
        }
    }

    fn on_hello(
        &mut self,
        v: u32,
        name: Option<String>,
        token: Option<String>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if self.joined.is_some() {
            return self.error(ctx, ErrorCode::AlreadyJoined, None, None);
        }
        if v != PROTOCOL_VERSION {
            return self.error(
                ctx,
                ErrorCode::UnsupportedVersion,
                Some(&format!("this server speaks v{PROTOCOL_VERSION}")),
                None,
            );
        }
        let svc = self.svc.clone();
        let now = self.now();
        let client = self.client;
        enum Join {
            Ok(PlayerRecord, bool, Vec<emofy_game::ImageId>),
            Refused(ErrorCode, String),
            Failed(StoreError),
        }
        let fut = async move {
            let (player, resumed) = match (token, name) {
                (Some(token), _) => match svc.tokens.verify(&token, now) {
                    Ok(claims) => match svc.players.player(claims.player).await {
                        Ok(Some(p)) => {
                            // A banned player does not play on (checked against the store, not the token).
                            match crate::store::is_banned(svc.review.as_ref(), p.id).await {
                                Ok(true) => {
                                    return Join::Refused(
                                        ErrorCode::Banned,
                                        "a moderator banned this player".into(),
                                    );
                                }
                                Ok(false) => (p, true),
                                Err(e) => return Join::Failed(e),
                            }
                        }
                        Ok(None) => {
                            return Join::Refused(ErrorCode::InvalidToken, "unknown player".into());
                        }
                        Err(e) => return Join::Failed(e),
                    },
                    Err(e) => return Join::Refused(ErrorCode::InvalidToken, e.to_string()),
                },
                (None, Some(name)) => match DisplayName::parse(&name) {
                    Ok(_) if !svc.guests.allow(client) => {
                        return Join::Refused(
                            ErrorCode::RateLimited,
                            "too many new players from your network; try again later, or resume with your token".into(),
                        );
                    }
                    Ok(name) => {
                        match svc
                            .players
                            .create_player(
                                PlayerId(Uuid::new_v4()),
                                name.as_str(),
                                Role::Player,
                                now,
                            )
                            .await
                        {
                            Ok(p) => (p, false),
                            Err(e) => return Join::Failed(e),
                        }
                    }
                    Err(e) => return Join::Refused(ErrorCode::InvalidName, e.to_string()),
                },
                (None, None) => {
                    return Join::Refused(
                        ErrorCode::InvalidMessage,
                        "hello needs a name or a token".into(),
                    );
                }
            };
            match svc.rounds.seen_images(player.id).await {
                Ok(seen) => Join::Ok(player, resumed, seen),
                Err(e) => Join::Failed(e),
            }
        };
        self.wait_for(ctx, fut, |act, res, ctx| match res {
            Join::Ok(player, resumed, seen) => act.on_joined(player, resumed, seen, ctx),
            Join::Refused(code, detail) => act.error(ctx, code, Some(&detail), None),
            Join::Failed(e) => {
                tracing::warn!(error = %e, "join failed");
                act.error(ctx, ErrorCode::TryAgain, None, None);
            }
        });
    }

    fn on_joined(
        &mut self,
        p: PlayerRecord,
        resumed: bool,
        seen: Vec<emofy_game::ImageId>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let (token, expires) = self.svc.issue_token(p.id, p.role);
        self.svc.coordinator.do_send(SessionJoined {
            session: self.id,
            player: p.id,
            seen,
            addr: ctx.address().recipient(),
        });
        self.span.record("player", tracing::field::display(p.id));
        tracing::info!(resumed, "player joined");
        self.send(
            ctx,
            &ServerMessage::Welcome {
                v: PROTOCOL_VERSION,
                player: PlayerView {
                    id: p.id,
                    name: p.name.clone(),
                    role: p.role,
                },
                token,
                token_expires_ms: expires,
                resumed,
                score: p.tally.score,
                streak: p.tally.streak,
                best_streak: p.tally.best_streak,
                round_seconds: self.svc.config.game.round_seconds,
            },
        );
        self.joined = Some(Joined {
            player: p.id,
            name: p.name,
            role: p.role,
            tally: p.tally,
        });
        self.send_leaderboard(ctx);
    }

    fn close_open_round(&mut self, state: &'static str, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(mut open) = self.round.take() {
            ctx.cancel_future(open.timer);
            // Persist unless answered (the store only closes rounds still marked offered).
            let answered = matches!(open.round.state(), emofy_game::RoundState::Answered { .. });
            open.round.abandon();
            if !answered {
                self.persist_close(open.round.id, state, self.now());
            }
        }
    }

    /// Records in the store, in the background, that a round closed without an answer.
    fn persist_close(&self, id: RoundId, state: &'static str, at: Millis) {
        let rounds = self.svc.rounds.clone();
        actix::spawn(async move {
            if let Err(e) = rounds.close_round(id, state, at).await {
                tracing::warn!(round = %id, error = %e, "could not close round");
            }
        });
    }

    fn on_next(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(j) = &self.joined else {
            return self.error(ctx, ErrorCode::NotJoined, None, None);
        };
        let player = j.player;
        let played = j.tally.answers;
        self.close_open_round("abandoned", ctx);
        let svc = self.svc.clone();
        let limit_ms = svc.config.game.round_seconds * 1000;
        let clock = svc.clock;
        let fut = async move {
            // A conflict means another replica offered this image to the player already: pick again.
            for _ in 0..5 {
                let picked = match svc.coordinator.send(PickImage { player, played }).await {
                    Ok(Some(p)) => p,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(StoreError::Unavailable(e.to_string())),
                };
                let (image, shown) = (picked.image, picked.suggestion);
                let extras = RoundExtras {
                    model_guess: picked.model_guess,
                    decoy: picked.decoy,
                    gold: picked.gold,
                    settled: picked.settled,
                    blind: picked.blind,
                };
                // The model's cached guess, or none when no model has classified the image (never a made-up one).
                let round = Round::offer(
                    RoundId(Uuid::new_v4()),
                    player,
                    image,
                    shown.as_ref().map(|s| s.emotion),
                    clock.now(),
                    limit_ms,
                );
                let offer = OfferRecord {
                    round: round.id,
                    player,
                    image,
                    shown: round.shown,
                    offered: round.offered_at,
                    deadline: round.deadline,
                };
                match svc.rounds.record_offer(offer).await {
                    Ok(()) => return Ok(Some((round, shown, extras))),
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            Ok(None)
        };
        self.wait_for(ctx, fut, |act, res, ctx| match res {
            Ok(Some((round, shown, extras))) => act.start_round(round, shown, extras, ctx),
            Ok(None) => act.send(
                ctx,
                &ServerMessage::NoRound {
                    reason: "all_caught_up".into(),
                    retry_after_ms: 10_000,
                },
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not offer a round");
                act.error(ctx, ErrorCode::TryAgain, None, None);
            }
        });
    }

    fn start_round(
        &mut self,
        round: Round,
        shown: Option<crate::protocol::Suggestion>,
        plan: RoundExtras,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        if self.closing {
            return;
        }
        let limit = round.deadline.since(round.offered_at);
        // Fire just after the deadline: answers exactly at the deadline still count.
        let timer = ctx.run_later(Duration::from_millis(limit + 5), |act, ctx| {
            act.on_round_timer(ctx)
        });
        self.svc.metrics.rounds_offered.inc();
        crate::metrics::Metrics::count(
            &self.svc.metrics.round_kinds,
            if plan.decoy {
                "decoy"
            } else if plan.gold {
                "gold"
            } else if plan.settled {
                "settled"
            } else {
                "plain"
            },
        );
        // Logs never present a decoy as the model's output.
        tracing::debug!(round = %round.id, image = %round.image, decoy = plan.decoy, "round offered");
        self.send(
            ctx,
            &ServerMessage::Round {
                round: round.id,
                image: ImageRef {
                    id: round.image,
                    url: format!("/images/{}", round.image),
                },
                prompt: prompt_for(shown.as_ref(), plan.blind),
                suggestion: shown,
                offered_ms: round.offered_at,
                deadline_ms: round.deadline,
                time_limit_ms: limit,
            },
        );
        self.round = Some(OpenRound { round, timer, plan });
    }

    fn on_round_timer(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let now = self.now();
        let Some(open) = self.round.as_mut() else {
            return;
        };
        if open.round.expire(now) {
            let id = open.round.id;
            self.round = None;
            self.last_timed_out = Some(id);
            self.svc.metrics.rounds_timed_out.inc();
            self.persist_close(id, "timed_out", now);
            self.send(ctx, &ServerMessage::RoundTimeout { round: id });
        }
    }

    fn on_answer(
        &mut self,
        round_id: RoundId,
        emotion: Emotion,
        received: Instant,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(joined) = &self.joined else {
            return self.error(ctx, ErrorCode::NotJoined, None, None);
        };
        let player = joined.player;
        let now = self.now();
        let Some(open) = self.round.as_mut().filter(|o| o.round.id == round_id) else {
            let code = if self.last_answered == Some(round_id) {
                ErrorCode::AlreadyAnswered
            } else if self.last_timed_out == Some(round_id) {
                ErrorCode::RoundExpired
            } else {
                ErrorCode::RoundNotOffered
            };
            self.svc.metrics.answer("rejected");
            return self.error(ctx, code, None, Some(round_id));
        };
        let before = open.round.clone();
        let plan = open.plan;
        let accepted = match open.round.answer(emotion, now) {
            Ok(a) => a,
            Err(e) => {
                let code = match e {
                    RoundError::AlreadyAnswered => ErrorCode::AlreadyAnswered,
                    RoundError::TooLate | RoundError::Abandoned => ErrorCode::RoundExpired,
                };
                self.svc.metrics.answer("rejected");
                self.last_timed_out = Some(round_id);
                self.close_open_round("timed_out", ctx);
                return self.error(ctx, code, None, Some(round_id));
            }
        };
        let record = AnswerRecord {
            round: round_id,
            player,
            image: before.image,
            emotion,
            shown: before.shown,
            decoy: plan.decoy,
            model_guess: plan.model_guess,
            response_ms: accepted.response_ms,
            time_limit_ms: accepted.time_limit_ms,
            at: now,
        };
        let svc = self.svc.clone();
        let session = self.id;
        let image = before.image;
        let fut = async move {
            let outcome = svc.rounds.record_answer(record, &svc.rules).await?;
            crate::service::play::after_answer(&svc, image, &outcome, true, session).await;
            Ok::<AnswerOutcome, StoreError>(outcome)
        };
        self.wait_for(ctx, fut, move |act, res, ctx| {
            act.on_answer_stored(before, plan, emotion, received, res, ctx)
        });
    }

    fn on_answer_stored(
        &mut self,
        before: Round,
        plan: RoundExtras,
        emotion: Emotion,
        received: Instant,
        res: Result<AnswerOutcome, StoreError>,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let round_id = before.id;
        match res {
            Ok(outcome) => {
                if let Some(open) = self.round.take() {
                    ctx.cancel_future(open.timer);
                }
                self.last_answered = Some(round_id);
                let Some(j) = self.joined.as_mut() else {
                    return;
                };
                j.tally = outcome.tally;
                let settlement: u32 = outcome
                    .changes
                    .iter()
                    .filter(|c| c.player == j.player && c.reason == ScoreReason::Consensus)
                    .map(|c| c.delta)
                    .sum();
                if outcome.transition != emofy_game::Transition::None {
                    self.svc.metrics.image_closed(outcome.status.name());
                }
                self.svc.metrics.answer("accepted");
                if !outcome.counted {
                    self.svc.metrics.uncounted_answers.inc();
                }
                let msg = ServerMessage::Result {
                    round: round_id,
                    emotion,
                    agreement: outcome.award.agreement,
                    pending: outcome.pending(),
                    points: PointsView {
                        base: outcome.award.base,
                        speed_bonus: outcome.award.speed_bonus,
                        multiplier_percent: outcome.award.multiplier_percent,
                        total: outcome.award.points,
                    },
                    settlement,
                    gold: outcome.gold,
                    settled: match outcome.status {
                        ImageStatus::Retired { label } if plan.settled => Some(label),
                        _ => None,
                    },
                    known: outcome.known.map(|k| KnownView {
                        label: k.label,
                        source: k.source.as_str().to_owned(),
                    }),
                    suggestion_was_test: plan.decoy,
                    score: outcome.tally.score,
                    streak: outcome.tally.streak,
                    best_streak: outcome.tally.best_streak,
                    image: ImageProgress {
                        votes: outcome.votes.total(),
                        status: outcome.status.name().to_owned(),
                        consensus: match outcome.status {
                            ImageStatus::Retired { label } => Some(label),
                            _ => None,
                        },
                    },
                };
                tracing::debug!(round = %round_id, image = %before.image, points = outcome.award.points, "answer recorded");
                self.send(ctx, &msg);
                self.svc
                    .metrics
                    .answer_seconds
                    .observe(received.elapsed().as_secs_f64());
                // A fresh board with results, at most every `session.leaderboard_every_ms`;
                // a result inside the interval gets one board at its end (so the last
                // results of a quick run are never left off).
                let every = Duration::from_millis(self.svc.config.session.leaderboard_every_ms);
                match self.last_board.map(|t| t.elapsed()) {
                    Some(since) if since < every => {
                        if !self.board_pending {
                            self.board_pending = true;
                            ctx.run_later(every - since, |act, ctx| {
                                act.board_pending = false;
                                if !act.closing {
                                    act.send_leaderboard(ctx);
                                }
                            });
                        }
                    }
                    _ => self.send_leaderboard(ctx),
                }
            }
            Err(e) => {
                let code = match &e {
                    StoreError::Conflict(_) => ErrorCode::AlreadyAnswered,
                    StoreError::RoundClosed(_) => ErrorCode::RoundExpired,
                    StoreError::NotFound(_) => ErrorCode::RoundNotOffered,
                    StoreError::Unavailable(_) | StoreError::Corrupt(_) => ErrorCode::TryAgain,
                };
                if code == ErrorCode::TryAgain {
                    // Nothing was recorded: reopen the round so the player can resend before the deadline.
                    tracing::warn!(round = %round_id, error = %e, "answer not stored");
                    if let Some(open) = self.round.as_mut() {
                        open.round = before;
                        open.plan = plan;
                    }
                } else if let Some(open) = self.round.take() {
                    ctx.cancel_future(open.timer);
                }
                self.svc.metrics.answer("failed");
                self.error(ctx, code, None, Some(round_id));
            }
        }
    }

    fn send_leaderboard(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.last_board = Some(Instant::now());
        let board = self.svc.leaderboard.clone();
        let me = self.joined.as_ref().map(|j| j.player);
        let now = self.now();
        let fut = async move {
            let bucket = emofy_game::Period::AllTime.bucket(now);
            let top = board.top(&bucket, 10).await?;
            let you = match me {
                Some(p) => board.standing(&bucket, p).await?,
                None => None,
            };
            let players = board.count(&bucket).await?;
            Ok::<_, StoreError>(ServerMessage::Leaderboard {
                board: "all_time".into(),
                top,
                you,
                players,
            })
        };
        self.wait_for(ctx, fut, |act, res, ctx| match res {
            Ok(msg) => act.send(ctx, &msg),
            Err(e) => {
                tracing::warn!(error = %e, "leaderboard unavailable");
                act.error(ctx, ErrorCode::TryAgain, Some("leaderboard"), None);
            }
        });
    }

    fn limited(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        if self.bucket.take() {
            self.violations = 0;
            return false;
        }
        self.violations += 1;
        if self.violations >= self.svc.config.session.max_violations {
            self.close(ctx, "rate_limited", ws::CloseCode::Policy);
            return true;
        }
        // One notice per second at most, so the limiter does not amplify a flood.
        let notify = self
            .last_limit_notice
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if notify {
            self.last_limit_notice = Some(Instant::now());
            self.error(ctx, ErrorCode::RateLimited, None, None);
        }
        true
    }
}

impl Actor for PlayerSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.svc.config.session.mailbox);
        self.svc.metrics.connections_total.inc();
        self.svc.metrics.sessions_active.inc();
        let every = Duration::from_secs(self.svc.config.session.heartbeat_secs);
        ctx.run_interval(every, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.close_open_round("abandoned", ctx);
        self.svc.metrics.sessions_active.dec();
        if let Some(j) = &self.joined {
            tracing::info!(name = %j.name, role = j.role.as_str(), "player left");
            self.svc.coordinator.do_send(SessionLeft {
                session: self.id,
                player: j.player,
            });
        }
    }
}

impl Handler<SessionPush> for PlayerSession {
    type Result = ();

    fn handle(&mut self, msg: SessionPush, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _entered = span.enter();
        match msg {
            SessionPush::ScoreChanged {
                score,
                delta,
                reason,
                image,
            } => {
                if let Some(j) = self.joined.as_mut() {
                    j.tally.score = j.tally.score.max(score);
                }
                self.send(
                    ctx,
                    &ServerMessage::Score {
                        score,
                        delta,
                        reason,
                        image,
                    },
                );
            }
            SessionPush::ServerShutdown => {
                self.close(ctx, "server_shutdown", ws::CloseCode::Restart)
            }
            SessionPush::Revoked { reason } => self.close(ctx, reason, ws::CloseCode::Policy),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for PlayerSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_frame = Instant::now();
        if self.closing {
            return;
        }
        let msg = match item {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                self.error(ctx, ErrorCode::FrameTooLarge, None, None);
                self.close(ctx, "frame_too_large", ws::CloseCode::Size);
                return;
            }
            Err(_) if self.oversized.load(Ordering::Acquire) => {
                self.error(ctx, ErrorCode::FrameTooLarge, None, None);
                self.close(ctx, "frame_too_large", ws::CloseCode::Size);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "protocol error");
                self.close(ctx, "protocol_error", ws::CloseCode::Protocol);
                return;
            }
        };
        match msg {
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Pong(_) => {}
            ws::Message::Text(text) => {
                if !self.limited(ctx) {
                    self.on_text(&text, ctx);
                }
            }
            ws::Message::Binary(_) => {
                if !self.limited(ctx) {
                    self.error(ctx, ErrorCode::BinaryNotSupported, None, None);
                }
            }
            ws::Message::Continuation(_) => {
                self.error(
                    ctx,
                    ErrorCode::InvalidMessage,
                    Some("fragmented messages are not supported"),
                    None,
                );
            }
            ws::Message::Close(_) => {
                self.closing = true;
                ctx.close(None);
                ctx.stop();
            }
            ws::Message::Nop => {}
        }
    }
}
