//! Bad input and faults get typed errors, never panics.

use std::sync::Arc;

use proptest::prelude::*;
use sop_btree::{BTree, MemBTree, MemRepository, NaturalOrder, Node, NodeRepository, ValueStore};
use sop_core::{Error, Result, StoreInfo, StoreOptions, Uuid};

use crate::support::block_on;

#[test]
fn slot_length_out_of_range_is_a_typed_error() {
    for n in [0, 1, 10_001] {
        let err = MemBTree::<u32, u32>::in_memory(&StoreOptions::new("s").slot_length(n))
            .err()
            .expect("refused");
        assert!(
            matches!(err, Error::Usage(sop_core::UsageError::SlotLengthOutOfRange { got, .. }) if got == n),
            "{err}"
        );
    }
}

#[test]
fn calls_on_an_empty_cursor_are_typed_errors_and_change_nothing() {
    block_on(async {
        let mut t = MemBTree::<u32, u32>::in_memory(&StoreOptions::new("e").slot_length(4))?;
        for k in 0..10 {
            t.add(k, k).await?;
        }
        assert!(
            !t.find(&100, true).await?,
            "a miss past the end leaves no current item"
        );
        for err in [
            t.update_current_value(1).await.unwrap_err(),
            t.update_current_key(1).await.unwrap_err(),
            t.update_current_item(1, 1).await.unwrap_err(),
            t.remove_current_item().await.unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    Error::Cursor(sop_core::CursorError::NoCurrentItem { .. })
                ),
                "{err}"
            );
            assert!(err.to_string().contains("find, first or last"), "{err}");
        }
        assert_eq!(t.current_item().await?, None);
        // Not poisoned: the tree still works and is unchanged.
        assert_eq!(t.count(), 10);
        assert_eq!(t.get(&3).await?, Some(3));
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn a_key_that_would_move_the_item_is_refused() {
    block_on(async {
        let mut t = MemBTree::<u32, &str>::in_memory(&StoreOptions::new("k").slot_length(4))?;
        t.add(1, "a").await?;
        t.add(2, "b").await?;
        assert!(t.find(&1, true).await?);
        let err = t.update_current_item(5, "x").await.unwrap_err();
        assert!(
            matches!(err, Error::Cursor(sop_core::CursorError::KeyChanged { .. })),
            "{err}"
        );
        // Cursor still on the item; nothing changed.
        assert_eq!(t.current_key(), Some(&1));
        assert_eq!(t.current_value().await?, Some("a"));
        t.check().await?;
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

/// A repository that fails its `fail_at`-th read (get or checkout).
struct Faulty {
    inner: MemRepository<u32, u32>,
    reads: std::sync::atomic::AtomicUsize,
    fail_at: usize,
}

impl Faulty {
    fn tick(&self) -> Result<()> {
        let n = self
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n == self.fail_at {
            return Err(Error::Storage(sop_core::StorageError::Io {
                op: "read",
                path: "injected-fault".into(),
                source: std::io::Error::other("injected"),
            }));
        }
        Ok(())
    }
}

impl NodeRepository<u32, u32> for Faulty {
    async fn get(&self, id: Uuid) -> Result<Arc<Node<u32, u32>>> {
        self.tick()?;
        self.inner.get(id).await
    }
    async fn checkout(&mut self, id: Uuid) -> Result<Node<u32, u32>> {
        self.tick()?;
        self.inner.checkout(id).await
    }
    fn add(&mut self, node: Node<u32, u32>) -> Result<()> {
        self.inner.add(node)
    }
    fn update(&mut self, node: Node<u32, u32>) -> Result<()> {
        self.inner.update(node)
    }
    fn remove(&mut self, id: Uuid) -> Result<()> {
        NodeRepository::remove(&mut self.inner, id)
    }
}

impl ValueStore<u32> for Faulty {
    async fn get_value(&self, id: Uuid) -> Result<u32> {
        self.inner.get_value(id).await
    }
    async fn put_value(&mut self, id: Uuid, value: u32) -> Result<()> {
        self.inner.put_value(id, value).await
    }
    async fn remove_value(&mut self, id: Uuid) -> Result<()> {
        self.inner.remove_value(id).await
    }
}

#[test]
fn a_repository_error_mid_change_poisons_the_tree() {
    // Fail every read position in turn during a batch of adds and removes: each failure is a
    // typed error, and after a failure inside a change every call is refused, never a panic.
    block_on(async {
        let mut faults_hit = 0;
        for fail_at in 1..400 {
            let info = StoreInfo::new(&StoreOptions::new("f").slot_length(2), 0)?;
            let repo = Faulty {
                inner: MemRepository::new("f"),
                reads: 0.into(),
                fail_at,
            };
            let mut t: BTree<u32, u32, Faulty, NaturalOrder> =
                BTree::create(repo, info, NaturalOrder)?;
            let mut failed = None;
            for k in 0..40u32 {
                let r = if k % 3 == 2 {
                    t.remove(&(k - 1)).await
                } else {
                    t.add(k, k).await
                };
                if let Err(e) = r {
                    failed = Some(e);
                    break;
                }
            }
            let Some(e) = failed else { continue };
            faults_hit += 1;
            assert!(
                matches!(e, Error::Storage(sop_core::StorageError::Io { .. })),
                "fail_at {fail_at}: {e}"
            );
            let again = t.add(1000, 0).await.unwrap_err();
            assert!(
                matches!(
                    again,
                    Error::Transaction(sop_core::TransactionError::Poisoned { .. })
                ),
                "fail_at {fail_at}: {again}"
            );
            assert!(again.to_string().contains("roll the transaction back"));
            assert!(matches!(
                t.first().await,
                Err(Error::Transaction(
                    sop_core::TransactionError::Poisoned { .. }
                ))
            ));
            assert!(matches!(
                t.range(..).next().await,
                Err(Error::Transaction(
                    sop_core::TransactionError::Poisoned { .. }
                ))
            ));
            assert_eq!(t.current_key(), None);
        }
        assert!(faults_hit > 150, "only {faults_hit} injected faults landed");
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

#[test]
fn nodes_round_trip_through_the_codec() {
    block_on(async {
        let mut t = MemBTree::<String, Vec<u8>>::in_memory(&StoreOptions::new("n").slot_length(8))?;
        for i in 0..100 {
            t.add(format!("key{i:03}"), vec![i as u8; i]).await?;
        }
        let info = t.store_info().clone();
        let root = t.repository_mut().get(info.root_id).await?;
        let bytes = root.encode()?;
        assert_eq!(bytes[0], sop_btree::NODE_FORMAT_VERSION);
        let back = Node::<String, Vec<u8>>::decode(&bytes)?;
        assert_eq!(&back, root.as_ref());
        Ok::<_, anyhow::Error>(())
    })
    .unwrap();
}

fn sample_node(n: u8, children: usize) -> Node<String, Vec<u8>> {
    Node::from_parts(
        sop_core::Uuid::new_v4(),
        (0..n)
            .map(|i| {
                Arc::new(sop_btree::NodeItem {
                    id: sop_core::Uuid::new_v4(),
                    key: format!("k{i:03}"),
                    value: if i % 2 == 0 {
                        sop_btree::ItemValue::Inline(vec![i; usize::from(i)])
                    } else {
                        sop_btree::ItemValue::External(sop_core::Uuid::new_v4())
                    },
                    version: u32::from(i) * 7,
                })
            })
            .collect(),
        (0..children).map(|_| sop_core::Uuid::new_v4()).collect(),
    )
}

#[test]
fn a_node_shape_reads_without_the_types() {
    let node = sample_node(5, 6);
    let bytes = node.encode().unwrap();
    let shape = sop_btree::NodeShape::decode(&bytes).unwrap();
    assert_eq!(shape.id, node.id);
    assert_eq!(shape.children, node.children);
    for (s, it) in shape.items.iter().zip(&node.items) {
        assert_eq!((s.id, s.version), (it.id, it.version));
        let external = match it.value {
            sop_btree::ItemValue::External(b) => Some(b),
            sop_btree::ItemValue::Inline(_) => None,
        };
        assert_eq!(s.external, external);
    }
    assert_eq!(Node::<String, Vec<u8>>::decode(&bytes).unwrap(), node);
    // A raw parse re-encodes to the same bytes.
    assert_eq!(sop_btree::RawNode::parse(&bytes).unwrap().encode(), bytes);
    // Every truncation is an error.
    for cut in 0..bytes.len() {
        assert!(
            Node::<String, Vec<u8>>::decode(&bytes[..cut]).is_err(),
            "cut {cut}"
        );
    }
    // Older formats are refused with a typed error.
    let v2 = [&[2u8][..], &bytes[1..]].concat();
    assert!(Node::<String, Vec<u8>>::decode(&v2).is_err());
}

/// A node after random edits of `base`: some items removed, changed or added, children
/// changed, as splits, merges and updates leave them.
fn edited(base: &Node<String, Vec<u8>>, ops: &[(u8, u8)]) -> Node<String, Vec<u8>> {
    let mut n = base.clone();
    for &(op, at) in ops {
        let len = n.items.len();
        let i = usize::from(at) % (len + 1);
        match op % 5 {
            0 if i < len => {
                n.items.remove(i);
            }
            1 if i < len => {
                let item = Arc::make_mut(&mut n.items[i]);
                item.version += 1;
                item.value = sop_btree::ItemValue::Inline(vec![at; 3]);
            }
            2 => n.items.insert(
                i,
                Arc::new(sop_btree::NodeItem {
                    id: sop_core::Uuid::new_v4(),
                    key: format!("new{at}"),
                    value: sop_btree::ItemValue::Inline(vec![at]),
                    version: 0,
                }),
            ),
            3 => {
                let c = usize::from(at) % (n.children.len() + 1);
                n.children.insert(c, sop_core::Uuid::new_v4());
            }
            _ if !n.children.is_empty() => {
                let c = usize::from(at) % n.children.len();
                n.children.remove(c);
            }
            _ => {}
        }
    }
    n
}

proptest! {
    #[test]
    fn a_delta_rebuilds_the_new_node_typed_and_raw(
        n in 0u8..40,
        children in 0usize..3,
        ops in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..12),
        new_id in any::<bool>(),
    ) {
        let base = sample_node(n, children * 10);
        let mut new = edited(&base, &ops);
        if new_id {
            // A split's new half: another node built on this one's piece.
            new.id = sop_core::Uuid::new_v4();
        }
        let base_loc = sop_core::Uuid::new_v4();
        let delta = new.encode_delta(&base, base_loc, 2, None).unwrap();
        prop_assert_eq!(
            sop_btree::PieceKind::of(&delta).unwrap(),
            sop_btree::PieceKind::Delta { id: new.id, base: base_loc, depth: 3 }
        );
        prop_assert_eq!(&Node::apply_delta(&base, &delta).unwrap(), &new);
        let base_bytes = base.encode().unwrap();
        let raw = sop_btree::RawNode::parse(&base_bytes).unwrap().apply(&delta).unwrap();
        prop_assert_eq!(raw.encode(), new.encode().unwrap());
        // Only what changed is written: an unchanged node is a handful of bytes.
        if ops.is_empty() && !new_id {
            prop_assert!(delta.len() < 64, "{} bytes", delta.len());
        }
        // Every truncation of a delta is an error.
        for cut in 0..delta.len() {
            prop_assert!(Node::apply_delta(&base, &delta[..cut]).is_err());
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_decode_to_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Node::<String, Vec<u8>>::decode(&bytes);
        let mut versioned = vec![sop_btree::NODE_FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        let _ = Node::<u64, String>::decode(&versioned);
        let _ = sop_btree::NodeShape::decode(&versioned);
        let mut delta = vec![sop_btree::DELTA_FORMAT_VERSION];
        delta.extend_from_slice(&bytes);
        let base = sample_node(4, 5);
        let _ = Node::apply_delta(&base, &delta);
        let _ = sop_btree::PieceKind::of(&delta);
        let base_bytes = base.encode().unwrap();
        let _ = sop_btree::RawNode::parse(&base_bytes).unwrap().apply(&delta);
    }
}
