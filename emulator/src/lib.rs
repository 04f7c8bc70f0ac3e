//! A faithful stand-in for the WeCom and WeChat servers (SPEC section 13, WECOM_API.md), and the
//! demo CRM page. One listener serves the APIs, the authorize pages, the fake JS-SDK and the
//! `/_emulator` control API, all at their real paths.

mod admin;
mod api;
pub mod callbacks;
mod codes;
mod control;
mod corp;
pub mod crm;
mod directory;
pub mod events;
mod jssdk;
pub mod oauth;
pub mod provider;
mod provider_control;
pub mod scenario;
mod server;
mod service;
pub mod state;
mod tokens;
mod wechat;
mod wecom;

use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

pub use jssdk::{jsapi_signature, verify as verify_jssdk, VerifyRequest};
pub use scenario::{Scenario, ScenarioError};
pub use server::Emulator;
pub use state::EmulatorState;

/// The whole emulator as a router, for a caller that embeds it. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the trusted-IP list sees callers.
pub fn router(state: EmulatorState) -> Router {
    let api = Router::new()
        .merge(wecom::routes())
        .merge(directory::routes())
        .merge(service::routes())
        .merge(wechat::routes())
        .route_layer(from_fn_with_state(state.clone(), api::gatekeeper));
    // jweixin.js runs on the CRM's origin and calls back here.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request());
    let control = Router::new()
        .merge(control::routes())
        .merge(admin::routes())
        .merge(provider_control::routes())
        .merge(jssdk::routes())
        .layer(cors);
    Router::new()
        .merge(api)
        .merge(oauth::routes())
        .merge(service::page_routes())
        .merge(jssdk::script_routes())
        .merge(control)
        .with_state(state)
}
