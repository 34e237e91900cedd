//! The usage channel: bounded, from the data plane to the store's batch writer. A request
//! reserves its slot at admission ([`UsageQueue::reserve`]), so the record it produces at the
//! end can always be sent: billing records are never dropped. When every slot is taken (the
//! writer cannot keep up or storage is down), new requests are shed at admission instead.

use super::record::UsageRecord;
use tokio::sync::mpsc;

/// Records waiting for the writer, at most. Each is a few hundred bytes.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The sending side, held by the gateway.
#[derive(Clone, Debug)]
pub struct UsageQueue {
    tx: mpsc::Sender<UsageRecord>,
}

/// The receiving side, for the writer.
pub type UsageReceiver = mpsc::Receiver<UsageRecord>;

/// A reserved slot for one record.
#[derive(Debug)]
pub struct UsageSlot(mpsc::OwnedPermit<UsageRecord>);

impl UsageSlot {
    pub fn send(self, record: UsageRecord) {
        self.0.send(record);
    }
}

impl UsageQueue {
    pub fn channel(capacity: usize) -> (UsageQueue, UsageReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (UsageQueue { tx }, rx)
    }

    /// A slot for one record, or `None` when the queue is full or the writer has stopped.
    pub fn reserve(&self) -> Option<UsageSlot> {
        self.tx.clone().try_reserve_owned().ok().map(UsageSlot)
    }

    /// Records waiting for the writer (for metrics and readiness).
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}
