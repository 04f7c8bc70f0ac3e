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
    let bad = |why: &str| src.error(v.span(), path, format!("'{text}' {why}"));
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

pub(super) fn secret(
    v: &Spanned<Text>,
    path: &str,
    min: usize,
    src: &Source<'_>,
) -> Result<Secret> {
    let text = v.get_ref().as_str();
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
