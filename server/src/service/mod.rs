//! Use cases shared by several entry points (the play socket, HTTP
//! handlers, start-up): the handles they all work through ([`Services`]),
//! what follows a recorded answer or a score change ([`play`]), and the
//! model's guesses for the image pool ([`model`]), and the model registry
//! in use: which version serves, promotions, rollbacks ([`registry`]), and
//! training runs, on demand and in the background ([`trainer`]).

use std::sync::Arc;

use actix::Addr;
use emofy_inference::face::FaceDetector;

use crate::actors::coordinator::Coordinator;
use crate::actors::hub::LeaderboardHub;
use crate::actors::inference::InferencePool;
use crate::auth::TokenKey;
use crate::clock::Clock;
use crate::config::Config;
use crate::imaging::ImageSlots;
use crate::leaderboard::BufferedLeaderboard;
use crate::metrics::Metrics;
use crate::net::{AddressLimiter, ConnectionTracker, Proxies};
use crate::store::{
    GameRules, ImageStore, Leaderboard, LeaseStore, ModelStore, PlayerStore, ReviewStore,
    RoundStore, UploadStore,
};

pub mod model;
pub mod play;
pub mod registry;
pub mod review;
pub mod trainer;

/// Everything a request handler or session needs. Shared, immutable.
pub struct Services {
    pub config: Arc<Config>,
    pub rules: GameRules,
    pub players: Arc<dyn PlayerStore>,
    pub images: Arc<dyn ImageStore>,
    pub rounds: Arc<dyn RoundStore>,
    pub leaderboard: Arc<dyn Leaderboard>,
    /// The outage buffer in front of Redis (`None` with the in-process board).
    pub board_buffer: Option<Arc<BufferedLeaderboard>>,
    /// The live leaderboard hub of this replica.
    pub hub: Addr<LeaderboardHub>,
    pub tokens: TokenKey,
    pub metrics: Arc<Metrics>,
    pub coordinator: Addr<Coordinator>,
    /// The model's worker pool (`None` when the model is disabled).
    pub inference: Option<InferencePool>,
    pub uploads: Arc<dyn UploadStore>,
    /// Moderation: review queue, decisions, reliability table, audit log.
    pub review: Arc<dyn ReviewStore>,
    /// The model registry (which version serves on every replica).
    pub models: Arc<dyn ModelStore>,
    /// Named leases (the training lease).
    pub leases: Arc<dyn LeaseStore>,
    /// One model swap at a time on this replica (the registry watch and admin actions).
    pub model_swap: tokio::sync::Mutex<()>,
    /// The face detector for uploads.
    pub faces: Arc<FaceDetector>,
    /// Images decoded at once by every image endpoint; more get `503 busy`.
    pub image_slots: ImageSlots,
    /// Trusted reverse proxies: who a client is.
    pub proxies: Proxies,
    /// New guests per client address.
    pub guests: AddressLimiter,
    /// Sign-in attempts per client address.
    pub logins: AddressLimiter,
    /// Open connections per client address.
    pub connections: ConnectionTracker,
    pub clock: Clock,
}

impl Services {
    /// A session token for `player` acting as `role`, valid
    /// `auth.token_ttl_hours` from now, and when it expires.
    pub fn issue_token(
        &self,
        player: emofy_game::PlayerId,
        role: emofy_game::Role,
    ) -> (String, emofy_game::Millis) {
        let expires = self
            .clock
            .now()
            .plus(self.config.auth.token_ttl_hours.saturating_mul(3_600_000));
        let token = self.tokens.issue(&crate::auth::Claims {
            player,
            role,
            expires,
        });
        (token, expires)
    }
}
