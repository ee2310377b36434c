//! Misuse of a tree's cursor (raised by `sop-btree`).

/// A call that works on the cursor's item was made wrongly: position the cursor first, or
/// keep the key's order. Raised by `sop-btree` (the tree's own cursor); nothing changed, and
/// the transaction goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// A call that works on the cursor's item found the cursor on no item.
    #[error(
        "{operation} needs a current item but the cursor is on none: position it with find, first or last"
    )]
    NoCurrentItem {
        /// The call that needed the item.
        operation: &'static str,
    },

    /// A key given to replace the current item's key does not compare equal to it.
    #[error(
        "{operation} was given a key that does not compare equal to the current key; that would break the order, so remove and add instead"
    )]
    KeyChanged {
        /// The call that refused the key.
        operation: &'static str,
    },
}
