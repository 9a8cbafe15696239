//! Whether a write would succeed soon, judged from what the writer has been doing (no write
//! probe): the last commit succeeded or none failed recently, and nothing has waited long in
//! the writer's queue.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the writer has been doing, for `/readyz`.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// When each request now in the writer's queue was queued, oldest first.
    queued: Mutex<VecDeque<Instant>>,
    /// The last commit's result, and when a commit last failed.
    commits: Mutex<Commits>,
}

#[derive(Debug, Default)]
struct Commits {
    last_ok: bool,
    last_failure: Option<Instant>,
}

/// Why the store is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The last commit failed, within the failure window.
    CommitsFailing,
    /// A request has waited in the writer's queue longer than allowed.
    QueueBackedUp,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReady::CommitsFailing => "commits are failing",
            NotReady::QueueBackedUp => "requests are waiting too long to be committed",
        })
    }
}

impl Readiness {
    /// Queues a request with `send` (the queue's own non-blocking send), noting when, in
    /// queue order.
    pub(crate) fn enqueue<T>(&self, send: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
        let mut queued = self
            .queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent = send()?;
        queued.push_back(Instant::now());
        Ok(sent)
    }

    /// The writer took the oldest queued request.
    pub(crate) fn taken(&self) {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
    }

    /// A commit (with its sync) ended.
    pub(crate) fn committed(&self, ok: bool) {
        let mut commits = self
            .commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        commits.last_ok = ok;
        if !ok {
            commits.last_failure = Some(Instant::now());
        }
    }

    /// Ready: the last commit succeeded or none failed within `failure_window`, and the oldest
    /// queued request is younger than `max_queue_age`.
    pub(crate) fn check(
        &self,
        max_queue_age: Duration,
        failure_window: Duration,
    ) -> Result<(), NotReady> {
        {
            let commits = self
                .commits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let failed_lately = commits
                .last_failure
                .is_some_and(|at| at.elapsed() < failure_window);
            if !commits.last_ok && failed_lately {
                return Err(NotReady::CommitsFailing);
            }
        }
        let queued = self
            .queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match queued.front() {
            Some(oldest) if oldest.elapsed() >= max_queue_age => Err(NotReady::QueueBackedUp),
            _ => Ok(()),
        }
    }
}
