//! Named leases (`leases`, one document per name). Taking one is a single
//! conditional upsert: the filter is the lease rule
//! ([`emofy_game::retrain::lease_free_for`]: held by the taker, or expired);
//! when someone else holds it the filter misses, the upsert collides with
//! the existing `_id`, and the take is refused.

use super::MongoStore;
use super::codec::*;
use super::prelude::*;
use crate::store::lease::LeaseStore;
use emofy_game::retrain::Lease;

#[async_trait]
impl LeaseStore for MongoStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError> {
        let taken = self
            .coll("leases")
            .update_one(
                doc! {"_id": name, "$or": [{"holder": holder}, {"expires_ms": {"$lte": i64_of(now.0)}}]},
                doc! {"$set": {"holder": holder, "expires_ms": i64_of(until.0)}},
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.coll("leases")
            .delete_one(doc! {"_id": name, "holder": holder})
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let found = self
            .coll("leases")
            .find_one(doc! {"_id": name})
            .await
            .map_err(err)?;
        found
            .map(|d| {
                Ok(Lease {
                    holder: get_str(&d, "holder")?.to_owned(),
                    expires: Millis(get_u64(&d, "expires_ms")?),
                })
            })
            .transpose()
    }
}
