//! The configuration as one request sees it.

use std::cell::RefCell;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Config;

/// The configuration a request (or a qyapi call) started with, held through a reference of the
/// thread's own: the workers sharing the configuration's reference count would pass its cache
/// line between them twice a request. A thread keeps the configuration it last served with
/// until its next request after a reload.
#[derive(Clone)]
#[allow(clippy::redundant_allocation)] // the outer `Arc` is the thread's own count
pub struct Snapshot(Arc<Arc<Config>>);

impl Snapshot {
    #[allow(clippy::redundant_allocation)]
    pub fn of(current: &ArcSwap<Config>) -> Snapshot {
        thread_local! {
            static HELD: RefCell<Option<Arc<Arc<Config>>>> = const { RefCell::new(None) };
        }
        let now = current.load();
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            match &*held {
                Some(h) if Arc::ptr_eq(&**h, &*now) => Snapshot(h.clone()),
                _ => {
                    let h = Arc::new(arc_swap::Guard::into_inner(now));
                    *held = Some(h.clone());
                    Snapshot(h)
                }
            }
        })
    }
}

impl std::ops::Deref for Snapshot {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.0
    }
}
