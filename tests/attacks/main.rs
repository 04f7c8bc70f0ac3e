//! Issue 13's attacks against the real binary, one test per attack, each named after it:
//! what an attacker tries first at the login gate, the contact gate, the qyapi endpoint and
//! metrics. README's security section lists them with what the gateway does.

#[path = "../common/mod.rs"]
mod common;
use common::world;

mod assertion;
mod contact;
mod cookies;
mod jssdk;
mod login_area;
mod login_flow;
mod metrics;
mod qyapi;
mod sessions;
mod upstream;
