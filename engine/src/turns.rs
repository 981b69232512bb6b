//! First come, first served on one shard: a caller takes a ticket before its first
//! await and runs when every earlier ticket has finished or been dropped.
//!
//! Appends to a partition take turns this way. glommio's `RwLock` lets a task that asks
//! for a just-released lock take it ahead of the waiter the release woke, so the lock
//! alone does not keep arrival order. A connection hands its next produce request to
//! the owner shards as soon as the previous one has taken its tickets (see
//! `api/produce.rs`), and the tickets keep the records in request order.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use crate::event::Event;

#[derive(Default)]
pub struct Turns {
    next: Cell<u64>,
    serving: Cell<u64>,
    /// Tickets dropped before their turn: skipped when the turn reaches them.
    abandoned: RefCell<BTreeSet<u64>>,
    moved: Event,
}

/// A place in line; dropping it (done or abandoned) lets the next one go.
pub struct Turn<'a> {
    turns: &'a Turns,
    ticket: u64,
}

impl Turns {
    /// Takes the next ticket. Call it before any await to keep arrival order.
    pub fn take(&self) -> Turn<'_> {
        let ticket = self.next.get();
        self.next.set(ticket + 1);
        Turn {
            turns: self,
            ticket,
        }
    }

    fn advance(&self) {
        let mut serving = self.serving.get() + 1;
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&serving) {
            serving += 1;
        }
        drop(abandoned);
        self.serving.set(serving);
        self.moved.notify_all();
    }
}

impl Turn<'_> {
    /// Completes when every earlier ticket is done.
    pub async fn wait(&self) {
        while self.turns.serving.get() != self.ticket {
            self.turns.moved.listen().await;
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.turns.serving.get() == self.ticket {
            self.turns.advance();
        } else {
            self.turns.abandoned.borrow_mut().insert(self.ticket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use futures::task::noop_waker_ref;
    use std::task::Context;

    #[test]
    fn turns_go_in_ticket_order_and_dropped_tickets_are_skipped() {
        let turns = Turns::default();
        let mut context = Context::from_waker(noop_waker_ref());
        let first = turns.take();
        let second = turns.take();
        let third = turns.take();
        let fourth = turns.take();
        assert!(Box::pin(first.wait()).poll_unpin(&mut context).is_ready());
        let mut waiting = Box::pin(third.wait());
        assert!(waiting.poll_unpin(&mut context).is_pending());
        assert!(
            Box::pin(fourth.wait())
                .poll_unpin(&mut context)
                .is_pending()
        );
        // The second gives up before its turn; when the first is done, the third goes.
        drop(second);
        assert!(waiting.poll_unpin(&mut context).is_pending());
        drop(first);
        assert!(waiting.poll_unpin(&mut context).is_ready());
        drop(waiting);
        assert!(
            Box::pin(fourth.wait())
                .poll_unpin(&mut context)
                .is_pending()
        );
        drop(third);
        assert!(Box::pin(fourth.wait()).poll_unpin(&mut context).is_ready());
        drop(fourth);
        let fifth = turns.take();
        assert!(Box::pin(fifth.wait()).poll_unpin(&mut context).is_ready());
    }
}
