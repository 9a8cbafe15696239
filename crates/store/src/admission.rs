//! Where a queued request is on its way to a commit, so that work whose client has gone is not
//! done: it can be cancelled until it joins a commit group, and not after.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

const QUEUED: u8 = 0;
const JOINED: u8 = 1;
const CANCELLED: u8 = 2;
const ANSWERED: u8 = 3;

/// A request's place in the writer's queue; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Admission(Arc<AtomicU8>);

impl Admission {
    /// A request not queued yet.
    pub fn new() -> Admission {
        Admission::default()
    }

    /// Cancels the request unless it has joined a commit group: `true` when it will not be
    /// committed, `false` when it is being (or was) committed.
    pub fn cancel(&self) -> bool {
        match self
            .0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(CANCELLED) => true,
            Err(_) => false,
        }
    }

    /// The writer takes the request into a group: `false` when it was cancelled first.
    pub(crate) fn join(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, JOINED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer answered the request (committed durably, or failed).
    pub(crate) fn answer(&self) {
        self.0.store(ANSWERED, Ordering::Release);
    }

    /// Whether the writer has answered.
    pub fn is_answered(&self) -> bool {
        self.0.load(Ordering::Acquire) == ANSWERED
    }

    /// Waits until the writer has answered, at most `limit`.
    pub async fn answered(&self, limit: Duration) {
        let wait = async {
            while !self.is_answered() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
    }
}

/// The writer's answer channel for one request: answering also marks its [`Admission`].
#[derive(Debug)]
pub(crate) struct Reply {
    sender: tokio::sync::oneshot::Sender<crate::Result<crate::IngestOutcome>>,
    admission: Admission,
}

impl Reply {
    pub(crate) fn new(
        admission: Admission,
    ) -> (
        Reply,
        tokio::sync::oneshot::Receiver<crate::Result<crate::IngestOutcome>>,
    ) {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        (Reply { sender, admission }, receiver)
    }

    /// Takes the request into a commit group: `false` (and answered as cancelled) when its
    /// client has gone.
    pub(crate) fn join(&self) -> bool {
        self.admission.join()
    }

    /// Answers the request.
    pub(crate) fn send(self, result: crate::Result<crate::IngestOutcome>) {
        // Marked first, so whoever receives the answer sees it answered.
        self.admission.answer();
        let _ = self.sender.send(result);
    }
}
