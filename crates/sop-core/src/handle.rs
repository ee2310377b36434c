//! The registry record that maps a node's stable logical id to its current physical blob.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Uuid};

/// The registry's record for one node: a stable logical id and two physical slots, A and B.
///
/// A node's bytes are never overwritten. A change writes a new blob under a fresh id in the
/// inactive slot ([`Handle::allocate`]), and the commit makes it the active one
/// ([`Handle::flip`]). The old blob stays addressable until the commit is durable, which is what
/// makes rollback and crash recovery possible. The version counts flips and is what optimistic
/// transactions compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handle {
    /// The node's logical id; never changes.
    pub logical_id: Uuid,
    /// Physical slot A: a blob id or [`Uuid::NIL`].
    pub physical_a: Uuid,
    /// Physical slot B: a blob id or [`Uuid::NIL`].
    pub physical_b: Uuid,
    /// Whether slot B (rather than A) holds the active blob.
    pub active_is_b: bool,
    /// How many times the handle was flipped: bumped by each committed change.
    pub version: u64,
    /// When the inactive slot was claimed (Unix ms), 0 when unclaimed.
    pub work_in_progress_ms: i64,
    /// Set when the node is removed, until the removal is cleaned up.
    pub deleted: bool,
}

impl Handle {
    /// The handle of a new node whose first blob is stored under its logical id.
    #[must_use]
    pub fn new(logical_id: Uuid) -> Self {
        Handle {
            logical_id,
            physical_a: logical_id,
            physical_b: Uuid::NIL,
            active_is_b: false,
            version: 1,
            work_in_progress_ms: 0,
            deleted: false,
        }
    }

    /// The blob id readers must use.
    #[must_use]
    pub fn active_id(&self) -> Uuid {
        if self.active_is_b {
            self.physical_b
        } else {
            self.physical_a
        }
    }

    /// The blob id in the inactive slot, if any.
    #[must_use]
    pub fn inactive_id(&self) -> Option<Uuid> {
        let id = if self.active_is_b {
            self.physical_a
        } else {
            self.physical_b
        };
        (!id.is_nil()).then_some(id)
    }

    /// Claims the inactive slot for a new blob id and stamps the claim with `now_ms`.
    ///
    /// # Errors
    /// [`CorruptionError::HandleSlotInUse`](crate::CorruptionError::HandleSlotInUse) when the slot already holds a claim: another change to the same
    /// node is in flight (or died and was not yet cleaned up).
    pub fn allocate(&mut self, now_ms: i64) -> Result<Uuid> {
        if self.inactive_id().is_some() {
            return Err(Error::Corruption(crate::CorruptionError::HandleSlotInUse {
                logical_id: self.logical_id,
            }));
        }
        let id = Uuid::new_v4();
        *self.inactive_slot_mut() = id;
        self.work_in_progress_ms = now_ms.max(1);
        Ok(id)
    }

    /// Makes the inactive blob the active one and bumps the version. The previous active id
    /// stays in the now-inactive slot until [`Handle::clear_inactive`], so it can be deleted
    /// after the commit is durable.
    pub fn flip(&mut self) {
        self.active_is_b = !self.active_is_b;
        self.version = self.version.wrapping_add(1);
        self.work_in_progress_ms = 0;
    }

    /// Forgets the inactive slot (its blob was deleted or the claim abandoned).
    pub fn clear_inactive(&mut self) {
        *self.inactive_slot_mut() = Uuid::NIL;
        self.work_in_progress_ms = 0;
    }

    /// Whether a claim on the inactive slot is older than `max_age_ms`, so its owner is presumed
    /// dead and the slot may be reclaimed.
    #[must_use]
    pub fn is_claim_expired(&self, now_ms: i64, max_age_ms: i64) -> bool {
        self.work_in_progress_ms > 0 && now_ms.saturating_sub(self.work_in_progress_ms) > max_age_ms
    }

    fn inactive_slot_mut(&mut self) -> &mut Uuid {
        if self.active_is_b {
            &mut self.physical_a
        } else {
            &mut self.physical_b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_flip_clear_cycle() {
        let lid = Uuid::new_v4();
        let mut h = Handle::new(lid);
        assert_eq!(h.active_id(), lid);
        assert_eq!(h.inactive_id(), None);

        let new_id = h.allocate(1000).unwrap();
        assert_eq!(h.inactive_id(), Some(new_id));
        assert_eq!(
            h.active_id(),
            lid,
            "allocation must not change what readers see"
        );
        assert!(matches!(
            h.allocate(1001),
            Err(Error::Corruption(
                crate::CorruptionError::HandleSlotInUse { .. }
            ))
        ));

        h.flip();
        assert_eq!(h.active_id(), new_id);
        assert_eq!(
            h.inactive_id(),
            Some(lid),
            "the old blob stays until cleanup"
        );
        assert_eq!(h.version, 2);

        h.clear_inactive();
        assert_eq!(h.inactive_id(), None);
        let third = h.allocate(2000).unwrap();
        h.flip();
        assert_eq!(h.active_id(), third);
        assert_eq!(h.version, 3);
    }

    #[test]
    fn claim_expiry() {
        let mut h = Handle::new(Uuid::new_v4());
        assert!(!h.is_claim_expired(10_000, 100));
        h.allocate(1_000).unwrap();
        assert!(!h.is_claim_expired(1_050, 100));
        assert!(h.is_claim_expired(1_101, 100));
    }
}
