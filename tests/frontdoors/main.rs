//! Issue 19's front doors against the real binary: the forward-auth check as Traefik calls it
//! (plain requests with `X-Forwarded-*`), the README's nginx configuration in a real nginx with
//! `auth_request`, and `{prefix}/signin`.

#[path = "../common/mod.rs"]
mod common;
use common::world;

mod forward_auth;
mod miniprogram;
mod nginx;
