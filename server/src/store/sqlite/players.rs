//! Players and accounts.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;

#[async_trait]
impl PlayerStore for SqliteStore {
    async fn create_player(
        &self,
        id: PlayerId,
        name: &str,
        role: Role,
        at: Millis,
    ) -> Result<PlayerRecord, StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO players (id, name, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), name, role.as_str(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(PlayerRecord {
                id,
                name,
                role,
                created: at,
                tally: PlayerTally::default(),
                score_at: Millis(0),
            })
        })
        .await
    }

    async fn player(&self, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError> {
        self.read(move |c| load_player(c, id)).await
    }

    async fn scored_players(&self) -> Result<Vec<PlayerRecord>, StoreError> {
        self.read(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {PLAYER_COLS} FROM players WHERE score > 0"
                ))
                .map_err(db_err)?;
            let rows = st.query_map([], player_from_row).map_err(db_err)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(player_record(r.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn create_account(
        &self,
        account: AccountRecord,
        name: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO players (id, name, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![account.player.to_string(), name, account.role.as_str(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            exec(
                c,
                "INSERT INTO accounts (username, player_id, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![account.username, account.player.to_string(), account.password_hash, i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let username = username.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT a.username, a.player_id, a.password_hash, p.role, a.failed_logins, a.last_failed_ms FROM accounts a JOIN players p ON p.id = a.player_id WHERE a.username = ?1",
                    params![username],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)?, r.get::<_, i64>(5)?)),
                )
                .optional()
                .map_err(db_err)?;
            row.map(|(username, player, password_hash, role, failed, last)| {
                Ok(AccountRecord {
                    username,
                    player: parse_id(&player)?,
                    password_hash,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
                    failures: emofy_game::login::LoginFailures {
                        count: u32::try_from(failed).unwrap_or(0),
                        last: Millis(u64::try_from(last).unwrap_or(0)),
                    },
                })
            })
            .transpose()
        })
        .await
    }

    async fn register_account(
        &self,
        player: PlayerId,
        username: &str,
        password_hash: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |c| {
            if load_player(c, player)?.is_none() {
                return Err(StoreError::NotFound(format!("player {player}")));
            }
            exec(
                c,
                "INSERT INTO accounts (username, player_id, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![username, player.to_string(), hash, i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<(), StoreError> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |c| {
            let n = exec(
                c,
                "UPDATE accounts SET password_hash = ?2 WHERE username = ?1",
                params![username, hash],
            )
            .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {username}")));
            }
            Ok(())
        })
        .await
    }

    async fn username_of(&self, player: PlayerId) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            c.query_row(
                "SELECT username FROM accounts WHERE player_id = ?1",
                params![player.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn claim_login_attempt(
        &self,
        username: &str,
        seen: emofy_game::login::LoginFailures,
        next: emofy_game::login::LoginFailures,
    ) -> Result<bool, StoreError> {
        let username = username.to_owned();
        self.write(move |c| {
            let n = exec(
                c,
                "UPDATE accounts SET failed_logins = ?4, last_failed_ms = ?5 \
                 WHERE username = ?1 AND failed_logins = ?2 AND last_failed_ms = ?3",
                params![
                    username,
                    i64::from(seen.count),
                    i64_of(seen.last.0),
                    i64::from(next.count),
                    i64_of(next.last.0)
                ],
            )
            .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        let username = username.to_owned();
        self.write(move |c| {
            exec(
                c,
                "UPDATE accounts SET failed_logins = 0, last_failed_ms = 0 WHERE username = ?1",
                params![username],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
