//! A live leaderboard viewer: one actor per `/ws/leaderboard` connection.
//!
//! **Owns:** whether it has subscribed, its heartbeat clock, and the flag
//! the hub sets when it drops this viewer for not keeping up. The client
//! sends one `subscribe`; the hub then sends a snapshot and live updates as
//! `board` frames. Its mailbox is bounded (`leaderboard.viewer_mailbox`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use emofy_game::Period;

use crate::actors::hub::{BoardPush, ViewerJoined, ViewerLeft};
use crate::error::ErrorCode;
use crate::protocol::ViewerMessage;
use crate::service::Services;

static NEXT_VIEWER: AtomicU64 = AtomicU64::new(1);

/// See the module docs.
pub struct BoardViewer {
    id: u64,
    svc: Arc<Services>,
    subscribed: bool,
    last_frame: Instant,
    dropped: Arc<AtomicBool>,
    /// Set by the transport's frame guard when a frame header announced too many bytes.
    oversized: Arc<AtomicBool>,
}

impl BoardViewer {
    pub fn new(svc: Arc<Services>, oversized: Arc<AtomicBool>) -> BoardViewer {
        BoardViewer {
            id: NEXT_VIEWER.fetch_add(1, Ordering::Relaxed),
            svc,
            subscribed: false,
            last_frame: Instant::now(),
            dropped: Arc::new(AtomicBool::new(false)),
            oversized,
        }
    }

    fn error(&self, ctx: &mut ws::WebsocketContext<Self>, code: ErrorCode, detail: &str) {
        self.svc.metrics.client_error(code.as_str());
        ctx.text(
            serde_json::json!({
                "type": "error", "code": code, "message": code.message(), "detail": detail
            })
            .to_string(),
        );
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, reason: &str) {
        self.close_with(ctx, reason, ws::CloseCode::Policy);
    }

    fn close_with(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        reason: &str,
        code: ws::CloseCode,
    ) {
        ctx.text(serde_json::json!({"type": "bye", "reason": reason}).to_string());
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let msg = match ViewerMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return self.error(ctx, e.code, &e.detail),
        };
        let ViewerMessage::Subscribe {
            board,
            period,
            top,
            token,
        } = msg;
        if self.subscribed {
            return self.error(ctx, ErrorCode::AlreadyJoined, "already subscribed");
        }
        if board.as_deref().is_some_and(|b| b != "global") {
            return self.error(ctx, ErrorCode::NotFound, "the only board is \"global\"");
        }
        let top = top.unwrap_or(10);
        if !(1..=100).contains(&top) {
            return self.error(ctx, ErrorCode::InvalidMessage, "top must be 1..=100");
        }
        let player = match token {
            Some(t) => match self.svc.tokens.verify(&t, self.svc.clock.now()) {
                Ok(c) => Some(c.player),
                Err(_) => return self.error(ctx, ErrorCode::InvalidToken, "bad token"),
            },
            None => None,
        };
        self.subscribed = true;
        self.svc.hub.do_send(ViewerJoined {
            id: self.id,
            addr: ctx.address().recipient(),
            period: period.unwrap_or(Period::AllTime),
            top,
            player,
            dropped: self.dropped.clone(),
        });
    }
}

impl Actor for BoardViewer {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.svc.config.leaderboard.viewer_mailbox);
        self.svc.metrics.viewers_active.inc();
        let s = &self.svc.config.session;
        let (beat, timeout) = (
            Duration::from_secs(s.heartbeat_secs),
            Duration::from_secs(s.client_timeout_secs),
        );
        ctx.run_interval(Duration::from_millis(250), move |act, ctx| {
            if act.dropped.load(Ordering::Acquire) {
                return act.close(ctx, "too_slow");
            }
            if act.last_frame.elapsed() > timeout {
                act.close(ctx, "timeout");
            }
        });
        ctx.run_interval(beat, |_, ctx| ctx.ping(b""));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.svc.metrics.viewers_active.dec();
        self.svc.hub.do_send(ViewerLeft { id: self.id });
    }
}

impl Handler<BoardPush> for BoardViewer {
    type Result = ();

    fn handle(&mut self, m: BoardPush, ctx: &mut Self::Context) {
        ctx.text(m.0);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for BoardViewer {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        match item {
            Ok(ws::Message::Text(t)) => self.on_text(&t, ctx),
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) => {
                self.error(ctx, ErrorCode::BinaryNotSupported, "send JSON text")
            }
            Ok(ws::Message::Close(_)) => {
                ctx.close(None);
                ctx.stop();
            }
            Err(ws::ProtocolError::Overflow) => {
                self.error(ctx, ErrorCode::FrameTooLarge, "at most 4096 bytes a frame");
                self.close_with(ctx, "frame_too_large", ws::CloseCode::Size);
            }
            Err(_) if self.oversized.load(Ordering::Acquire) => {
                self.error(ctx, ErrorCode::FrameTooLarge, "at most 4096 bytes a frame");
                self.close_with(ctx, "frame_too_large", ws::CloseCode::Size);
            }
            Err(_) => self.close_with(ctx, "protocol_error", ws::CloseCode::Protocol),
            Ok(ws::Message::Continuation(_)) | Ok(ws::Message::Nop) => {}
        }
    }
}
