//! What the client tells the program around it, so that metrics stay with that program (the
//! gateway counts them in its own registry; this crate knows no metrics library).

use crate::error::ApiError;
use crate::target::TokenTarget;

/// Why a call was tried again (SPEC section 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// 40001/40014/42001: the token was expired, refetched once, and the call tried once more.
    TokenExpired,
    /// -1: WeCom was busy; tried again after a backoff.
    SystemBusy,
}

impl RetryReason {
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::TokenExpired => "token_expired",
            RetryReason::SystemBusy => "system_busy",
        }
    }
}

/// Events worth counting. Every method has a default that ignores the event.
pub trait Observer: Send + Sync + 'static {
    /// A token or ticket fetch ended, with its value or its error.
    fn fetched(&self, _target: &TokenTarget, _result: Result<(), &ApiError>) {}

    /// A call made with `target`'s token is tried again.
    fn retried(&self, _target: &TokenTarget, _why: RetryReason) {}

    /// The shared store did not answer `op`; this process served its own copy.
    fn store_failed(&self, _store: &'static str, _op: &'static str) {}
}

/// Counts nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unobserved;

impl Observer for Unobserved {}
