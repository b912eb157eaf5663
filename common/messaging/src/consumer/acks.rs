//! Coalesced acks: one `basic.ack(multiple = true)` settles every delivery of
//! the channel up to its tag, so deliveries that finish together (a batched
//! statement answers up to 64 handlers at once) cost the broker one settle
//! instead of one each. On a quorum queue every settle is a Raft command, so
//! this is a large part of RabbitMQ's CPU (`docs/performance.md`).
//!
//! The rule that keeps it safe: a multiple ack only ever covers a run of
//! deliveries that have *all* finished, starting at the oldest unsettled one
//! ([`Window::take_ready`]). A delivery that finished while an older one is
//! still being handled is a straggler: it waits at most [`STRAGGLER_HOLD`] for
//! the older ones to finish, then is acked on its own, so a slow message never
//! holds the prefetch slots of the ones behind it for longer than that.
//! Deliveries settled some other way (nack, reject) leave the window only
//! once that frame has been sent ([`Acks::settled_otherwise`]), so no
//! multiple ack can be sent over them first.
//!
//! Delivery tags restart at 1 when lapin recovers the connection under the
//! same channel. A tag that does not rise therefore starts a new epoch: what
//! belonged to the old one is settled one by one through its own acker, which
//! lapin has poisoned (it answers "not sent"), and never through a multiple
//! ack on the new channel.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use lapin::{Acker, options::BasicAckOptions};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

/// How long a delivery that finished before an older one waits for it before
/// it is acked alone: about one batched statement's round trip, so the two
/// batches a service's workers run side by side usually settle together.
pub(super) const STRAGGLER_HOLD: Duration = Duration::from_millis(10);

/// Where a delivery's place in the window is: its channel epoch and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    epoch: u64,
    tag: u64,
}

/// The acks of one consumer channel. Cheap to clone; the flushing task ends
/// after [`Acks::close`].
#[derive(Clone)]
pub(super) struct Acks {
    shared: Arc<Shared>,
}

struct Shared {
    window: Mutex<Window<Pending>>,
    wake: Notify,
    queue: String,
    /// Cancelled when the flushing task has sent its last acks.
    stopped: CancellationToken,
}

/// A finished delivery waiting for its ack to be sent.
struct Pending {
    acker: Acker,
    sent: oneshot::Sender<bool>,
}

impl Acks {
    /// Starts the task that sends the acks of one channel's deliveries.
    pub(super) fn start(queue: &str) -> Self {
        let shared = Arc::new(Shared {
            window: Mutex::new(Window::default()),
            wake: Notify::new(),
            queue: queue.to_owned(),
            stopped: CancellationToken::new(),
        });
        tokio::spawn(flush_loop(shared.clone()));
        Self { shared }
    }

    /// Takes a delivery into the window; called in the order the channel
    /// delivers, before its handler starts.
    pub(super) fn register(&self, tag: u64) -> Ticket {
        let (ticket, stale) = self.window().register(tag);
        if !stale.is_empty() {
            // A new epoch: finish the old one's acks outside the lock.
            tokio::spawn(send_each(stale));
        }
        ticket
    }

    /// Acks the delivery; `true` once the ack was sent, `false` if it was not
    /// (the channel died: the broker redelivers).
    pub(super) async fn ack(&self, ticket: Ticket, acker: Acker) -> bool {
        let (sent, answer) = oneshot::channel();
        let taken = self
            .window()
            .finish(ticket, Pending { acker, sent }, Instant::now());
        if let Err(pending) = taken {
            // Not in the window (an old epoch, or the channel is done with):
            // on its own, through its own acker.
            return ack(&pending.acker, false).await;
        }
        self.shared.wake.notify_one();
        answer.await.unwrap_or(false)
    }

    /// The delivery was nacked or rejected, and that frame has been sent.
    pub(super) fn settled_otherwise(&self, ticket: Ticket) {
        self.window().forget(ticket);
        self.shared.wake.notify_one();
    }

    /// No more deliveries: sends what has finished and stops the task.
    /// Deliveries still being handled are acked on their own afterwards.
    pub(super) fn close(&self) {
        self.window().closed = true;
        self.shared.wake.notify_one();
    }

    /// Returns once the acks of everything finished before [`Acks::close`]
    /// have been sent (or found unsendable).
    pub(super) async fn flushed(&self) {
        self.shared.stopped.cancelled().await;
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window<Pending>> {
        lock(&self.shared)
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Window<Pending>> {
    // Nothing panics while holding it; a poisoned window is still consistent.
    shared.window.lock().unwrap_or_else(|e| e.into_inner())
}

async fn flush_loop(shared: Arc<Shared>) {
    loop {
        let (deadline, closed) = {
            let window = lock(&shared);
            (window.next_deadline(STRAGGLER_HOLD), window.closed)
        };
        if !closed {
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = shared.wake.notified() => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => shared.wake.notified().await,
            }
            // Handlers woken by the same event (one batched statement's
            // answer) finish before this flush, so they share its ack.
            tokio::task::yield_now().await;
        }
        let (ready, closed) = {
            let mut window = lock(&shared);
            let hold = if window.closed {
                Duration::ZERO
            } else {
                STRAGGLER_HOLD
            };
            (window.take_ready(Instant::now(), hold), window.closed)
        };
        send(&shared.queue, ready).await;
        if closed {
            shared.stopped.cancel();
            return;
        }
    }
}

async fn send(queue: &str, ready: Ready<Pending>) {
    if let Some(mut run) = ready.run {
        let highest = run.pop().expect("a run is never empty");
        metrics::histogram!("consumer_ack_batch_size", "queue" => queue.to_owned())
            .record((run.len() + 1) as f64);
        let sent = ack(&highest.acker, true).await;
        for pending in run.into_iter().chain([highest]) {
            let _ = pending.sent.send(sent);
        }
    }
    for _ in &ready.alone {
        metrics::histogram!("consumer_ack_batch_size", "queue" => queue.to_owned()).record(1.0);
    }
    send_each(ready.alone).await;
}

/// Acks each one on its own, concurrently.
async fn send_each(pending: Vec<Pending>) {
    futures::future::join_all(pending.into_iter().map(|p| async move {
        let sent = ack(&p.acker, false).await;
        let _ = p.sent.send(sent);
    }))
    .await;
}

/// `true` once the frame was sent; an error means it was not either (the
/// channel died).
async fn ack(acker: &Acker, multiple: bool) -> bool {
    matches!(acker.ack(BasicAckOptions { multiple }).await, Ok(true))
}

/// The unsettled deliveries of one channel, oldest first; `P` is what a
/// finished one carries (generic so the rules are tested without a broker).
struct Window<P> {
    epoch: u64,
    last_tag: u64,
    open: BTreeMap<u64, Slot<P>>,
    closed: bool,
}

impl<P> Default for Window<P> {
    fn default() -> Self {
        Self {
            epoch: 0,
            last_tag: 0,
            open: BTreeMap::new(),
            closed: false,
        }
    }
}

enum Slot<P> {
    Handling,
    Finished { since: Instant, pending: P },
}

/// What one flush sends.
struct Ready<P> {
    /// Finished deliveries from the oldest unsettled one on, oldest first:
    /// one multiple ack with the last one's tag settles them all.
    run: Option<Vec<P>>,
    /// Stragglers whose hold is over, each acked on its own.
    alone: Vec<P>,
}

impl<P> Window<P> {
    /// Takes `tag` in; returns its ticket and what is left of an old epoch if
    /// the tag did not rise (the connection was recovered under the channel).
    fn register(&mut self, tag: u64) -> (Ticket, Vec<P>) {
        let mut stale = Vec::new();
        if tag <= self.last_tag {
            self.epoch += 1;
            for (_, slot) in std::mem::take(&mut self.open) {
                if let Slot::Finished { pending, .. } = slot {
                    stale.push(pending);
                }
            }
        }
        self.last_tag = tag;
        self.open.insert(tag, Slot::Handling);
        let ticket = Ticket {
            epoch: self.epoch,
            tag,
        };
        (ticket, stale)
    }

    /// Marks the delivery finished; hands `pending` back if it is not in the
    /// window (an old epoch, or the window is closed).
    fn finish(&mut self, ticket: Ticket, pending: P, now: Instant) -> Result<(), P> {
        if self.closed || ticket.epoch != self.epoch {
            return Err(pending);
        }
        match self.open.get_mut(&ticket.tag) {
            Some(slot @ Slot::Handling) => {
                *slot = Slot::Finished {
                    since: now,
                    pending,
                };
                Ok(())
            }
            _ => Err(pending),
        }
    }

    fn forget(&mut self, ticket: Ticket) {
        if ticket.epoch == self.epoch {
            self.open.remove(&ticket.tag);
        }
    }

    /// The run of finished deliveries at the front, and the stragglers that
    /// finished at least `hold` ago.
    fn take_ready(&mut self, now: Instant, hold: Duration) -> Ready<P> {
        let mut run = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if !matches!(entry.get(), Slot::Finished { .. }) {
                break;
            }
            if let Slot::Finished { pending, .. } = entry.remove() {
                run.push(pending);
            }
        }
        let due: Vec<u64> = self
            .open
            .iter()
            .filter_map(|(tag, slot)| match slot {
                Slot::Finished { since, .. } if now.duration_since(*since) >= hold => Some(*tag),
                _ => None,
            })
            .collect();
        let alone = due
            .into_iter()
            .filter_map(|tag| match self.open.remove(&tag) {
                Some(Slot::Finished { pending, .. }) => Some(pending),
                _ => None,
            })
            .collect();
        Ready {
            run: (!run.is_empty()).then_some(run),
            alone,
        }
    }

    /// When the oldest straggler's hold ends.
    fn next_deadline(&self, hold: Duration) -> Option<Instant> {
        self.open
            .values()
            .filter_map(|slot| match slot {
                Slot::Finished { since, .. } => Some(*since + hold),
                Slot::Handling => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = STRAGGLER_HOLD;

    fn window(tags: std::ops::RangeInclusive<u64>) -> (Window<u64>, Vec<Ticket>) {
        let mut window = Window::default();
        let tickets = tags
            .map(|tag| {
                let (ticket, stale) = window.register(tag);
                assert!(stale.is_empty());
                ticket
            })
            .collect();
        (window, tickets)
    }

    fn finish(window: &mut Window<u64>, ticket: Ticket, at: Instant) {
        window.finish(ticket, ticket.tag, at).unwrap();
    }

    #[test]
    fn finished_deliveries_at_the_front_are_one_run() {
        let (mut window, t) = window(1..=5);
        let now = Instant::now();
        for ticket in &t[..3] {
            finish(&mut window, *ticket, now);
        }
        let ready = window.take_ready(now, HOLD);
        assert_eq!(ready.run, Some(vec![1, 2, 3]));
        assert!(ready.alone.is_empty());
        assert!(window.take_ready(now, HOLD).run.is_none());
    }

    #[test]
    fn a_run_never_reaches_past_a_delivery_still_being_handled() {
        let (mut window, t) = window(1..=4);
        let now = Instant::now();
        for i in [1, 2, 3] {
            finish(&mut window, t[i], now);
        }
        let ready = window.take_ready(now, HOLD);
        assert!(ready.run.is_none(), "tag 1 is still being handled");
        assert!(ready.alone.is_empty(), "the stragglers are held");
        assert_eq!(window.next_deadline(HOLD), Some(now + HOLD));

        // The oldest finishes within the hold: all four go in one run.
        finish(&mut window, t[0], now);
        assert_eq!(window.take_ready(now, HOLD).run, Some(vec![1, 2, 3, 4]));
    }

    #[test]
    fn a_straggler_is_acked_alone_once_its_hold_is_over() {
        let (mut window, t) = window(1..=3);
        let start = Instant::now();
        finish(&mut window, t[1], start);
        let ready = window.take_ready(start + HOLD, HOLD);
        assert!(ready.run.is_none());
        assert_eq!(ready.alone, vec![2]);
        // Tag 1 still blocks the front; 3 has not finished.
        finish(&mut window, t[2], start + HOLD);
        assert!(window.take_ready(start + HOLD, HOLD).run.is_none());
        finish(&mut window, t[0], start + HOLD);
        assert_eq!(window.take_ready(start + HOLD, HOLD).run, Some(vec![1, 3]));
    }

    #[test]
    fn a_delivery_settled_otherwise_blocks_the_run_until_it_is_forgotten() {
        let (mut window, t) = window(1..=3);
        let now = Instant::now();
        finish(&mut window, t[0], now);
        finish(&mut window, t[2], now);
        // Tag 2 is being rejected: until that frame is out, a multiple ack
        // of 3 would ack it instead.
        assert_eq!(window.take_ready(now, HOLD).run, Some(vec![1]));
        window.forget(t[1]);
        assert_eq!(window.take_ready(now, HOLD).run, Some(vec![3]));
    }

    #[test]
    fn tags_restarting_start_a_new_epoch_and_old_tickets_stay_out_of_it() {
        let (mut window, t) = window(1..=3);
        let now = Instant::now();
        finish(&mut window, t[2], now);
        // The connection was recovered: the channel delivers from 1 again.
        let (new, stale) = window.register(1);
        assert_eq!(stale, vec![3], "the old epoch's finished ack");
        assert_ne!(new, t[0]);
        // Old tag 1 finishing must not be taken for new tag 1.
        assert_eq!(window.finish(t[0], 1, now), Err(1));
        assert!(window.take_ready(now, HOLD).run.is_none());
        finish(&mut window, new, now);
        assert_eq!(window.take_ready(now, HOLD).run, Some(vec![1]));
    }

    #[test]
    fn a_closed_window_sends_every_finished_one_and_takes_no_more() {
        let (mut window, t) = window(1..=3);
        let now = Instant::now();
        finish(&mut window, t[1], now);
        window.closed = true;
        let ready = window.take_ready(now, Duration::ZERO);
        assert_eq!(ready.alone, vec![2]);
        assert_eq!(window.finish(t[0], 1, now), Err(1));
    }
}
