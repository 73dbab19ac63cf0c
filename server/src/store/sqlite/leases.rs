//! Named leases (`leases`): read and replaced inside the writer's
//! `BEGIN IMMEDIATE` transaction, so the check and the take are one step
//! for every process on the file.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;
use crate::store::lease::LeaseStore;
use emofy_game::retrain::{Lease, lease_free_for};

fn read_lease(c: &Connection, name: &str) -> Result<Option<Lease>, StoreError> {
    qrow(
        c,
        "SELECT holder, expires_ms FROM leases WHERE name = ?1",
        params![name],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )
    .optional()
    .map_err(db_err)
    .map(|row| {
        row.map(|(holder, expires)| Lease {
            holder,
            expires: Millis(u64_of(expires)),
        })
    })
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |c| {
            if !lease_free_for(read_lease(c, &name)?.as_ref(), &holder, now) {
                return Ok(false);
            }
            exec(
                c,
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms",
                params![name, holder, i64_of(until.0)],
            )
            .map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |c| {
            exec(
                c,
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let name = name.to_owned();
        self.read(move |c| read_lease(c, &name)).await
    }
}
