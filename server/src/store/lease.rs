//! Named leases: at most one holder at a time across every replica and
//! command-line process on one store (the background trainer and `emofy
//! train` take `training`). A lease expires on its own, so a holder that
//! dies frees it; a live holder renews it well before it expires.
//!
//! The rule (who may take a lease) is [`emofy_game::retrain::lease_free_for`];
//! each store applies it as one atomic compare-and-set.

use async_trait::async_trait;
use emofy_game::Millis;
use emofy_game::retrain::Lease;

use crate::store::StoreError;

/// The lease the training runs share.
pub const TRAINING_LEASE: &str = "training";

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews `name` for `holder` until `until`, if it is free for
    /// `holder` at `now` (unheld, expired, or held by `holder`): returns
    /// whether `holder` holds it now.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: Millis,
        until: Millis,
    ) -> Result<bool, StoreError>;
    /// Gives `name` up if `holder` holds it (otherwise does nothing).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// The lease as stored (expired or not), if anyone ever took it.
    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError>;
}
