//! Issue 20's service-provider apps against the real binary and the emulator playing the
//! provider: suite tickets, installs by `create_auth`, per-corp tokens, logins, JS-SDK and
//! qyapi per corp, `cancel_auth`, restarts. (`tests/provider.rs` is about the token client.)

#[path = "../common/mod.rs"]
mod common;

mod config;
mod demo;
mod events;
mod installs;
mod logins;
mod saas;
mod stampede;
