//! A single-shard broadcast event: tasks wait on it, `notify_all` wakes them all.
//! Used for "data was appended to this partition" (long-poll fetches) and for
//! "the shard is shutting down" (connections stop reading). Shard-local: `!Send`.
//!
//! Each pending listener holds exactly one slot (re-polling replaces its waker, dropping
//! the listener frees the slot), so the waiter table is bounded by the listeners alive
//! at once, not by how often they are polled. Past [`EVENT_WAITERS_MAX`] live listeners
//! a new one completes at once; every caller re-checks its condition after waking
//! (a fired event is a hint, never the fact itself).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Listeners one event holds at most; past it, new listeners are woken at once (they
/// re-check their condition and come back), so client input cannot grow the table.
pub const EVENT_WAITERS_MAX: usize = 16_384;

#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    next_slot: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Event {
    pub fn new() -> Rc<Event> {
        Rc::new(Event::default())
    }

    /// Wakes every current listener.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn listen(&self) -> Listen<'_> {
        Listen {
            event: self,
            generation: self.generation.get(),
            slot: None,
        }
    }

    /// Listeners currently waiting (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

pub struct Listen<'a> {
    event: &'a Event,
    generation: u64,
    /// This listener's entry in `event.waiters` while it is pending.
    slot: Option<u64>,
}

impl Future for Listen<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            self.slot = None; // notify_all emptied the table
            return Poll::Ready(());
        }
        let event = self.event;
        let mut waiters = event.waiters.borrow_mut();
        match self.slot {
            Some(slot) => {
                let waker = waiters
                    .get_mut(&slot)
                    .expect("a pending listener keeps its slot until notify_all or drop");
                if !waker.will_wake(context.waker()) {
                    waker.clone_from(context.waker());
                }
            }
            None => {
                if waiters.len() >= EVENT_WAITERS_MAX {
                    return Poll::Ready(());
                }
                let slot = event.next_slot.get();
                event.next_slot.set(slot + 1);
                waiters.insert(slot, context.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Listen<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot
            && self.event.generation.get() == self.generation
        {
            self.event.waiters.borrow_mut().remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use futures::task::noop_waker_ref;

    #[test]
    fn polling_a_listener_many_times_holds_one_slot_and_dropping_it_frees_it() {
        let event = Event::default();
        let mut context = Context::from_waker(noop_waker_ref());
        let mut listen = event.listen();
        for _ in 0..(EVENT_WAITERS_MAX * 2) {
            assert!(listen.poll_unpin(&mut context).is_pending());
        }
        assert_eq!(event.waiting(), 1);
        drop(listen);
        assert_eq!(event.waiting(), 0);
        // Many short-lived listeners (one per request, as connections use it) leave
        // nothing behind, so the event never fires by overflow.
        for _ in 0..(EVENT_WAITERS_MAX * 2) {
            let mut listen = event.listen();
            assert!(listen.poll_unpin(&mut context).is_pending());
        }
        assert_eq!(event.waiting(), 0);
    }

    #[test]
    fn notify_all_completes_every_pending_listener_and_only_those() {
        let event = Event::default();
        let mut context = Context::from_waker(noop_waker_ref());
        let mut first = event.listen();
        let mut second = event.listen();
        assert!(first.poll_unpin(&mut context).is_pending());
        assert!(second.poll_unpin(&mut context).is_pending());
        event.notify_all();
        assert!(first.poll_unpin(&mut context).is_ready());
        assert!(second.poll_unpin(&mut context).is_ready());
        assert_eq!(event.waiting(), 0);
        let mut later = event.listen();
        assert!(later.poll_unpin(&mut context).is_pending());
    }
}
