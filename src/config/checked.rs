//! A spanned value read into a checked one, with the error pointing at the value: shared by
//! the compile steps of `[server]`, `[session]` and `[apps]`.

use std::time::Duration;

use serde_spanned::Spanned;
use url::Url;

use super::error::{ConfigError, Source};
use super::model::Secret;
use super::values::{self, Text};

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn duration(v: &Spanned<Text>, path: &str, src: &Source<'_>) -> Result<Duration> {
    values::parse_duration(v.get_ref().as_str()).map_err(|e| src.error(v.span(), path, e))
}

/// An absolute http(s) URL without userinfo, query or fragment.
pub(super) fn base_url(v: &Spanned<Text>, path: &str, src: &Source<'_>) -> Result<Url> {
    let text = v.get_ref().as_str();
    // Userinfo is a credential: the message shows the URL without it (`http:u:p@h` and
    // `http:\\u:p@h` are read with userinfo too).
    let shown = match (text.find(':'), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let slashes = text[s + 1..at]
                .bytes()
                .take_while(|b| matches!(b, b'/' | b'\\'))
                .count();
            format!("{}***{}", &text[..s + 1 + slashes], &text[at..])
        }
        _ => text.to_owned(),
    };
    // A query or a fragment may carry one too (`?access_token=`): shown as `?...`.
    let shown = match shown.find(['?', '#']) {
        Some(q) => format!("{}{}...", &shown[..q], &shown[q..q + 1]),
        None => shown,
    };
    let bad = |why: &str| src.error(v.span(), path, format!("'{shown}' {why}"));
    let url = Url::parse(text).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not carry a query or a fragment"));
    }
    Ok(url)
}

/// A `${NAME}` inside a value rather than the whole of it: not read from the environment
/// (SPEC section 4), so the text would be used as written, a secret silently wrong.
pub(super) fn inline_reference(text: &str) -> Option<&'static str> {
    text.contains("${").then_some(
        "a ${NAME} inside a value is not read from the environment: write the whole value as \"${NAME}\" (the variable holding all of it)",
    )
}

/// A secret WeCom or WeChat issued (an app's `secret`, `contact_secret`, `suite_secret`): plain
/// visible text, which WeCom compares as it is. One with white space at an end (copied with it,
/// a file's line end in the environment variable) fails every `gettoken`; `$NAME` written in
/// the file is a shell's spelling, taken as the secret. (The session's keys are any bytes.)
pub(super) fn wecom_secret(v: &Spanned<Text>, path: &str, src: &Source<'_>) -> Result<Secret> {
    let s = secret(v, path, 1, src)?;
    let text = v.get_ref().as_str();
    let written = src.text.get(v.span()).unwrap_or_default();
    if !written.contains("${") && shell_reference(text) {
        return Err(src.error(
            v.span(),
            path,
            "reads as a shell variable, which is not read from the environment: write \"${NAME}\"",
        ));
    }
    if text.trim() != text {
        return Err(src.error(
            v.span(),
            path,
            "begins or ends with white space (copied with it, or a line end in the environment \
             variable?)",
        ));
    }
    Ok(s)
}

/// `$NAME` (a shell's spelling), the whole value: taken as written, it would be the secret.
fn shell_reference(text: &str) -> bool {
    text.strip_prefix('$').is_some_and(|name| {
        name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// [`base_url`] of something the gateway connects to: port 0 is a port to listen on, never
/// one to reach.
pub(super) fn outbound_url(v: &Spanned<Text>, path: &str, src: &Source<'_>) -> Result<Url> {
    let url = base_url(v, path, src)?;
    if url.port() == Some(0) {
        return Err(src.error(
            v.span(),
            path,
            "port 0 is not a port to connect to (a listener's port 0 is chosen when it binds; give what it got)",
        ));
    }
    Ok(url)
}

pub(super) fn secret(
    v: &Spanned<Text>,
    path: &str,
    min: usize,
    src: &Source<'_>,
) -> Result<Secret> {
    let text = v.get_ref().as_str();
    if let Some(e) = inline_reference(text) {
        return Err(src.error(v.span(), path, e));
    }
    if text.is_empty() {
        return Err(src.error(
            v.span(),
            path,
            "is empty (an environment variable that is set but empty?)",
        ));
    }
    if text.len() < min {
        // The value is a secret: say how long it is, never what it is.
        return Err(src.error(
            v.span(),
            path,
            format!("must be at least {min} bytes (it has {})", text.len()),
        ));
    }
    Ok(Secret::new(text.to_owned()))
}
