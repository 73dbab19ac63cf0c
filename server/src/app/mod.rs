//! Building and running the application: stores ([`stores`]), actors, the
//! HTTP server, shutdown.

pub mod stores;

pub use crate::store::Stores;
pub use stores::{mongo_options, open_embedded, open_stores, sqlite_options};

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use actix::Actor;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use emofy_game::ImagePool;
use emofy_inference::Classifier;
use emofy_inference::mini_xception::MiniXception;
use tokio::sync::watch;
use utoipa_actix_web::AppExt;

use crate::actors::coordinator::{Coordinator, CoordinatorSetup, ShutdownSessions};
use crate::actors::hub::{LeaderboardHub, ScoresMoved};
use crate::actors::inference::InferencePool;
use crate::auth::{AuthError, TokenKey};
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::imaging::ImageSlots;
use crate::leaderboard::redis::RedisLeaderboard;
use crate::leaderboard::{BufferedLeaderboard, MemoryLeaderboard};
use crate::metrics::Metrics;
use crate::net::{AddressLimiter, ConnectionTracker, Proxies};
use crate::service::Services;
use crate::service::model::{classify_missing, suggestions_of};
use crate::store::{ImageStore, Leaderboard, StoreError};
use crate::web::RouteTable;
use crate::web::openapi::OpenApiJson;
use emofy_inference::face::FaceDetector;

/// Errors building or running the application.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Server(std::io::Error),
    #[error("demo images: {0}")]
    Demo(String),
    #[error("model: {0}")]
    Model(#[from] emofy_inference::InferenceError),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("model registry: {0}")]
    Registry(String),
    #[error("classifying the pool: {0}")]
    Classify(#[from] crate::service::model::ModelError),
}

/// A running (not yet awaited) application.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on its own address (`metrics.bind`), with its port.
    metrics_server: Option<(Server, u16)>,
    services: Arc<Services>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
}

/// Asks a running application to shut down gracefully.
#[derive(Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

impl Application {
    /// Opens stores, seeds the demo pool if the store is empty, starts the
    /// actors and binds the HTTP server (port 0 picks a free port). Must run
    /// inside an actix system.
    pub async fn build(config: Config) -> Result<Application, AppError> {
        config.validate()?;
        for note in &config.deprecations {
            tracing::warn!(note = %note, "deprecated configuration key");
        }
        let rules = config.rules()?;
        // Bind first: the most common start-up failure (port in use) then happens before any actor starts.
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).map_err(|source| AppError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener.local_addr().map_err(AppError::Server)?.port();

        let stores = open_stores(&config).await?;
        let tokens = match &config.auth.token_secret {
            Some(secret) => TokenKey::from_secret(secret)?,
            None => TokenKey::load_or_create(&config.data_dir)?,
        };
        seed_demo_images(&config, stores.images.as_ref()).await?;
        let metrics = Arc::new(Metrics::new());
        let clock = Clock::new();
        let (leaderboard, board_buffer) = open_leaderboard(&config, &stores, &clock).await?;
        let hub = LeaderboardHub::new(
            leaderboard.clone(),
            board_buffer.clone(),
            clock,
            metrics.clone(),
            Duration::from_millis(config.leaderboard.push_every_ms),
        )
        .start();
        if let Some(buffer) = &board_buffer {
            actix_web::rt::spawn(
                buffer
                    .clone()
                    .run_retries(Duration::from_millis(config.leaderboard.retry_every_ms)),
            );
        }
        if let Some(url) = &config.redis.url {
            let hub = hub.clone();
            let channel = format!("{}:events", config.redis.prefix);
            actix_web::rt::spawn(crate::leaderboard::redis::follow_events(
                url.clone(),
                channel,
                Duration::from_millis(config.redis.reconnect_ms),
                move |players| hub.do_send(ScoresMoved { players }),
            ));
        }
        let serving = if config.model.enabled {
            Some(
                crate::service::registry::start_up(stores.models.as_ref(), &config)
                    .await
                    .map_err(|e| AppError::Registry(e.to_string()))?,
            )
        } else {
            None
        };
        let inference = serving.map(|model| {
            let workers = match config.model.workers {
                0 => InferencePool::default_workers(),
                n => n,
            };
            InferencePool::start(model, workers, config.model.queue)
        });
        let suggestions = match &inference {
            Some(pool) => {
                classify_missing(pool, stores.images.as_ref()).await?;
                suggestions_of(&pool.version(), stores.images.as_ref()).await?
            }
            None => HashMap::new(),
        };
        let loaded_at = crate::clock::now();
        let mut pool = ImagePool::with_checks(rules.consensus, config.truth.settled_checks);
        for e in stores.images.pool_entries(emofy_game::Millis(0)).await? {
            pool.upsert(e);
        }
        let gold = stores.images.gold_images().await?;
        tracing::info!(
            open = pool.open_len(),
            images = pool.len(),
            "image pool loaded"
        );
        let coordinator = Coordinator::new(CoordinatorSetup {
            pool,
            suggestions,
            loaded_at,
            images: stores.images.clone(),
            review: stores.review.clone(),
            metrics: metrics.clone(),
            spread: config.game.selection_spread,
            refresh_every: Duration::from_secs(config.game.pool_refresh_secs),
            seed: rand::random(),
            model: inference.clone(),
            gold,
            truth: config.truth.clone(),
        })
        .start();
        crate::actors::truth::TruthPassActor::new(
            stores.review.clone(),
            metrics.clone(),
            clock,
            Duration::from_secs(config.truth.pass_every_secs),
            config.truth.pass_labels,
            config.truth.trust,
        )
        .start();
        let (_, openapi) = App::new()
            .into_utoipa_app()
            .configure(crate::web::routes)
            .split_for_parts();
        let openapi = crate::web::openapi::finish(openapi);
        let config = Arc::new(config);
        let services = Arc::new(Services {
            config: config.clone(),
            rules,
            players: stores.players,
            images: stores.images,
            rounds: stores.rounds,
            leaderboard,
            board_buffer,
            hub,
            tokens,
            metrics,
            coordinator,
            inference,
            uploads: stores.uploads,
            review: stores.review,
            models: stores.models,
            leases: stores.leases,
            model_swap: tokio::sync::Mutex::new(()),
            faces: Arc::new(FaceDetector::bundled(config.upload.min_face_score)?),
            image_slots: ImageSlots::new(
                config.imaging.concurrent,
                config.imaging.retry_after_secs,
            ),
            proxies: Proxies::new(&config.net),
            guests: AddressLimiter::new(&config.net),
            logins: AddressLimiter::logins(&config.net),
            connections: ConnectionTracker::new(&config.net),
            clock,
        });
        let openapi_json = web::Data::new(OpenApiJson(
            serde_json::to_string(&openapi)
                .map_err(|e| AppError::Server(std::io::Error::other(e)))?,
        ));
        let data = web::Data::from(services.clone());
        let routes = Arc::new(RouteTable::from_openapi(&openapi));
        let hygiene = crate::web::hygiene::Hygiene {
            body_timeout: Duration::from_secs(config.net.body_timeout_secs),
        };
        let tracker = services.connections.clone();
        let mut server = HttpServer::new(move || {
            let hygiene = hygiene.clone();
            let routes = routes.clone();
            App::new()
                .app_data(data.clone())
                .app_data(openapi_json.clone())
                .configure(crate::web::extractor_config)
                .wrap_fn(move |req, srv| crate::web::hygiene::around(&hygiene, req, srv))
                .into_utoipa_app()
                .configure(crate::web::routes)
                .into_app()
                .default_service(web::to(move |req: actix_web::HttpRequest| {
                    let routes = routes.clone();
                    async move {
                        Err::<actix_web::HttpResponse, _>(crate::web::errors::no_route(
                            &req, &routes,
                        ))
                    }
                }))
        })
        .on_connect(move |conn, ext| {
            let peer = conn
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .and_then(|s| s.peer_addr().ok());
            ext.insert(tracker.open(peer));
        })
        .client_request_timeout(Duration::from_millis(config.net.header_timeout_ms))
        .keep_alive(Duration::from_secs(config.net.keep_alive_secs))
        .disable_signals()
        .shutdown_timeout(config.shutdown_grace_secs);
        if config.workers > 0 {
            server = server.workers(config.workers);
        }
        let server = server.listen(listener).map_err(AppError::Server)?.run();
        let metrics_server = match &config.metrics.bind {
            Some(addr) => Some(metrics_server(
                addr,
                services.clone(),
                config.shutdown_grace_secs,
            )?),
            None => None,
        };
        if services.inference.is_some() && services.config.model.registry_poll_ms > 0 {
            actix_web::rt::spawn(crate::service::registry::watch_champion(
                services.clone(),
                Duration::from_millis(services.config.model.registry_poll_ms),
            ));
        }
        if services.inference.is_some() && services.config.training.background.enabled {
            actix_web::rt::spawn(crate::service::trainer::background(services.clone()));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Application {
            port,
            server,
            metrics_server,
            services,
            stop_tx,
            stop_rx,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener (`metrics.bind`), if any.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, p)| *p)
    }

    /// Shared services (stores, metrics) for tools and tests.
    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }

    /// A handle that triggers the same graceful shutdown as SIGTERM.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop_tx.clone())
    }

    /// Serves until SIGTERM, SIGINT or [`ShutdownHandle::shutdown`], then shuts
    /// down gracefully: sessions are told (`bye`), the HTTP server stops
    /// accepting and drains, and pending store writes are flushed.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let Application {
            server,
            metrics_server,
            services,
            mut stop_rx,
            ..
        } = self;
        let handle: ServerHandle = server.handle();
        let metrics_handle = metrics_server.map(|(m, _)| {
            let h = m.handle();
            actix_web::rt::spawn(m);
            h
        });
        let mut server = tokio::spawn(server);
        tokio::select! {
            res = &mut server => {
                return match res {
                    Ok(r) => r.map_err(AppError::Server),
                    Err(e) => Err(AppError::Server(std::io::Error::other(e))),
                };
            }
            _ = wait_for_signal() => tracing::info!("shutdown signal received"),
            _ = stop_rx.wait_for(|v| *v) => tracing::info!("shutdown requested"),
        }
        let told = services
            .coordinator
            .send(ShutdownSessions)
            .await
            .unwrap_or(0);
        tracing::info!(sessions = told, "sessions told to leave");
        // Let sessions finish their in-flight request and write their goodbye.
        tokio::time::sleep(Duration::from_millis(200)).await;
        handle.stop(true).await;
        if let Some(m) = metrics_handle {
            m.stop(true).await;
        }
        if let Err(e) = services.rounds.flush().await {
            tracing::error!(error = %e, "flushing the store failed");
        }
        let _ = server.await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// `/metrics` alone on `addr` (for a scraper on a private network).
fn metrics_server(
    addr: &str,
    services: Arc<Services>,
    grace_secs: u64,
) -> Result<(Server, u16), AppError> {
    let listener = TcpListener::bind(addr).map_err(|source| AppError::Bind {
        addr: addr.to_owned(),
        source,
    })?;
    let port = listener.local_addr().map_err(AppError::Server)?.port();
    let data = web::Data::from(services);
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/metrics",
            web::get()
                .to(|svc: web::Data<Services>| async move { crate::web::probes::render(&svc) }),
        )
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(grace_secs)
    .listen(listener)
    .map_err(AppError::Server)?
    .run();
    tracing::info!(port, "metrics on their own listener");
    Ok((server, port))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The leaderboard: Redis behind the outage buffer when `redis_url` is set,
/// else the in-process board seeded from the store (totals, and this week's
/// score ledger for the day and week boards).
async fn open_leaderboard(
    config: &Config,
    stores: &Stores,
    clock: &Clock,
) -> Result<(Arc<dyn Leaderboard>, Option<Arc<BufferedLeaderboard>>), AppError> {
    match &config.redis.url {
        Some(url) => {
            let l = &config.leaderboard;
            let redis = RedisLeaderboard::connect(
                url,
                &config.redis.prefix,
                Duration::from_secs(l.grace_hours * 3600),
                Duration::from_millis(config.redis.timeout_ms),
            )?;
            tracing::info!(prefix = %config.redis.prefix, "leaderboards on Redis");
            let buffer = BufferedLeaderboard::new(Arc::new(redis), stores.rounds.clone(), l.buffer);
            Ok((buffer.clone() as Arc<dyn Leaderboard>, Some(buffer)))
        }
        None => {
            let week = emofy_game::Period::Weekly.bucket(clock.now());
            let start = week.ends.map_or(emofy_game::Millis(0), |e| {
                emofy_game::Millis(e.0.saturating_sub(7 * 86_400_000))
            });
            let recent = stores
                .rounds
                .score_events_since(start, usize::MAX >> 1)
                .await?;
            let players = stores.players.scored_players().await?;
            Ok((Arc::new(MemoryLeaderboard::seeded(&players, &recent)), None))
        }
    }
}

/// The configured model: the bundled mini-Xception unless `model.dir` names another; `None` when disabled.
pub fn load_model(config: &Config) -> Result<Option<Arc<dyn Classifier>>, AppError> {
    if !config.model.enabled {
        return Ok(None);
    }
    let model: Arc<dyn Classifier> = match &config.model.dir {
        Some(dir) => emofy_inference::load_model_dir(dir)?,
        None => Arc::new(MiniXception::bundled()?),
    };
    tracing::info!(model = model.version(), "model loaded");
    Ok(Some(model))
}

/// Generates the synthetic demo pool into an empty store.
pub async fn seed_demo_images(config: &Config, images: &dyn ImageStore) -> Result<(), AppError> {
    let n = config.demo.images;
    if n == 0 || images.image_count().await? > 0 {
        return Ok(());
    }
    let seed = config.demo.seed;
    tracing::info!(count = n, "generating synthetic demo faces");
    let faces = tokio::task::spawn_blocking(move || {
        (0..n)
            .map(|i| crate::dataset::demo_faces::generate(seed, i))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| AppError::Demo(e.to_string()))?
    .map_err(|e| AppError::Demo(e.to_string()))?;
    let now = crate::clock::now();
    let mut tasks = Vec::with_capacity(faces.len());
    for f in faces {
        tasks.push(images.insert_image(
            crate::store::NewImage {
                bytes: f.png,
                mime: "image/png".into(),
                width: crate::dataset::demo_faces::SIDE,
                height: crate::dataset::demo_faces::SIDE,
                source: crate::store::ImageSource::Demo,
                source_label: Some(f.emotion),
                uploader: None,
            },
            now,
        ));
    }
    for r in futures_util::future::join_all(tasks).await {
        r?;
    }
    Ok(())
}
