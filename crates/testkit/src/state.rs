//! State shared between a `MockProvider` handle and its server: the reply queue, the request
//! log and the stream counters, plus the guard that counts a stream as cancelled when its body
//! is dropped before the terminal event was written.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{MockKind, RecordedRequest, Reply};

pub(crate) struct Shared {
    pub(crate) kind: MockKind,
    pub(crate) queue: Mutex<VecDeque<Reply>>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
    open: AtomicUsize,
    cancelled: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(kind: MockKind) -> Self {
        Shared {
            kind,
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
        }
    }

    /// Records the request and returns its 0-based sequence number (used in response ids).
    pub(crate) fn record(&self, req: RecordedRequest) -> usize {
        let mut log = self.requests.lock();
        log.push(req);
        log.len() - 1
    }

    pub(crate) fn next_reply(&self) -> Reply {
        self.queue.lock().pop_front().unwrap_or(Reply::Echo)
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub(crate) fn cancelled_streams(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Lives inside a streaming body (or a hanging handler). Dropped unfinished = the client went
/// away before the end, because hyper drops the body/handler when the connection closes.
pub(crate) struct StreamGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl StreamGuard {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        StreamGuard {
            shared,
            finished: false,
        }
    }

    /// The terminal event was handed to hyper (or the mock itself ended the stream).
    pub(crate) fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
            self.shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}
