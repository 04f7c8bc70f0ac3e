//! The task pipes between the two halves of a proxied HTTP/1.x request.
//!
//! The downstream and the upstream half run in one task (`try_join!`), each with one pipe to
//! the other: one sender, one receiver, at most [`CAPACITY`] tasks in flight. tokio's `mpsc`
//! channel, which these replace, is built for many senders on many threads: two allocations
//! per channel (its state and a block of 32 slots), a semaphore, and several atomic operations
//! per message. Here a pipe is one allocation holding a short ring of slots under a lock that
//! only its own task ever takes, and a waker per side.
//!
//! The operations keep tokio's meaning: `send` and `reserve` wait for room and fail once the
//! receiver is gone; `recv` waits for a task and returns `None` once the sender is gone and
//! the pipe is empty; dropping the receiver drops what it had not taken. `recv` and `reserve`
//! are cancel-safe, as `select!` needs: nothing is taken or reserved until they are ready.

use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Tasks a pipe holds before its sender waits.
pub(crate) const CAPACITY: usize = crate::TASK_BUFFER_SIZE;

struct State<T> {
    slots: [Option<T>; CAPACITY],
    /// Index of the oldest task.
    head: usize,
    len: usize,
    /// Slots promised to an outstanding [`Permit`].
    reserved: usize,
    sender_alive: bool,
    receiver_alive: bool,
    receiver_waker: Option<Waker>,
    sender_waker: Option<Waker>,
}

impl<T> State<T> {
    fn has_room(&self) -> bool {
        self.len + self.reserved < CAPACITY
    }

    fn push(&mut self, value: T) {
        debug_assert!(self.len < CAPACITY);
        let tail = (self.head + self.len) % CAPACITY;
        self.slots[tail] = Some(value);
        self.len += 1;
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.slots[self.head].take();
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
        value
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

type Shared<T> = Arc<Mutex<State<T>>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, State<T>> {
    // Nothing panics while holding the lock; a poisoned one still holds consistent state.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// A pipe of at most [`CAPACITY`] tasks.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Mutex::new(State {
        slots: std::array::from_fn(|_| None),
        head: 0,
        len: 0,
        reserved: 0,
        sender_alive: true,
        receiver_alive: true,
        receiver_waker: None,
        sender_waker: None,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The receiver is gone; the value that could not be sent comes back.
pub(crate) struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task pipe's receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`Sender::try_reserve`] got no room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError {
    Full,
    Closed,
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full => "the task pipe is full",
            Self::Closed => "the task pipe's receiver is gone",
        })
    }
}

impl std::error::Error for TrySendError {}

pub(crate) struct Sender<T> {
    shared: Shared<T>,
}

impl<T> Sender<T> {
    /// Waits for room, then queues `value`.
    pub(crate) async fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.reserve().await {
            Ok(permit) => {
                permit.send(value);
                Ok(())
            }
            Err(_) => Err(SendError(value)),
        }
    }

    /// Waits for room and keeps it for one task.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if !state.receiver_alive {
                return Poll::Ready(Err(SendError(())));
            }
            if state.has_room() {
                state.reserved += 1;
                return Poll::Ready(Ok(Permit { sender: self }));
            }
            register(&mut state.sender_waker, cx);
            Poll::Pending
        })
        .await
    }

    /// Keeps room for one task if there is some now.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            return Err(TrySendError::Closed);
        }
        if !state.has_room() {
            return Err(TrySendError::Full);
        }
        state.reserved += 1;
        Ok(Permit { sender: self })
    }

    /// Whether the receiver is gone.
    pub(crate) fn is_closed(&self) -> bool {
        !lock(&self.shared).receiver_alive
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.shared);
            state.sender_alive = false;
            state.receiver_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender")
    }
}

/// Room for one task, kept by [`Sender::reserve`] or [`Sender::try_reserve`]; released when
/// dropped unused.
pub(crate) struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

impl<T> Permit<'_, T> {
    /// Queues `value` in the room kept. If the receiver is gone the value is dropped, as it
    /// would have been with the rest of the pipe.
    pub(crate) fn send(self, value: T) {
        let shared = &self.sender.shared;
        std::mem::forget(self);
        let (waker, dropped) = {
            let mut state = lock(shared);
            state.reserved -= 1;
            if state.receiver_alive {
                state.push(value);
                (state.receiver_waker.take(), None)
            } else {
                (None, Some(value))
            }
        };
        drop(dropped);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.sender.shared);
            state.reserved -= 1;
            state.sender_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

pub(crate) struct Receiver<T> {
    shared: Shared<T>,
}

impl<T> Receiver<T> {
    /// The oldest task; `None` once the sender is gone and nothing is left.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| {
            let (value, waker) = {
                let mut state = lock(&self.shared);
                match state.pop() {
                    Some(v) => (Some(v), state.sender_waker.take()),
                    None if !state.sender_alive => return Poll::Ready(None),
                    None => {
                        register(&mut state.receiver_waker, cx);
                        return Poll::Pending;
                    }
                }
            };
            if let Some(w) = waker {
                w.wake();
            }
            Poll::Ready(value)
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (left, waker) = {
            let mut state = lock(&self.shared);
            state.receiver_alive = false;
            let mut left = Vec::new();
            while let Some(v) = state.pop() {
                left.push(v);
            }
            (left, state.sender_waker.take())
        };
        drop(left);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Receiver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn tasks_arrive_in_order_and_the_end_after_the_last() {
        let (tx, mut rx) = channel::<usize>();
        for i in 0..CAPACITY {
            tx.send(i).await.unwrap();
        }
        for i in 0..CAPACITY {
            assert_eq!(rx.recv().await, Some(i));
        }
        tx.send(7).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(7));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_pipe_makes_the_sender_wait_until_a_task_is_taken() {
        let (tx, mut rx) = channel::<usize>();
        for i in 0..CAPACITY {
            tx.try_reserve().unwrap().send(i);
        }
        assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full);
        let mut send = Box::pin(tx.send(99));
        assert!((&mut send).now_or_never().is_none());
        assert_eq!(rx.recv().await, Some(0));
        send.await.unwrap();
        let got: Vec<_> = (0..CAPACITY).map(|_| rx.recv().now_or_never()).collect();
        assert_eq!(got.last(), Some(&Some(Some(99))));
    }

    #[tokio::test]
    async fn a_permit_keeps_its_room_and_gives_it_back_unused() {
        let (tx, mut rx) = channel::<usize>();
        let permits: Vec<_> = (0..CAPACITY).map(|_| tx.try_reserve().unwrap()).collect();
        assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Full);
        let mut reserve = Box::pin(tx.reserve());
        assert!((&mut reserve).now_or_never().is_none());
        drop(permits);
        let permit = reserve.await.unwrap();
        permit.send(5);
        assert_eq!(rx.recv().await, Some(5));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_and_by_the_sender_going() {
        let (tx, mut rx) = channel::<usize>();
        let got_first = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = got_first.clone();
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            flag.store(true, Ordering::SeqCst);
            let end = rx.recv().await;
            (first, end)
        });
        tokio::task::yield_now().await;
        tx.send(1).await.unwrap();
        for _ in 0..10 {
            if got_first.load(Ordering::SeqCst) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(got_first.load(Ordering::SeqCst), "a send wakes the receiver");
        drop(tx);
        // A lost wake-up would leave the task waiting for ever.
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert_eq!(got.expect("the receiver was woken").unwrap(), (Some(1), None));
    }

    #[tokio::test]
    async fn the_receiver_going_fails_senders_and_drops_what_it_held() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel::<Counted>();
        for _ in 0..CAPACITY {
            tx.send(Counted(dropped.clone())).await.unwrap();
        }
        let mut waiting = Box::pin(tx.reserve());
        assert!((&mut waiting).now_or_never().is_none());
        drop(rx);
        assert_eq!(dropped.load(Ordering::SeqCst), CAPACITY);
        assert!(waiting.await.is_err());
        assert!(tx.is_closed());
        assert_eq!(tx.try_reserve().unwrap_err(), TrySendError::Closed);
        let back = tx.send(Counted(dropped.clone())).await.unwrap_err();
        drop(back);
        assert_eq!(dropped.load(Ordering::SeqCst), CAPACITY + 1);
    }

    #[tokio::test]
    async fn a_cancelled_recv_takes_nothing() {
        let (tx, mut rx) = channel::<usize>();
        assert!(rx.recv().now_or_never().is_none());
        tx.send(3).await.unwrap();
        assert_eq!(rx.recv().await, Some(3));
    }
}
