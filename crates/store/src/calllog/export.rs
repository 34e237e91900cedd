//! Export of the call log: every matching row as a stream, read page by page with the same
//! keyset as the list, so memory stays bounded by one page however many rows match and no
//! read transaction stays open between pages.

use super::{CallLogEntry, LogCursor, LogFilter};
use crate::db::Store;
use crate::error::StoreError;
use futures::stream::{self, Stream};
use std::collections::VecDeque;

/// Rows read per page.
const PAGE: usize = 500;

struct State {
    store: Store,
    filter: LogFilter,
    cursor: Option<LogCursor>,
    buffer: VecDeque<CallLogEntry>,
    done: bool,
}

impl Store {
    /// Every call matching `filter`, newest first. A database error ends the stream after
    /// yielding it.
    pub fn export_calls(
        &self,
        filter: LogFilter,
    ) -> impl Stream<Item = Result<CallLogEntry, StoreError>> + Send + 'static {
        let state = State {
            store: self.clone(),
            filter,
            cursor: None,
            buffer: VecDeque::new(),
            done: false,
        };
        stream::unfold(state, |mut state| async move {
            loop {
                if let Some(entry) = state.buffer.pop_front() {
                    return Some((Ok(entry), state));
                }
                if state.done {
                    return None;
                }
                match state
                    .store
                    .list_calls(&state.filter, state.cursor, PAGE)
                    .await
                {
                    Ok(page) => {
                        state.cursor = page.next;
                        state.done = page.next.is_none();
                        state.buffer.extend(page.entries);
                    }
                    Err(err) => {
                        state.done = true;
                        return Some((Err(err), state));
                    }
                }
            }
        })
    }
}
