//! The bytes of API bodies held whole at once in the process: request bodies read before a call
//! (a `media/upload` of up to 20 MiB, kept for a retry) and answers while they are read (a
//! `media/get` of up to 64 MiB). Each call is bounded on its own; this bounds them together, so
//! that a CRM job downloading media by the hundred fails some calls instead of ending the
//! process — and with it every signed-in page the gateway serves. A body's first [`FREE`]
//! bytes are not counted: a JSON call or answer (a sign-in's, a `user/get`) is never refused
//! because media fill the bound.

use std::sync::atomic::{AtomicUsize, Ordering};

/// What the process holds at most: a dozen of the largest uploads at once.
pub const HELD_MAX: usize = 256 * 1024 * 1024;

/// The bytes of each body not counted.
pub const FREE: usize = 64 * 1024;

/// The process's budget.
pub static HELD: HeldBytes = HeldBytes::new(HELD_MAX, FREE);

pub struct HeldBytes {
    held: AtomicUsize,
    max: AtomicUsize,
    free: AtomicUsize,
}

impl HeldBytes {
    pub const fn new(max: usize, free: usize) -> HeldBytes {
        HeldBytes {
            held: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            free: AtomicUsize::new(free),
        }
    }

    /// Moves the bound and the bytes of each body not counted (tests count every byte, and
    /// make the bound small enough to reach).
    pub fn set_bounds(&self, max: usize, free: usize) {
        self.max.store(max, Ordering::Relaxed);
        self.free.store(free, Ordering::Relaxed);
    }

    /// An empty hold, to grow as a body arrives.
    pub fn hold(&'static self) -> Hold {
        Hold {
            of: self,
            n: 0,
            free: self.free.load(Ordering::Relaxed),
        }
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
    /// What of this body is still not counted.
    free: usize,
}

impl Hold {
    /// Takes `n` more bytes; `false` (nothing taken) when the budget would be passed.
    #[must_use]
    pub fn grow(&mut self, n: usize) -> bool {
        let uncounted = n.min(self.free);
        self.free -= uncounted;
        let n = n - uncounted;
        if n == 0 {
            return true;
        }
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
        static B: HeldBytes = HeldBytes::new(100, 0);
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

    #[test]
    fn a_bodys_first_bytes_are_not_counted() {
        static B: HeldBytes = HeldBytes::new(100, 30);
        let mut a = B.hold();
        assert!(a.grow(20));
        assert_eq!(B.held(), 0);
        assert!(a.grow(20), "10 free, 10 counted");
        assert_eq!(B.held(), 10);
        assert!(a.grow(90));
        assert!(!a.grow(1));
        // Another body's free part goes on when the bound is reached.
        let mut b = B.hold();
        assert!(b.grow(30));
        assert!(!b.grow(1));
        drop(a);
        assert_eq!(B.held(), 0);
    }
}
