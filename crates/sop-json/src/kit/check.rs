//! A kit's checks: parse errors and problems found after parsing, each naming its line,
//! column and field.

use serde_json::Value;
use sop_core::{Error, Result, UsageError};

use super::{KIT_FORMAT, KIT_VERSION, Kit, KitKind, parse};
use crate::locate::{Seg, position, show};
use crate::order::JsonOrder;

struct Problem {
    path: Vec<Seg>,
    reason: String,
}

fn problem(path: Vec<Seg>, reason: impl Into<String>) -> Problem {
    Problem {
        path,
        reason: reason.into(),
    }
}

impl Kit {
    /// Parses and checks a kit.
    ///
    /// # Errors
    /// [`UsageError::InvalidDocument`] naming the line, column and field of the first problem:
    /// malformed JSON, a missing or unknown field, a wrong type, a bad store name or options, a
    /// duplicate store, a key the index cannot order, a key given twice in a unique store.
    pub fn from_json(text: &str) -> Result<Self> {
        let kit: Kit = parse(text, "restore kit")?;
        if let Err(p) = kit.problems() {
            let (line, column) = position(text, &p.path).unwrap_or((0, 0));
            return Err(invalid(line, column, &p));
        }
        Ok(kit)
    }

    /// Checks a kit made in code (no lines to name: line and column are 0).
    ///
    /// # Errors
    /// As [`Kit::from_json`].
    pub fn check(&self) -> Result<()> {
        self.problems().map_err(|p| invalid(0, 0, &p))
    }

    fn problems(&self) -> std::result::Result<(), Problem> {
        if self.format != KIT_FORMAT {
            return Err(problem(
                vec![Seg::Key("format".into())],
                format!("{:?} is not {KIT_FORMAT:?}", self.format),
            ));
        }
        if self.version != KIT_VERSION {
            return Err(problem(
                vec![Seg::Key("version".into())],
                format!(
                    "version {} is not {KIT_VERSION}, the one this build reads",
                    self.version
                ),
            ));
        }
        for (s, store) in self.stores.iter().enumerate() {
            let at = |rest: &[Seg]| {
                let mut p = vec![Seg::Key("stores".into()), Seg::Index(s)];
                p.extend_from_slice(rest);
                p
            };
            if self.stores[..s].iter().any(|o| o.name == store.name) {
                return Err(problem(
                    at(&[Seg::Key("name".into())]),
                    format!("store {:?} is in the kit twice", store.name),
                ));
            }
            if let Err(e) = sop_core::StoreInfo::new(&store.store_options(), 0) {
                let field = match e {
                    Error::Usage(UsageError::InvalidStoreName { .. }) => {
                        vec![Seg::Key("name".into())]
                    }
                    Error::Usage(UsageError::SlotLengthOutOfRange { .. }) => {
                        vec![Seg::Key("options".into()), Seg::Key("slot_length".into())]
                    }
                    _ => vec![Seg::Key("options".into())],
                };
                return Err(problem(at(&field), e.to_string()));
            }
            if let Some(spec) = &store.index
                && let Err(Error::Usage(UsageError::InvalidDocument { field, reason, .. })) =
                    spec.check()
            {
                return Err(problem(
                    at(&[Seg::Key("index".into())]),
                    format!("{field}: {reason}"),
                ));
            }
            if store.kind == KitKind::Strings {
                if store.index.is_some() {
                    return Err(problem(
                        at(&[Seg::Key("index".into())]),
                        "a store of strings orders its keys as strings: no index specification",
                    ));
                }
                for (i, item) in store.items.iter().enumerate() {
                    for (field, v) in [("key", &item.key), ("value", &item.value)] {
                        if !v.is_string() {
                            return Err(problem(
                                at(&[
                                    Seg::Key("items".into()),
                                    Seg::Index(i),
                                    Seg::Key(field.into()),
                                ]),
                                "a store of kind \"strings\" holds strings",
                            ));
                        }
                    }
                }
            }
            let order = JsonOrder::new(store.index.clone());
            let mut keys: Vec<(usize, &Value)> = Vec::with_capacity(store.items.len());
            for (i, item) in store.items.iter().enumerate() {
                if store.index.is_some() && !item.key.is_object() {
                    return Err(problem(
                        at(&[
                            Seg::Key("items".into()),
                            Seg::Index(i),
                            Seg::Key("key".into()),
                        ]),
                        "the store has an index specification: its keys are JSON objects",
                    ));
                }
                keys.push((i, &item.key));
            }
            if store.options.unique {
                keys.sort_by(|a, b| order.compare_keys(a.1, b.1).then(a.0.cmp(&b.0)));
                if let Some(w) = keys
                    .windows(2)
                    .find(|w| order.compare_keys(w[0].1, w[1].1).is_eq())
                {
                    return Err(problem(
                        at(&[
                            Seg::Key("items".into()),
                            Seg::Index(w[1].0),
                            Seg::Key("key".into()),
                        ]),
                        format!(
                            "the key equals that of item {} in a store of unique keys",
                            w[0].0
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn invalid(line: usize, column: usize, p: &Problem) -> Error {
    Error::Usage(UsageError::InvalidDocument {
        what: "restore kit",
        line,
        column,
        field: show(&p.path),
        reason: p.reason.clone(),
    })
}
