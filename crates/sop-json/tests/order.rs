//! The JSON key order is a total order consistent with equality: with an index specification
//! (on the indexed fields) and without one (whole values), over values whose types vary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sop_json::{IndexSpec, JsonOrder, compare_values};

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..4).prop_map(|i| json!(i)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        (-3i32..4).prop_map(|i| json!(f64::from(i))), // integral floats: 1.0 beside 1
        (-30i32..40).prop_map(|i| json!(f64::from(i) / 8.0)),
        prop_oneof![
            Just(-0.0f64),
            Just(0.0),
            Just(1e300),
            Just(-1e300),
            Just(9.3e18),
            Just(1.8e19)
        ]
        .prop_map(|f| json!(f)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "[a-c]{0,3}".prop_map(Value::String),
        Just(json!("é")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys: objects with some of the fields a, b, c (of any type), or now and then not objects.
fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => prop::collection::btree_map("[a-d]", value(), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        1 => leaf(),
    ]
}

fn spec() -> impl Strategy<Value = IndexSpec> {
    prop::collection::vec(("[a-c]", any::<bool>()), 1..4).prop_map(|fields| {
        let mut s = IndexSpec::new();
        for (f, asc) in fields {
            if !s.index_fields.iter().any(|x| x.field_name == f) {
                s = s.field(&f, asc);
            }
        }
        s
    })
}

fn projection(spec: &IndexSpec, v: &Value) -> Vec<Option<Value>> {
    spec.index_fields
        .iter()
        .map(|f| v.as_object().and_then(|o| o.get(&f.field_name)).cloned())
        .collect()
}

fn check_total(
    cmp: &dyn Fn(&Value, &Value) -> Ordering,
    eq: &dyn Fn(&Value, &Value) -> bool,
    vs: &[Value],
) {
    for a in vs {
        assert_eq!(cmp(a, a), Ordering::Equal, "reflexive: {a}");
        for b in vs {
            let ab = cmp(a, b);
            assert_eq!(ab, cmp(b, a).reverse(), "antisymmetric: {a} vs {b}");
            assert_eq!(
                ab == Ordering::Equal,
                eq(a, b),
                "equal exactly when equal: {a} vs {b}"
            );
            for c in vs {
                if ab != Ordering::Greater && cmp(b, c) != Ordering::Greater {
                    assert_ne!(
                        cmp(a, c),
                        Ordering::Greater,
                        "transitive: {a} <= {b} <= {c}"
                    );
                }
            }
        }
    }
    // Sorting gives a sequence every adjacent pair of which is in order.
    let mut sorted = vs.to_vec();
    sorted.sort_by(|a, b| cmp(a, b));
    for w in sorted.windows(2) {
        assert_ne!(cmp(&w[0], &w[1]), Ordering::Greater);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn numbers_are_totally_ordered(vs in prop::collection::vec(number(), 1..12)) {
        check_total(&|a, b| compare_values(a, b), &|a, b| a == b, &vs);
    }

    #[test]
    fn whole_values_are_totally_ordered(vs in prop::collection::vec(value(), 1..9)) {
        check_total(&|a, b| compare_values(a, b), &|a, b| a == b, &vs);
    }

    #[test]
    fn index_spec_order_is_total_and_consistent_with_equal_fields(
        spec in spec(),
        vs in prop::collection::vec(key(), 1..9),
    ) {
        let order = JsonOrder::new(Some(spec.clone()));
        check_total(
            &|a, b| order.compare_keys(a, b),
            &|a, b| projection(&spec, a) == projection(&spec, b),
            &vs,
        );
    }
}

#[test]
fn documented_type_rank_and_number_rules() {
    let ranked = [
        json!(null),
        json!(false),
        json!(true),
        json!(-1e300),
        json!(-5),
        json!(1),
        json!(1.0),
        json!(1.5),
        json!(u64::MAX),
        json!(1e300),
        json!(""),
        json!("a"),
        json!("é"),
        json!([]),
        json!([1]),
        json!([1, 2]),
        json!([2]),
        json!({}),
        json!({"a": 1}),
        json!({"a": 2}),
        json!({"b": 0}),
    ];
    for w in ranked.windows(2) {
        assert_eq!(
            compare_values(&w[0], &w[1]),
            Ordering::Less,
            "{} < {}",
            w[0],
            w[1]
        );
    }
    // A descending field reverses that field only; a missing field is the smallest.
    let order = JsonOrder::new(Some(IndexSpec::new().field("x", false).field("y", true)));
    assert_eq!(
        order.compare_keys(&json!({"x": 2, "y": 9}), &json!({"x": 1, "y": 0})),
        Ordering::Less
    );
    assert_eq!(
        order.compare_keys(&json!({"x": 1, "y": 0}), &json!({"x": 1, "y": 9})),
        Ordering::Less
    );
    assert_eq!(
        order.compare_keys(&json!({"y": 0}), &json!({"x": null})),
        Ordering::Greater
    );
    // Fields outside the specification ride along.
    assert_eq!(
        order.compare_keys(&json!({"x": 1, "z": 1}), &json!({"x": 1, "z": 2})),
        Ordering::Equal
    );
}
