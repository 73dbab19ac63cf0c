//! The leaderboard on Redis, shared by every server replica.
//!
//! Keys (all under a configurable prefix `P`, so tests and tenants share a
//! server safely):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `P:lb:global:<bucket>` | sorted set | member: player id; score: [`rank_key`] (points × 10⁹ + earlier-is-higher tie-break; the points are `⌊score / 10⁹⌋`) |
//! | `P:names` | hash | player id → display name |
//! | `P:applied:<key>` | string | a change's idempotency key, kept `applied_ttl` |
//! | `P:events` | pub/sub channel | player ids whose scores changed (comma-separated) |
//!
//! `<bucket>` is `all`, `d2026-11-26` or `w2026-11-23` (the week's Monday).
//! Day and week boards expire `grace` after their period ends. One Lua
//! script applies a whole batch atomically: per change it claims the key
//! (`SET NX EX`), reads the points on each of the three boards from the rank
//! key (`ZSCORE`), writes the new rank key (`ZADD`), refreshes expiries, and
//! finally publishes the changed players. The script computes key names from the prefix, so it
//! needs a single Redis (or a cluster with the prefix in a hash tag).

use std::time::Duration;

use async_trait::async_trait;
use emofy_game::period::{points_of, rank_key};
use emofy_game::{Bucket, Period, PlayerId};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::protocol::{LeaderboardRow, OwnStanding};
use crate::store::{Leaderboard, ScoreChange, StoreError};

const APPLY: &str = r#"
local p = ARGV[1]
local applied_ttl = ARGV[2]
local changed = {}
for i = 3, #ARGV, 9 do
  local key, player, name = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local delta, tie = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  if redis.call('SET', p .. ':applied:' .. key, '1', 'NX', 'EX', applied_ttl) then
    redis.call('HSET', p .. ':names', player, name)
    local boards = { {'all', 0}, {ARGV[i + 5], tonumber(ARGV[i + 6])}, {ARGV[i + 7], tonumber(ARGV[i + 8])} }
    for _, b in ipairs(boards) do
      local z = p .. ':lb:global:' .. b[1]
      local old = redis.call('ZSCORE', z, player)
      local pts = delta
      if old then pts = pts + math.floor(tonumber(old) / 1000000000) end
      if pts > 9007198 then pts = 9007198 end
      redis.call('ZADD', z, string.format('%.0f', pts * 1000000000 + tie), player)
      if b[2] > 0 then redis.call('EXPIREAT', z, b[2]) end
    end
    changed[#changed + 1] = player
  end
end
if #changed > 0 then
  redis.call('PUBLISH', p .. ':events', table.concat(changed, ','))
end
return #changed
"#;

/// How long idempotency keys are kept: longer than any replay of the ledger.
const APPLIED_TTL_SECS: u64 = 8 * 24 * 3600;

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// The Redis leaderboard. Cheap to clone (one multiplexed, self-reconnecting connection).
#[derive(Clone)]
pub struct RedisLeaderboard {
    conn: ConnectionManager,
    prefix: String,
    grace: Duration,
    apply: redis::Script,
}

impl RedisLeaderboard {
    /// Connects lazily (the server starts while Redis is down); commands
    /// fail after `timeout` instead of waiting.
    pub fn connect(
        url: &str,
        prefix: &str,
        grace: Duration,
        timeout: Duration,
    ) -> Result<RedisLeaderboard, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisLeaderboard {
            conn,
            prefix: prefix.to_owned(),
            grace,
            apply: redis::Script::new(APPLY),
        })
    }

    /// The pub/sub channel that carries changed player ids.
    pub fn events_channel(&self) -> String {
        format!("{}:events", self.prefix)
    }

    fn board(&self, bucket: &Bucket) -> String {
        format!("{}:lb:global:{}", self.prefix, bucket.id)
    }

    fn expiry(&self, bucket: &Bucket) -> u64 {
        bucket.ends.map_or(0, |e| e.0 / 1000 + self.grace.as_secs())
    }

    async fn rows(
        &self,
        bucket: &Bucket,
        start: isize,
        stop: isize,
    ) -> Result<Vec<LeaderboardRow>, StoreError> {
        let mut conn = self.conn.clone();
        let members: Vec<(String, f64)> = conn
            .zrevrange_withscores(self.board(bucket), start, stop)
            .await
            .map_err(unavailable)?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
        let names: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(format!("{}:names", self.prefix))
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        members
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(i, ((member, score), name))| {
                Ok(LeaderboardRow {
                    rank: (start.max(0) as u64) + i as u64 + 1,
                    player: member
                        .parse()
                        .map_err(|_| StoreError::Corrupt(format!("board member {member:?}")))?,
                    name: name.unwrap_or_default(),
                    score: points_of(score as u64),
                })
            })
            .collect()
    }
}

#[async_trait]
impl Leaderboard for RedisLeaderboard {
    async fn apply(&self, changes: &[ScoreChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut inv = self.apply.prepare_invoke();
        inv.arg(&self.prefix).arg(APPLIED_TTL_SECS);
        for c in changes {
            let day = Period::Daily.bucket(c.at);
            let week = Period::Weekly.bucket(c.at);
            let tie = rank_key(0, c.at);
            inv.arg(&c.key)
                .arg(c.player.to_string())
                .arg(&c.name)
                .arg(c.delta)
                .arg(tie)
                .arg(&day.id)
                .arg(self.expiry(&day))
                .arg(&week.id)
                .arg(self.expiry(&week));
        }
        let mut conn = self.conn.clone();
        let _applied: i64 = inv.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    async fn top(&self, bucket: &Bucket, n: usize) -> Result<Vec<LeaderboardRow>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.rows(bucket, 0, n as isize - 1).await
    }

    async fn around(
        &self,
        bucket: &Bucket,
        player: PlayerId,
        k: usize,
    ) -> Result<Vec<LeaderboardRow>, StoreError> {
        let mut conn = self.conn.clone();
        let rank: Option<isize> = conn
            .zrevrank(self.board(bucket), player.to_string())
            .await
            .map_err(unavailable)?;
        let Some(rank) = rank else {
            return Ok(Vec::new());
        };
        let k = k as isize;
        self.rows(bucket, (rank - k).max(0), rank + k).await
    }

    async fn standing(
        &self,
        bucket: &Bucket,
        player: PlayerId,
    ) -> Result<Option<OwnStanding>, StoreError> {
        let mut conn = self.conn.clone();
        let member = player.to_string();
        let (rank, score): (Option<u64>, Option<f64>) = redis::pipe()
            .zrevrank(self.board(bucket), &member)
            .zscore(self.board(bucket), &member)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match (rank, score) {
            (Some(rank), Some(score)) => Some(OwnStanding {
                rank: rank + 1,
                score: points_of(score as u64),
            }),
            _ => None,
        })
    }

    async fn count(&self, bucket: &Bucket) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        conn.zcard(self.board(bucket)).await.map_err(unavailable)
    }
}

/// Subscribes to the board's change events; calls `on_change` with the
/// player ids of each event. Reconnects (after `retry`) whenever the
/// subscription drops, for as long as the process runs.
pub async fn follow_events(
    url: String,
    channel: String,
    retry: Duration,
    on_change: impl Fn(Vec<PlayerId>) + 'static,
) {
    use futures_util::StreamExt;
    loop {
        let subscribed = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                tracing::info!(channel = %channel, "following leaderboard events");
                let mut stream = pubsub.into_on_message();
                while let Some(msg) = stream.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let players = payload
                        .split(',')
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<PlayerId>>();
                    on_change(players);
                }
                tracing::warn!("leaderboard event subscription dropped");
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to leaderboard events"),
        }
        tokio::time::sleep(retry).await;
    }
}
