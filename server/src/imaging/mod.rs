//! Images as pixels: the face crop of a contributed photo ([`photo`]), the
//! photo filters ([`filters`]), and the one limit every image endpoint
//! shares ([`ImageSlots`]). Decoding itself is `emofy_inference::decode`,
//! bounded by `[imaging]`.

pub mod filters;
pub mod photo;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many images are being decoded and worked on at once, by every image
/// endpoint together (uploads, face previews, filters): at most
/// `imaging.concurrent`. A request that finds no free slot is refused at once
/// (`503 busy` with `Retry-After`) rather than queued, so memory stays bounded
/// by the slots, not by the number of waiting requests.
#[derive(Debug, Clone)]
pub struct ImageSlots {
    slots: Arc<Semaphore>,
    /// Seconds a refused client is told to wait.
    pub retry_after_secs: u64,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ImageSlot {
    _permit: OwnedSemaphorePermit,
}

impl ImageSlots {
    pub fn new(concurrent: usize, retry_after_secs: u64) -> ImageSlots {
        ImageSlots {
            slots: Arc::new(Semaphore::new(concurrent.max(1))),
            retry_after_secs,
        }
    }

    /// A free slot, or `None` when all are taken.
    pub fn try_take(&self) -> Option<ImageSlot> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| ImageSlot { _permit: p })
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}
