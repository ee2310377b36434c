//! The order of JSON keys: a total order over every `serde_json::Value`, and index
//! specifications (ordered fields, each ascending or descending) on top of it.
//!
//! SOP's comparer coerced a field to the type of the first value it saw and cached that guess,
//! so a field whose type varied ordered differently depending on which key came first. Here
//! values of different types order by a fixed type rank:
//!
//! missing field < `null` < `false` < `true` < numbers < strings < arrays < objects
//!
//! Numbers order by exact value (integers and floats compared without rounding); an integer
//! and a float of the same value (`1` and `1.0`, which `serde_json` holds as different values)
//! order integer first. Strings order by code point; arrays element by element, then by
//! length; objects by their (field, value) pairs sorted by field, then by size. Two keys
//! compare equal exactly when `serde_json` says they are equal (on the indexed fields, when
//! there is an index specification).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use sop_btree::KeyComparator;

use crate::value::Json;

/// The type rank of a value (see the module documentation).
fn rank(v: Option<&Value>) -> u8 {
    match v {
        None => 0,
        Some(Value::Null) => 1,
        Some(Value::Bool(false)) => 2,
        Some(Value::Bool(true)) => 3,
        Some(Value::Number(_)) => 4,
        Some(Value::String(_)) => 5,
        Some(Value::Array(_)) => 6,
        Some(Value::Object(_)) => 7,
    }
}

/// The total order over JSON values.
#[must_use]
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    compare_opt(Some(a), Some(b))
}

fn compare_opt(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => compare_numbers(x, y),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Array(x)), Some(Value::Array(y))) => x
            .iter()
            .zip(y)
            .map(|(p, q)| compare_values(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Some(Value::Object(x)), Some(Value::Object(y))) => compare_objects(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_objects(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    let (xs, ys) = (sorted(x), sorted(y));
    xs.iter()
        .zip(&ys)
        .map(|((kx, vx), (ky, vy))| kx.cmp(ky).then_with(|| compare_values(vx, vy)))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| xs.len().cmp(&ys.len()))
}

fn sorted(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<(&String, &Value)> = m.iter().collect();
    v.sort_by(|p, q| p.0.cmp(q.0));
    v
}

/// An exact number: an integer, or a float (never NaN or infinite in JSON).
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Num::Int(i128::from(u))
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

/// An integer against a float, exactly.
fn int_vs_float(i: i128, f: f64) -> Ordering {
    // Every i64/u64 is inside (-2^64, 2^64): floats beyond are greater or smaller outright.
    const BOUND: f64 = 18_446_744_073_709_551_616.0; // 2^64
    if f >= BOUND {
        return Ordering::Less;
    }
    if f <= -BOUND {
        return Ordering::Greater;
    }
    let t = f.trunc();
    // |t| < 2^64: exact as i128.
    let ti = t as i128;
    match i.cmp(&ti) {
        Ordering::Equal if f > t => Ordering::Less,
        Ordering::Equal if f < t => Ordering::Greater,
        // Same value: the integer first (serde_json holds `1` and `1.0` as different values).
        Ordering::Equal => Ordering::Less,
        o => o,
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (num(a), num(b)) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        // No NaN in JSON; -0.0 and 0.0 are equal, as serde_json says.
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Num::Int(x), Num::Float(y)) => int_vs_float(x, y),
        (Num::Float(x), Num::Int(y)) => int_vs_float(y, x).reverse(),
    }
}

fn field<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
    v.as_object().and_then(|o| o.get(name))
}

/// One field of an index specification (SOP's `IndexFieldSpecification`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexField {
    /// The key's field (a top-level field of the key object).
    pub field_name: String,
    /// Ascending (`true`) or descending.
    #[serde(default = "yes")]
    pub ascending_sort_order: bool,
}

fn yes() -> bool {
    true
}

/// How a JSON store orders its keys (SOP's `IndexSpecification`): the fields that make up the
/// key, in order, each ascending or descending. Keys are then JSON objects; fields outside the
/// specification ride along in the key without taking part in the order.
///
/// ```
/// use sop_json::IndexSpec;
/// let spec = IndexSpec::new().field("last", true).field("age", false);
/// let parsed = IndexSpec::from_json(
///     r#"{"index_fields":[{"field_name":"last","ascending_sort_order":true},
///                         {"field_name":"age","ascending_sort_order":false}]}"#,
/// )?;
/// assert_eq!(spec, parsed);
/// # Ok::<(), sop_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// The fields, most significant first.
    pub index_fields: Vec<IndexField>,
}

impl IndexSpec {
    /// An empty specification (add fields with [`IndexSpec::field`]).
    #[must_use]
    pub fn new() -> Self {
        IndexSpec::default()
    }

    /// Adds a field.
    #[must_use]
    pub fn field(mut self, name: &str, ascending: bool) -> Self {
        self.index_fields.push(IndexField {
            field_name: name.to_string(),
            ascending_sort_order: ascending,
        });
        self
    }

    /// Parses SOP's JSON form (`{"index_fields":[{"field_name":..,"ascending_sort_order":..}]}`).
    ///
    /// # Errors
    /// [`UsageError::InvalidDocument`](sop_core::UsageError::InvalidDocument) naming the line,
    /// column and field.
    pub fn from_json(text: &str) -> sop_core::Result<Self> {
        let spec: IndexSpec = crate::kit::parse(text, "index specification")?;
        spec.check()?;
        Ok(spec)
    }

    pub(crate) fn check(&self) -> sop_core::Result<()> {
        let bad = |field: String, reason: &str| {
            Err(sop_core::Error::Usage(
                sop_core::UsageError::InvalidDocument {
                    what: "index specification",
                    line: 0,
                    column: 0,
                    field,
                    reason: reason.to_string(),
                },
            ))
        };
        if self.index_fields.is_empty() {
            return bad(
                "index_fields".into(),
                "no field: name at least one, or open the store without a specification",
            );
        }
        for (i, f) in self.index_fields.iter().enumerate() {
            if f.field_name.is_empty() {
                return bad(format!("index_fields[{i}].field_name"), "empty field name");
            }
            if self.index_fields[..i]
                .iter()
                .any(|g| g.field_name == f.field_name)
            {
                return bad(
                    format!("index_fields[{i}].field_name"),
                    "the field is named twice",
                );
            }
        }
        Ok(())
    }
}

/// The key order of a JSON store: by its index specification, or (without one) the total
/// order over whole values. Its name, recorded with the store, carries the specification, so
/// a store reopened without one orders as it was made.
#[derive(Clone, Debug, Default)]
pub struct JsonOrder {
    spec: Option<IndexSpec>,
}

/// What every JSON store's recorded key order starts with.
pub(crate) const ORDER_PREFIX: &str = "sop-json index ";

impl JsonOrder {
    /// The order of a specification (`None`: whole values).
    #[must_use]
    pub fn new(spec: Option<IndexSpec>) -> Self {
        JsonOrder { spec }
    }

    /// The specification.
    #[must_use]
    pub fn spec(&self) -> Option<&IndexSpec> {
        self.spec.as_ref()
    }

    /// The order recorded with a store, if it is a JSON store's.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(ORDER_PREFIX)?;
        if rest == "none" {
            return Some(JsonOrder { spec: None });
        }
        let spec = serde_json::from_str(rest).ok()?;
        Some(JsonOrder { spec: Some(spec) })
    }

    /// Compares two keys.
    #[must_use]
    pub fn compare_keys(&self, a: &Value, b: &Value) -> Ordering {
        let Some(spec) = &self.spec else {
            return compare_values(a, b);
        };
        for f in &spec.index_fields {
            let o = compare_opt(field(a, &f.field_name), field(b, &f.field_name));
            let o = if f.ascending_sort_order {
                o
            } else {
                o.reverse()
            };
            if o.is_ne() {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl KeyComparator<Json> for JsonOrder {
    fn compare(&self, a: &Json, b: &Json) -> Ordering {
        self.compare_keys(&a.0, &b.0)
    }

    fn name(&self) -> Cow<'static, str> {
        match &self.spec {
            None => format!("{ORDER_PREFIX}none").into(),
            Some(spec) => format!(
                "{ORDER_PREFIX}{}",
                serde_json::to_string(spec).unwrap_or_default()
            )
            .into(),
        }
    }
}
