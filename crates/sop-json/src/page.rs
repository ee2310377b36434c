//! Paging through a JSON store from its cursor (SOP's `PagingInfo`).

use serde::{Deserialize, Serialize};
use sop_core::{Error, Result, UsageError};

use crate::store::{JsonItem, JsonStore};

/// Which way a page goes from the cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Towards greater keys.
    #[default]
    Forward,
    /// Towards smaller keys.
    Backward,
}

/// A page request (SOP's `PagingInfo`): from the cursor, skip `page_offset` pages of
/// `page_size` items, then fetch `fetch_count` items (`page_size` when 0), in `direction`.
/// With no cursor yet and `page_offset` 0, paging starts at the first item (the last one going
/// backward). The cursor ends past the page; once it has gone past an end, pages are empty
/// until the cursor is placed again (`find`, `first`, `last`, or a batch call).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagingInfo {
    /// Pages to skip.
    #[serde(default)]
    pub page_offset: usize,
    /// Items per page (at least 1).
    pub page_size: usize,
    /// Items to fetch (0: one page).
    #[serde(default)]
    pub fetch_count: usize,
    /// The direction.
    #[serde(default)]
    pub direction: Direction,
}

impl PagingInfo {
    /// One page of `page_size` items, forward, from the cursor.
    #[must_use]
    pub fn new(page_size: usize) -> Self {
        PagingInfo {
            page_offset: 0,
            page_size,
            fetch_count: 0,
            direction: Direction::Forward,
        }
    }
}

impl JsonStore {
    /// A page of keys (with ids) from the cursor (SOP's `GetKeys`); the cursor ends past it.
    ///
    /// # Errors
    /// [`UsageError::InvalidArgument`] for a page size of 0, or an offset with no cursor.
    pub async fn get_keys(&mut self, paging: &PagingInfo) -> Result<Vec<JsonItem>> {
        self.page(paging, false).await
    }

    /// A page of items from the cursor (SOP's `GetItems`); the cursor ends past it.
    ///
    /// # Errors
    /// As [`JsonStore::get_keys`].
    pub async fn get_items(&mut self, paging: &PagingInfo) -> Result<Vec<JsonItem>> {
        self.page(paging, true).await
    }

    async fn page(&mut self, p: &PagingInfo, values: bool) -> Result<Vec<JsonItem>> {
        if p.page_size == 0 {
            return Err(self.bad_page("page_size is 0; ask for at least 1 item per page"));
        }
        let forward = p.direction == Direction::Forward;
        if self.store.current_key().is_none() {
            if self.ended {
                // Past an end: nothing more that way (SOP's cursor restarted at the first
                // item, so a client paging to an empty page looped for ever).
                return Ok(Vec::new());
            }
            if p.page_offset != 0 {
                return Err(self.bad_page(
                    "a page offset needs a cursor: position it first (find, first or last), or \
                     ask for page_offset 0",
                ));
            }
            let any = if forward {
                self.first().await?
            } else {
                self.last().await?
            };
            if !any {
                return Ok(Vec::new());
            }
        }
        let skip = p.page_offset.saturating_mul(p.page_size);
        for _ in 0..skip {
            if !self.step(forward).await? {
                return Ok(Vec::new());
            }
        }
        let want = if p.fetch_count == 0 {
            p.page_size
        } else {
            p.fetch_count
        };
        let mut out = Vec::with_capacity(want.min(1024));
        while out.len() < want {
            let item = if values {
                self.current_item().await?
            } else {
                self.store.current_key().cloned().map(|k| JsonItem {
                    key: k.0,
                    value: None,
                    id: None,
                })
            };
            let Some(mut item) = item else { break };
            if !values {
                item.id = self.store.current_item().await?.map(|i| i.id);
            }
            out.push(item);
            if !self.step(forward).await? {
                break;
            }
        }
        Ok(out)
    }

    async fn step(&mut self, forward: bool) -> Result<bool> {
        let r = if forward {
            self.store.next().await
        } else {
            self.store.previous().await
        };
        self.moved(r)
    }

    fn bad_page(&self, reason: &str) -> Error {
        Error::Usage(UsageError::InvalidArgument {
            store: self.name().to_string(),
            what: "paging",
            reason: reason.into(),
        })
    }
}
