//! wecom-gateway: a reverse proxy placed in front of an existing CRM so that it works inside
//! WeCom and WeChat with no WeCom code of its own. The binary is a thin shell over this library.

pub mod access;
pub mod admin;
pub mod allocator;
pub mod answers;
pub mod callback;
pub mod clock;
pub mod config;
pub mod connection;
pub mod cookies;
pub mod demo;
pub mod domain;
pub mod headers;
pub mod identity;
pub mod import_nginx;
pub mod jssdk;
pub mod lifecycle;
pub mod limit;
pub mod listeners;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod nginx;
pub mod online;
pub mod provider;
pub mod proxy;
pub mod qyapi;
pub mod redact;
pub mod request_id;
pub mod revocation;
pub mod routing;
pub mod served;
pub mod server;
pub mod static_files;
pub mod store;
pub mod suite;
#[cfg(debug_assertions)]
pub mod test_control;
pub mod text;
