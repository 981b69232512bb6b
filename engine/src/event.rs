//! A single-shard broadcast event: tasks wait on it, `notify_all` wakes them all.
//! Used for "data was appended to this partition" (long-poll fetches) and for
//! "the shard is shutting down" (connections stop reading). Shard-local: `!Send`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Waiters one event holds at most; past it, new listeners are woken at once (they
/// re-check their condition and come back), so client input cannot grow the list.
pub const EVENT_WAITERS_MAX: usize = 16_384;

#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Event {
    pub fn new() -> Rc<Event> {
        Rc::new(Event::default())
    }

    /// Wakes every current listener.
    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// A future that completes at the next `notify_all` after this call.
    pub fn listen(&self) -> Listen<'_> {
        Listen {
            event: self,
            generation: self.generation.get(),
        }
    }
}

pub struct Listen<'a> {
    event: &'a Event,
    generation: u64,
}

impl Future for Listen<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut waiters = self.event.waiters.borrow_mut();
        if waiters.len() >= EVENT_WAITERS_MAX {
            return Poll::Ready(());
        }
        waiters.push(context.waker().clone());
        Poll::Pending
    }
}
