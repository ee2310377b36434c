//! How a tree orders its keys.

use std::cmp::Ordering;

/// Orders keys. A tree uses exactly one comparator for its whole life.
///
/// It must be a total order, and it must be consistent with what the application treats as the
/// same key: two keys that compare `Equal` are the same key to the tree (a unique store keeps one
/// of them; [`crate::BTree::update_current_key`] lets one replace the other). A comparator that
/// is not a total order (not transitive, or `compare(a, b)` not the reverse of `compare(b, a)`)
/// does not make the tree panic, but searches then miss items and the tree's checker reports the
/// order as broken.
pub trait KeyComparator<K>: Send + Sync {
    /// Compares two keys.
    fn compare(&self, a: &K, b: &K) -> Ordering;

    /// An order-preserving 64-bit summary of `key`, if this comparator has one: for all keys
    /// `a` and `b`, `head(a) < head(b)` must imply `compare(a, b)` is `Less` (equal heads say
    /// nothing). A node read often keeps its items' heads in one contiguous array, so a search
    /// compares integers in a few cache lines instead of following a pointer to every key it
    /// passes (key comparisons were two thirds of a random read's and a bulk load's time).
    /// `None`, the default, searches by [`KeyComparator::compare`] alone. A head that breaks
    /// the rule makes searches miss items, as a comparator that is not a total order does.
    fn head(&self, key: &K) -> Option<u64> {
        let _ = key;
        None
    }

    /// The order's name, recorded with a store when it is created and checked when it is
    /// opened: a store built in one order and read in another would find nothing. The default
    /// is the comparator's type name; give a comparator whose order can change (a closure) a
    /// name of its own.
    fn name(&self) -> std::borrow::Cow<'static, str> {
        std::any::type_name::<Self>().into()
    }
}

/// The first 8 bytes, big-endian, zero-padded: lexicographic byte order preserved.
fn bytes_head(b: &[u8]) -> u64 {
    let mut h = [0u8; 8];
    let n = b.len().min(8);
    h[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(h)
}

/// The head of a key type whose [`Ord`] it knows: byte strings and strings (lexicographic by
/// bytes) and the integers; `None` for any other type.
fn natural_head<K: 'static>(key: &K) -> Option<u64> {
    let any = key as &dyn std::any::Any;
    if let Some(v) = any.downcast_ref::<Vec<u8>>() {
        return Some(bytes_head(v));
    }
    if let Some(s) = any.downcast_ref::<String>() {
        return Some(bytes_head(s.as_bytes()));
    }
    if let Some(v) = any.downcast_ref::<u64>() {
        return Some(*v);
    }
    if let Some(v) = any.downcast_ref::<u32>() {
        return Some(u64::from(*v));
    }
    if let Some(v) = any.downcast_ref::<u16>() {
        return Some(u64::from(*v));
    }
    if let Some(v) = any.downcast_ref::<u8>() {
        return Some(u64::from(*v));
    }
    // Signed: flipping the sign bit maps the order onto unsigned order.
    if let Some(v) = any.downcast_ref::<i64>() {
        return Some(v.cast_unsigned() ^ (1 << 63));
    }
    if let Some(v) = any.downcast_ref::<i32>() {
        return Some(i64::from(*v).cast_unsigned() ^ (1 << 63));
    }
    if let Some(v) = any.downcast_ref::<u128>() {
        return u64::try_from(*v >> 64).ok();
    }
    None
}

/// The comparator of keys that implement [`Ord`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NaturalOrder;

impl<K: Ord + 'static> KeyComparator<K> for NaturalOrder {
    fn compare(&self, a: &K, b: &K) -> Ordering {
        a.cmp(b)
    }

    fn head(&self, key: &K) -> Option<u64> {
        natural_head(key)
    }

    fn name(&self) -> std::borrow::Cow<'static, str> {
        "natural".into()
    }
}

/// A comparator made of a function, for keys that are not [`Ord`] or that order differently.
///
/// ```
/// use sop_btree::{FnComparator, KeyComparator};
/// let by_len = FnComparator(|a: &String, b: &String| a.len().cmp(&b.len()));
/// assert!(by_len.compare(&"ab".to_string(), &"c".to_string()).is_gt());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FnComparator<F>(pub F);

impl<K, F> KeyComparator<K> for FnComparator<F>
where
    F: Fn(&K, &K) -> Ordering + Send + Sync,
{
    fn compare(&self, a: &K, b: &K) -> Ordering {
        (self.0)(a, b)
    }

    /// Closures have no stable name: every `FnComparator` is "fn" (not checked against
    /// another closure). Implement [`KeyComparator`] on a type of your own to have the order
    /// checked.
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "fn".into()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{KeyComparator, NaturalOrder};

    /// The rule every head must keep: a smaller head means a smaller key.
    fn keeps_order<K: Ord + 'static>(a: &K, b: &K) {
        let (ha, hb) = (NaturalOrder.head(a), NaturalOrder.head(b));
        let (Some(ha), Some(hb)) = (ha, hb) else {
            panic!("no head for a type NaturalOrder knows");
        };
        if ha < hb {
            assert!(a < b);
        }
        if hb < ha {
            assert!(b < a);
        }
    }

    proptest! {
        #[test]
        fn natural_heads_never_contradict_the_order(
            a in prop::collection::vec(any::<u8>(), 0..12),
            b in prop::collection::vec(any::<u8>(), 0..12),
            x in any::<i64>(), y in any::<i64>(),
            p in any::<i32>(), q in any::<i32>(),
            u in any::<u128>(), v in any::<u128>(),
            s in "\\PC{0,10}", t in "\\PC{0,10}",
        ) {
            keeps_order(&a, &b);
            keeps_order(&x, &y);
            keeps_order(&p, &q);
            keeps_order(&u, &v);
            keeps_order(&s, &t);
            keeps_order(&(x.cast_unsigned()), &(y.cast_unsigned()));
        }
    }

    #[test]
    fn other_types_have_no_head() {
        assert_eq!(NaturalOrder.head(&(1u8, 2u8)), None);
        let by_len = super::FnComparator(|a: &String, b: &String| a.len().cmp(&b.len()));
        assert_eq!(by_len.head(&"x".to_string()), None);
    }
}
