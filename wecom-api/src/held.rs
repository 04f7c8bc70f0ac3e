//! The bytes of API bodies held whole at once in the process: request bodies read before a call
//! (a `media/upload` of up to 20 MiB, kept for a retry) and answers while they are read (a
//! `media/get` of up to 64 MiB). Each call is bounded on its own; this bounds them together, so
//! that a CRM job downloading media by the hundred fails some calls instead of ending the
//! process — and with it every signed-in page the gateway serves.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What the process holds at most: a dozen of the largest uploads at once.
pub const HELD_MAX: usize = 256 * 1024 * 1024;

/// The process's budget.
pub static HELD: HeldBytes = HeldBytes::new(HELD_MAX);

pub struct HeldBytes {
    held: AtomicUsize,
    max: AtomicUsize,
}

impl HeldBytes {
    pub const fn new(max: usize) -> HeldBytes {
        HeldBytes {
            held: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    /// Moves the bound (tests make it small enough to reach).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// An empty hold, to grow as a body arrives.
    pub fn hold(&'static self) -> Hold {
        Hold { of: self, n: 0 }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes taken from a [`HeldBytes`], given back when dropped.
pub struct Hold {
    of: &'static HeldBytes,
    n: usize,
}

impl Hold {
    /// Takes `n` more bytes; `false` (nothing taken) when the budget would be passed.
    #[must_use]
    pub fn grow(&mut self, n: usize) -> bool {
        let taken = self
            .of
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                h.checked_add(n)
                    .filter(|&t| t <= self.of.max.load(Ordering::Relaxed))
            });
        if taken.is_ok() {
            self.n += n;
        }
        taken.is_ok()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.of.held.fetch_sub(self.n, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hold({} bytes)", self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_add_up_to_the_bound_and_give_back_when_dropped() {
        static B: HeldBytes = HeldBytes::new(100);
        let mut a = B.hold();
        assert!(a.grow(60));
        let mut b = B.hold();
        assert!(!b.grow(41), "past the bound");
        assert_eq!(B.held(), 60, "a refusal takes nothing");
        assert!(b.grow(40));
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(B.held(), 40);
        assert!(b.grow(60));
        assert!(!b.grow(usize::MAX), "no overflow");
        drop(b);
        assert_eq!(B.held(), 0);
    }
}
