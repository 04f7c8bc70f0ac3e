//! JS-SDK support (SPEC section 9): the permission signature, the `wx.config` /
//! `wx.agentConfig` payloads, the verified external contact and the front-end helper.

pub mod config;
pub mod contact;
pub mod contact_cache;
pub mod signature;

/// The front-end helper served at `{prefix}/sdk.js`; `__WGW_SETTINGS__` is replaced with the
/// page's settings when it is served.
pub const SDK_JS: &str = include_str!("sdk.js");

/// `sdk.js` with its settings: the gateway's prefix, the app whose signatures it asks for, and
/// the JS-SDK script URLs to try in order.
pub fn render_sdk(prefix: &str, app: Option<&str>, jssdk_urls: &[String]) -> String {
    let settings = serde_json::json!({
        "prefix": prefix,
        "app": app,
        "jssdkUrls": jssdk_urls,
    });
    // JSON is JavaScript, except that `</script>` and U+2028/9 must not appear raw.
    let settings = settings
        .to_string()
        .replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    SDK_JS.replacen("__WGW_SETTINGS__", &settings, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_settings_are_filled_in_as_javascript() {
        let js = render_sdk(
            "/_gateway",
            Some("crm"),
            &["http://127.0.0.1:9100/emulator/jweixin.js".into()],
        );
        assert!(!js.contains("__WGW_SETTINGS__"));
        assert!(js.contains(
            r#"{"app":"crm","jssdkUrls":["http://127.0.0.1:9100/emulator/jweixin.js"],"prefix":"/_gateway"}"#
        ), "{js}");
        let hostile = render_sdk("/_gateway", Some("</script><script>x"), &[]);
        assert!(!hostile.contains("</script>"));
        assert!(render_sdk("/_gateway", None, &[]).contains(r#""app":null"#));
    }
}
