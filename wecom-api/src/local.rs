//! A thread's own handle on something every thread shares.
//!
//! Cloning an `Arc` writes its reference count, in the cache line of the shared value: when two
//! worker threads clone and drop the same `Arc` for every call, that line moves between their
//! cores at each write. The call stack is cloned several times per call (tower's `oneshot`
//! takes the service by value; the retry layer keeps a copy for a second try; each layer's
//! future owns what it uses). A [`Local`] is an `Arc` of its own around the shared one: its
//! clones count in the thread's allocation, and the shared count is written once per
//! [`Local::fork`].

use std::ops::Deref;
use std::sync::Arc;

pub(crate) struct Local<T: ?Sized>(Arc<Arc<T>>);

impl<T: ?Sized> Local<T> {
    pub fn new(shared: Arc<T>) -> Local<T> {
        Local(Arc::new(shared))
    }

    /// A handle on the same value with a count of its own, for another thread to clone.
    pub fn fork(&self) -> Local<T> {
        Local(Arc::new(Arc::clone(&self.0)))
    }

    #[cfg(test)]
    pub fn shares(&self, other: &Local<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: ?Sized> Clone for Local<T> {
    fn clone(&self) -> Local<T> {
        Local(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> Deref for Local<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_counts_its_clones_apart_and_reaches_the_same_value() {
        let shared: Arc<str> = Arc::from("token");
        let here = Local::new(shared.clone());
        assert_eq!(Arc::strong_count(&shared), 2);
        let there = here.fork();
        assert_eq!(
            Arc::strong_count(&shared),
            3,
            "a fork holds the shared value once"
        );
        let clones: Vec<_> = (0..10).map(|_| there.clone()).collect();
        assert_eq!(
            Arc::strong_count(&shared),
            3,
            "its clones count in the fork"
        );
        assert!(clones[0].shares(&there) && !there.shares(&here));
        assert!(std::ptr::eq(&*clones[9], &*here));
        drop((clones, there));
        assert_eq!(Arc::strong_count(&shared), 2);
    }
}
