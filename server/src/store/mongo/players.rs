//! Players and accounts.

use super::MongoStore;
use super::codec::*;
use super::prelude::*;
use super::tx::*;

#[async_trait]
impl PlayerStore for MongoStore {
    async fn create_player(
        &self,
        id: PlayerId,
        name: &str,
        role: Role,
        at: Millis,
    ) -> Result<PlayerRecord, StoreError> {
        self.coll("players")
            .insert_one(new_player(id, name, role, at))
            .await
            .map_err(err)?;
        Ok(PlayerRecord {
            id,
            name: name.to_owned(),
            role,
            created: at,
            tally: PlayerTally::default(),
            score_at: Millis(0),
        })
    }

    async fn player(&self, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError> {
        self.coll("players")
            .find_one(doc! {"_id": id.to_string()})
            .await
            .map_err(err)?
            .map(|d| player_record(&d))
            .transpose()
    }

    async fn scored_players(&self) -> Result<Vec<PlayerRecord>, StoreError> {
        let docs: Vec<Document> =
            all(self.coll("players").find(doc! {"score": {"$gt": 0_i64}})).await?;
        docs.iter().map(player_record).collect()
    }

    async fn create_account(
        &self,
        account: AccountRecord,
        name: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        transaction!(self, self.limits.transaction_deadline, |s| {
            self.coll("players")
                .insert_one(new_player(account.player, name, account.role, at))
                .session(&mut *s)
                .await?;
            self.coll("accounts")
                .insert_one(doc! {
                    "_id": &account.username,
                    "player_id": account.player.to_string(),
                    "password_hash": &account.password_hash,
                    "created_ms": i64_of(at.0),
                    "failed_logins": 0_i64,
                    "last_failed_ms": 0_i64,
                })
                .session(&mut *s)
                .await?;
            Ok::<_, StoreError>(())
        })
    }

    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
        let Some(a) = self
            .coll("accounts")
            .find_one(doc! {"_id": username})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let player: PlayerId = parse_id(get_str(&a, "player_id")?)?;
        let p = self
            .player(player)
            .await?
            .ok_or_else(|| corrupt("account without player"))?;
        Ok(Some(AccountRecord {
            username: get_str(&a, "_id")?.to_owned(),
            player,
            password_hash: get_str(&a, "password_hash")?.to_owned(),
            role: p.role,
            failures: emofy_game::login::LoginFailures {
                count: a
                    .get_i64("failed_logins")
                    .ok()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0),
                last: Millis(
                    a.get_i64("last_failed_ms")
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                ),
            },
        }))
    }

    async fn register_account(
        &self,
        player: PlayerId,
        username: &str,
        password_hash: &str,
        at: Millis,
    ) -> Result<(), StoreError> {
        if self.player(player).await?.is_none() {
            return Err(StoreError::NotFound(format!("player {player}")));
        }
        // The unique indexes (username as _id, player_id) refuse a second one.
        self.coll("accounts")
            .insert_one(doc! {
                "_id": username,
                "player_id": player.to_string(),
                "password_hash": password_hash,
                "created_ms": i64_of(at.0),
                "failed_logins": 0_i64,
                "last_failed_ms": 0_i64,
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<(), StoreError> {
        let r = self
            .coll("accounts")
            .update_one(
                doc! {"_id": username},
                doc! {"$set": {"password_hash": password_hash}},
            )
            .await
            .map_err(err)?;
        if r.matched_count == 0 {
            return Err(StoreError::NotFound(format!("account {username}")));
        }
        Ok(())
    }

    async fn username_of(&self, player: PlayerId) -> Result<Option<String>, StoreError> {
        self.coll("accounts")
            .find_one(doc! {"player_id": player.to_string()})
            .await
            .map_err(err)?
            .map(|d| get_str(&d, "_id").map(str::to_owned))
            .transpose()
    }

    async fn claim_login_attempt(
        &self,
        username: &str,
        seen: emofy_game::login::LoginFailures,
        next: emofy_game::login::LoginFailures,
    ) -> Result<bool, StoreError> {
        // Accounts stored before the fields existed read as no failures.
        let field = |v: i64| {
            if v == 0 {
                Bson::Document(doc! {"$in": [0_i64, Bson::Null]})
            } else {
                Bson::Int64(v)
            }
        };
        let r = self
            .coll("accounts")
            .update_one(
                doc! {
                    "_id": username,
                    "failed_logins": field(i64::from(seen.count)),
                    "last_failed_ms": field(i64_of(seen.last.0)),
                },
                doc! {"$set": {
                    "failed_logins": i64::from(next.count),
                    "last_failed_ms": i64_of(next.last.0),
                }},
            )
            .await
            .map_err(err)?;
        Ok(r.matched_count == 1)
    }

    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError> {
        self.coll("accounts")
            .update_one(
                doc! {"_id": username},
                doc! {"$set": {"failed_logins": 0_i64, "last_failed_ms": 0_i64}},
            )
            .await
            .map_err(err)?;
        Ok(())
    }
}
