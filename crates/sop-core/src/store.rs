//! A B-tree store's options (what the user asks for) and info (what is persisted).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Uuid};

/// The fewest items a node may be configured to hold.
pub const MIN_SLOT_LENGTH: usize = 2;
/// The most items a node may be configured to hold.
pub const MAX_SLOT_LENGTH: usize = 10_000;
/// The slot length SOP's `Database` uses when the caller names none.
pub const DEFAULT_SLOT_LENGTH: usize = 1_000;
const MAX_NAME_LEN: usize = 128;

/// SOP's presets for where values live, by their typical size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueDataSize {
    /// Values live inside the B-tree node: one read fetches key and value.
    Small,
    /// Values live in their own blobs, written at commit and cached globally (L2).
    Medium,
    /// Values live in their own blobs, written as soon as they are added or updated so that
    /// the commit of big values stays short; not cached.
    Big,
}

/// How long each kind of entry stays in the L2 cache, and whether reads extend it ("sliding").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCacheConfig {
    /// Registry handles. At least 10 minutes: commits validate against cached handles for the
    /// whole commit, so a shorter life only adds disk reads.
    pub registry: Duration,
    /// Whether a registry read extends its entry's life.
    pub registry_sliding: bool,
    /// Decoded nodes. Zero means nodes are not cached in L2.
    pub node: Duration,
    /// Whether a node read extends its entry's life.
    pub node_sliding: bool,
    /// Values kept outside nodes (only when the store caches values globally).
    pub value_data: Duration,
    /// Whether a value read extends its entry's life.
    pub value_data_sliding: bool,
    /// The store's [`StoreInfo`].
    pub store_info: Duration,
    /// Whether a store-info read extends its entry's life.
    pub store_info_sliding: bool,
}

impl Default for StoreCacheConfig {
    /// SOP's defaults: registry 15 min, nodes 5 min, values 10 min, store info 10 min, all fixed.
    fn default() -> Self {
        StoreCacheConfig {
            registry: Duration::from_secs(15 * 60),
            registry_sliding: false,
            node: Duration::from_secs(5 * 60),
            node_sliding: false,
            value_data: Duration::from_secs(10 * 60),
            value_data_sliding: false,
            store_info: Duration::from_secs(10 * 60),
            store_info_sliding: false,
        }
    }
}

impl StoreCacheConfig {
    /// Applies SOP's minimums: registry at least 10 min; store info at least 5 min; nodes either
    /// not cached (zero) or at least 5 min; values zero becomes 5 min.
    #[must_use]
    pub fn normalized(mut self) -> Self {
        const FIVE_MIN: Duration = Duration::from_secs(5 * 60);
        const TEN_MIN: Duration = Duration::from_secs(10 * 60);
        self.registry = self.registry.max(TEN_MIN);
        self.store_info = self.store_info.max(FIVE_MIN);
        if !self.node.is_zero() {
            self.node = self.node.max(FIVE_MIN);
        } else {
            self.node_sliding = false;
        }
        if self.value_data.is_zero() {
            self.value_data = FIVE_MIN;
        }
        self
    }
}

/// What a caller asks for when creating a B-tree store.
///
/// The defaults are SOP's: slot length 1000, unique keys, values inside nodes.
/// ```
/// use sop_core::{StoreOptions, ValueDataSize};
/// let opts = StoreOptions::new("users").slot_length(64).unique(false);
/// assert_eq!(opts.slot_length, 64);
/// let big = StoreOptions::with_value_size("videos", ValueDataSize::Big);
/// assert!(!big.value_in_node && big.value_actively_persisted);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreOptions {
    /// The store's name: 1 to 128 characters of ASCII letters, digits, `_`, `-` and `.`, not
    /// starting with `.` (it names a folder on disk).
    pub name: String,
    /// The most items a node holds, in `2..=10000`.
    pub slot_length: usize,
    /// Whether keys are unique. Non-unique stores keep equal keys in insertion order.
    pub unique: bool,
    /// Whether values live inside the nodes (small values) or in blobs of their own.
    pub value_in_node: bool,
    /// Whether out-of-node values are written at add/update time rather than at commit.
    pub value_actively_persisted: bool,
    /// Whether out-of-node values are cached in the L2 cache.
    pub value_globally_cached: bool,
    /// Whether a full leaf first moves items to a sibling with room before splitting.
    pub leaf_load_balancing: bool,
    /// Free text for people.
    pub description: String,
    /// L2 cache lifetimes.
    pub cache: StoreCacheConfig,
}

impl StoreOptions {
    /// SOP's defaults for a store named `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        StoreOptions {
            name: name.into(),
            slot_length: DEFAULT_SLOT_LENGTH,
            unique: true,
            value_in_node: true,
            value_actively_persisted: false,
            value_globally_cached: false,
            leaf_load_balancing: false,
            description: String::new(),
            cache: StoreCacheConfig::default(),
        }
    }

    /// SOP's presets (`ConfigureStore`) for values of the given size.
    #[must_use]
    pub fn with_value_size(name: impl Into<String>, size: ValueDataSize) -> Self {
        let opts = StoreOptions::new(name);
        match size {
            ValueDataSize::Small => opts,
            ValueDataSize::Medium => opts.value_in_node(false).value_globally_cached(true),
            ValueDataSize::Big => opts.value_in_node(false).value_actively_persisted(true),
        }
    }

    /// Sets the slot length.
    #[must_use]
    pub fn slot_length(mut self, n: usize) -> Self {
        self.slot_length = n;
        self
    }

    /// Sets key uniqueness.
    #[must_use]
    pub fn unique(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }

    /// Sets whether values live inside nodes.
    #[must_use]
    pub fn value_in_node(mut self, yes: bool) -> Self {
        self.value_in_node = yes;
        self
    }

    /// Sets whether out-of-node values are written at add/update time.
    #[must_use]
    pub fn value_actively_persisted(mut self, yes: bool) -> Self {
        self.value_actively_persisted = yes;
        self
    }

    /// Sets whether out-of-node values are cached globally.
    #[must_use]
    pub fn value_globally_cached(mut self, yes: bool) -> Self {
        self.value_globally_cached = yes;
        self
    }

    /// Sets leaf load balancing.
    #[must_use]
    pub fn leaf_load_balancing(mut self, yes: bool) -> Self {
        self.leaf_load_balancing = yes;
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the cache lifetimes.
    #[must_use]
    pub fn cache(mut self, cache: StoreCacheConfig) -> Self {
        self.cache = cache;
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`UsageError::InvalidStoreName`](crate::UsageError::InvalidStoreName), [`UsageError::SlotLengthOutOfRange`](crate::UsageError::SlotLengthOutOfRange), or [`UsageError::InvalidOptions`](crate::UsageError::InvalidOptions)
    /// when in-node values are also asked to be persisted or cached separately.
    pub fn validate(&self) -> Result<()> {
        validate_store_name(&self.name)?;
        if !(MIN_SLOT_LENGTH..=MAX_SLOT_LENGTH).contains(&self.slot_length) {
            return Err(Error::Usage(crate::UsageError::SlotLengthOutOfRange {
                got: self.slot_length,
                min: MIN_SLOT_LENGTH,
                max: MAX_SLOT_LENGTH,
            }));
        }
        if self.value_in_node && (self.value_actively_persisted || self.value_globally_cached) {
            return Err(Error::Usage(crate::UsageError::InvalidOptions {
                store: self.name.clone(),
                reason: "values kept in nodes cannot also be actively persisted or globally cached"
                    .into(),
            }));
        }
        Ok(())
    }
}

/// Checks a store name: it becomes a folder name, so it must be safe on every file system.
///
/// # Errors
/// [`UsageError::InvalidStoreName`](crate::UsageError::InvalidStoreName) saying what is wrong.
pub fn validate_store_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::Usage(crate::UsageError::InvalidStoreName {
            name: name.chars().take(200).collect(),
            reason,
        }))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 128 bytes");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

/// A store's persisted description: its options, where its root is, and how many items it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The store's name.
    pub name: String,
    /// The most items a node holds.
    pub slot_length: usize,
    /// Whether keys are unique.
    pub unique: bool,
    /// Whether values live inside nodes.
    pub value_in_node: bool,
    /// Whether out-of-node values are written at add/update time.
    pub value_actively_persisted: bool,
    /// Whether out-of-node values are cached globally.
    pub value_globally_cached: bool,
    /// Whether full leaves move items to siblings before splitting.
    pub leaf_load_balancing: bool,
    /// Free text for people.
    pub description: String,
    /// How many items the store holds (as of the last commit, or as seen by a transaction).
    pub count: u64,
    /// The root node's logical id. It never changes for the life of the store.
    pub root_id: Uuid,
    /// When the store was created (Unix ms).
    pub created_ms: i64,
    /// When the store was last changed (Unix ms).
    pub updated_ms: i64,
    /// L2 cache lifetimes, normalized.
    pub cache: StoreCacheConfig,
    /// The key and value types and the key order it was created with, checked at every open
    /// (`None`: created before stores recorded them, or through the bare tree API).
    pub types: Option<StoreTypes>,
}

/// The types a store was created with: what its bytes mean. Opening it with other types would
/// misread every item (and break key order), so it is refused with [`UsageError::TypeMismatch`](crate::UsageError::TypeMismatch).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StoreTypes {
    /// The key type's name (`std::any::type_name`).
    pub key: String,
    /// The value type's name.
    pub value: String,
    /// The key order's name (the comparator's `KeyComparator::name`).
    pub order: String,
}

impl std::fmt::Display for StoreTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} -> {} ordered by {}",
            self.key, self.value, self.order
        )
    }
}

/// The layout of [`StoreInfo`] in store format 1 and commit record format 1 (before stores
/// recorded their types), for reading files and logs written by earlier versions.
#[derive(Clone, Debug, Deserialize)]
pub struct StoreInfoV1 {
    name: String,
    slot_length: usize,
    unique: bool,
    value_in_node: bool,
    value_actively_persisted: bool,
    value_globally_cached: bool,
    leaf_load_balancing: bool,
    description: String,
    count: u64,
    root_id: Uuid,
    created_ms: i64,
    updated_ms: i64,
    cache: StoreCacheConfig,
}

impl From<StoreInfoV1> for StoreInfo {
    fn from(v: StoreInfoV1) -> StoreInfo {
        StoreInfo {
            name: v.name,
            slot_length: v.slot_length,
            unique: v.unique,
            value_in_node: v.value_in_node,
            value_actively_persisted: v.value_actively_persisted,
            value_globally_cached: v.value_globally_cached,
            leaf_load_balancing: v.leaf_load_balancing,
            description: v.description,
            count: v.count,
            root_id: v.root_id,
            created_ms: v.created_ms,
            updated_ms: v.updated_ms,
            cache: v.cache,
            types: None,
        }
    }
}

impl StoreInfo {
    /// The info of a new, empty store.
    ///
    /// # Errors
    /// What [`StoreOptions::validate`] returns.
    pub fn new(options: &StoreOptions, now_ms: i64) -> Result<Self> {
        options.validate()?;
        Ok(StoreInfo {
            name: options.name.clone(),
            slot_length: options.slot_length,
            unique: options.unique,
            value_in_node: options.value_in_node,
            value_actively_persisted: options.value_actively_persisted,
            value_globally_cached: options.value_globally_cached,
            leaf_load_balancing: options.leaf_load_balancing,
            description: options.description.clone(),
            count: 0,
            root_id: Uuid::new_v4(),
            created_ms: now_ms,
            updated_ms: now_ms,
            cache: options.cache.normalized(),
            types: None,
        })
    }

    /// Checks that a store of this info may be opened with keys of type `key`, values of type
    /// `value` and the order `order` (names as [`StoreTypes`] records them); allocates nothing
    /// when they match (every open checks).
    ///
    /// # Errors
    /// [`UsageError::TypeMismatch`](crate::UsageError::TypeMismatch) when the store recorded other types.
    pub fn check_types(&self, key: &str, value: &str, order: &str) -> Result<()> {
        match &self.types {
            Some(holds) if holds.key != key || holds.value != value || holds.order != order => {
                Err(Error::Usage(crate::UsageError::TypeMismatch {
                    store: self.name.clone(),
                    asked: format!("{key} -> {value} ordered by {order}"),
                    holds: holds.to_string(),
                }))
            }
            _ => Ok(()),
        }
    }

    /// Checks that `options` describe this store: reopening a store with a different shape
    /// (slot length, uniqueness, value placement, balancing) would misread its nodes.
    ///
    /// # Errors
    /// [`UsageError::InvalidOptions`](crate::UsageError::InvalidOptions) naming the first setting that differs.
    pub fn check_compatible(&self, options: &StoreOptions) -> Result<()> {
        let differs = |what: &str, stored: String, asked: String| {
            Err(Error::Usage(crate::UsageError::InvalidOptions {
                store: self.name.clone(),
                reason: format!("{what} is {stored} in the stored store but {asked} was asked"),
            }))
        };
        if self.name != options.name {
            return differs("the name", self.name.clone(), options.name.clone());
        }
        if self.slot_length != options.slot_length {
            return differs(
                "slot length",
                self.slot_length.to_string(),
                options.slot_length.to_string(),
            );
        }
        let flags = [
            ("unique", self.unique, options.unique),
            ("value_in_node", self.value_in_node, options.value_in_node),
            (
                "value_actively_persisted",
                self.value_actively_persisted,
                options.value_actively_persisted,
            ),
            (
                "value_globally_cached",
                self.value_globally_cached,
                options.value_globally_cached,
            ),
            (
                "leaf_load_balancing",
                self.leaf_load_balancing,
                options.leaf_load_balancing,
            ),
        ];
        for (what, stored, asked) in flags {
            if stored != asked {
                return differs(what, stored.to_string(), asked.to_string());
            }
        }
        Ok(())
    }

    /// The fewest items a non-root node may hold: half the slot length, rounded down.
    #[must_use]
    pub fn min_items(&self) -> usize {
        self.slot_length / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sops() {
        let o = StoreOptions::new("s");
        assert_eq!(o.slot_length, 1000);
        assert!(o.unique && o.value_in_node);
        assert!(!o.leaf_load_balancing);
        o.validate().unwrap();
    }

    #[test]
    fn presets() {
        let m = StoreOptions::with_value_size("m", ValueDataSize::Medium);
        assert!(!m.value_in_node && m.value_globally_cached && !m.value_actively_persisted);
        m.validate().unwrap();
        let b = StoreOptions::with_value_size("b", ValueDataSize::Big);
        assert!(!b.value_in_node && !b.value_globally_cached && b.value_actively_persisted);
        b.validate().unwrap();
    }

    #[test]
    fn slot_length_out_of_range_is_typed() {
        for n in [0, 1, 10_001, usize::MAX] {
            let err = StoreOptions::new("s")
                .slot_length(n)
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, Error::Usage(crate::UsageError::SlotLengthOutOfRange { got, min: 2, max: 10_000 }) if got == n),
                "{err}"
            );
        }
        for n in [2, 3, 16, 10_000] {
            StoreOptions::new("s").slot_length(n).validate().unwrap();
        }
    }

    #[test]
    fn bad_names_are_typed() {
        for name in ["", ".hidden", "a/b", "a b", &"x".repeat(129), "é"] {
            let err = StoreOptions::new(name).validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Usage(crate::UsageError::InvalidStoreName { .. })
                ),
                "{name:?}: {err}"
            );
        }
        StoreOptions::new("Users_2024-v1.idx").validate().unwrap();
    }

    #[test]
    fn contradictory_value_flags_are_refused() {
        let err = StoreOptions::new("s")
            .value_globally_cached(true)
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, Error::Usage(crate::UsageError::InvalidOptions { .. })),
            "{err}"
        );
    }

    #[test]
    fn compatibility_names_the_difference() {
        let o = StoreOptions::new("s").slot_length(8);
        let info = StoreInfo::new(&o, 5).unwrap();
        info.check_compatible(&o).unwrap();
        let err = info.check_compatible(&o.clone().unique(false)).unwrap_err();
        assert!(err.to_string().contains("unique"), "{err}");
        let err = info.check_compatible(&o.slot_length(10)).unwrap_err();
        assert!(err.to_string().contains("slot length"), "{err}");
    }

    #[test]
    fn cache_minimums() {
        let c = StoreCacheConfig {
            registry: Duration::from_secs(1),
            node: Duration::from_secs(1),
            value_data: Duration::ZERO,
            store_info: Duration::ZERO,
            ..StoreCacheConfig::default()
        }
        .normalized();
        assert_eq!(c.registry, Duration::from_secs(600));
        assert_eq!(c.node, Duration::from_secs(300));
        assert_eq!(c.value_data, Duration::from_secs(300));
        assert_eq!(c.store_info, Duration::from_secs(300));
        let off = StoreCacheConfig {
            node: Duration::ZERO,
            node_sliding: true,
            ..StoreCacheConfig::default()
        }
        .normalized();
        assert!(off.node.is_zero() && !off.node_sliding);
    }

    #[test]
    fn store_info_round_trips_through_the_codec() {
        let info = StoreInfo::new(&StoreOptions::new("s").description("d"), 42).unwrap();
        let bytes = crate::codec::encode(&info).unwrap();
        let back: StoreInfo = crate::codec::decode(&bytes, "store info").unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn a_format_1_store_info_reads_as_one_without_types() {
        let mut info = StoreInfo::new(&StoreOptions::new("s").description("d"), 42).unwrap();
        let mut bytes = crate::codec::encode(&info).unwrap();
        // Format 1 is format 2 without the trailing `types` (an absent Option is one 0 byte).
        assert_eq!(bytes.pop(), Some(0));
        let v1: StoreInfoV1 = crate::codec::decode(&bytes, "store info").unwrap();
        info.types = None;
        assert_eq!(StoreInfo::from(v1), info);
    }
}
