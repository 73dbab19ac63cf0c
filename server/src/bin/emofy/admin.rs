//! `emofy admin …`: the Redis board rebuilt from the ledger, a truth pass
//! now, moderator accounts.

use std::io::BufRead;

use anyhow::{Context, bail};
use emofy_game::{DisplayName, PlayerId, Role};
use emofy_server::store::AccountRecord;
use emofy_server::{Config, app, auth};

pub async fn truth_pass(config: Config) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let r = emofy_server::actors::truth::run_pass(
        stores.review.as_ref(),
        emofy_server::clock::Clock::new(),
        config.truth.pass_labels,
        config.truth.trust,
    )
    .await
    .context("running the truth pass")?;
    println!(
        "truth pass: {} labels, {} players' matrices and {} posteriors updated",
        r.labels, r.players, r.images
    );
    Ok(())
}

pub async fn rebuild_leaderboard(config: Config) -> anyhow::Result<()> {
    let Some(url) = &config.redis.url else {
        bail!(
            "redis.url is not set (EMOFY_REDIS__URL): the in-process board rebuilds itself at start"
        );
    };
    let stores = app::open_stores(&config).await?;
    let board = emofy_server::leaderboard::redis::RedisLeaderboard::connect(
        url,
        &config.redis.prefix,
        std::time::Duration::from_secs(config.leaderboard.grace_hours * 3600),
        std::time::Duration::from_millis(config.redis.timeout_ms),
    )?;
    let read = emofy_server::leaderboard::replay_ledger(
        stores.rounds.as_ref(),
        &board,
        emofy_game::Millis(0),
    )
    .await
    .context("replaying the score ledger")?;
    println!(
        "replayed {read} score changes into {url} (prefix {})",
        config.redis.prefix
    );
    Ok(())
}

pub async fn create_moderator(
    config: Config,
    username: String,
    display: Option<String>,
    role: Role,
) -> anyhow::Result<()> {
    // The players' username rule (normalized: case and width make no new name).
    let username = emofy_game::account::Username::parse(&username)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .as_str()
        .to_owned();
    let name =
        DisplayName::parse(display.as_deref().unwrap_or(&username)).context("display name")?;
    eprintln!("Password for {username} (first line of standard input; at least 12 characters):");
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    if let Some(problem) = emofy_game::account::password_problem(&password) {
        bail!("{problem}");
    }
    let hash = auth::hash_password(&password)?;
    let stores = app::open_stores(&config).await?;
    let player = PlayerId(uuid::Uuid::new_v4());
    stores
        .players
        .create_account(
            AccountRecord {
                username: username.clone(),
                player,
                password_hash: hash,
                role,
                failures: Default::default(),
            },
            name.as_str(),
            emofy_server::clock::now(),
        )
        .await
        .with_context(|| format!("creating account {username:?} (does it exist already?)"))?;
    stores.rounds.flush().await?;
    println!(
        "created {} account {username} (player {player})",
        role.as_str()
    );
    Ok(())
}
