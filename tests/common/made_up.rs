//! A made-up WeCom: an axum router answering what a test needs, served on a free loopback
//! port, for answers the emulator does not give (an odd errcode, an HTML error page).

use serde_json::json;

/// The access token of [`wecom`]: as long as a real one.
pub const TOKEN: &str = "MadeUpAccessToken0123456789abcdef";

/// A router whose `gettoken` hands out the token [`TOKEN`]; the test adds its own routes.
pub fn wecom() -> axum::Router {
    axum::Router::new().route(
        "/cgi-bin/gettoken",
        axum::routing::get(|| async {
            axum::Json(
                json!({"errcode": 0, "errmsg": "ok", "access_token": TOKEN, "expires_in": 7200}),
            )
        }),
    )
}

/// Serves `app` on a free loopback port; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}
