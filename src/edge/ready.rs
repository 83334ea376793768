//! Wakers that name what they wake: each queues its id on a shared
//! [`ReadySet`] and notifies the loop that drains it. The relay's
//! connections and the resolver's DNS-over-TCP sessions use them, so a
//! turn services exactly what moved, not everything.
//!
//! A waker queues its id once until the owner takes it up again
//! ([`IdWaker::rearm`], at the start of a service pass), so a busy stream
//! cannot flood the set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use tokio::sync::Notify;

/// Ids with something to do, filled by wakers, drained by their owner.
#[derive(Debug)]
pub struct ReadySet<I> {
    ids: Mutex<Vec<I>>,
    notify: Notify,
}

impl<I> Default for ReadySet<I> {
    fn default() -> Self {
        ReadySet { ids: Mutex::new(Vec::new()), notify: Notify::new() }
    }
}

impl<I> ReadySet<I> {
    /// Queues `id` and wakes the owner.
    fn push(&self, id: I) {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        self.notify.notify_one();
    }

    /// Moves the queued ids into `out` (which the caller reuses).
    pub fn drain_into(&self, out: &mut Vec<I>) {
        std::mem::swap(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()), out);
    }

    /// Waits until some id was queued.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// The waker of one id: queues it once until rearmed.
#[derive(Debug)]
pub struct IdWaker<I> {
    id: I,
    queued: AtomicBool,
    ready: Arc<ReadySet<I>>,
}

impl<I: Copy + Send + Sync + 'static> IdWaker<I> {
    /// A waker for `id` on `ready`, and the `Waker` to hand out.
    pub fn new(id: I, ready: Arc<ReadySet<I>>) -> (Arc<IdWaker<I>>, Waker) {
        let w = Arc::new(IdWaker { id, queued: AtomicBool::new(false), ready });
        let waker = Waker::from(w.clone());
        (w, waker)
    }

    /// Lets the next wake-up queue the id again; call before servicing it.
    pub fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl<I: Copy + Send + Sync + 'static> Wake for IdWaker<I> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.id);
        }
    }
}
