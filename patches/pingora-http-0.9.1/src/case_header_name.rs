// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use crate::*;
use bytes::Bytes;
use http::header;

#[derive(Debug, Clone)]
pub struct CaseHeaderName(Bytes);

impl CaseHeaderName {
    pub fn new(name: String) -> Self {
        CaseHeaderName(name.into())
    }
}

impl CaseHeaderName {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(buf: &[u8]) -> Self {
        CaseHeaderName(Bytes::copy_from_slice(buf))
    }
}

/// A trait that converts into case-sensitive header names.
pub trait IntoCaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName;

    /// The name as the header maps key it, with its case-preserving spelling.
    ///
    /// The default parses the spelling. A `HeaderName` is already parsed, and a static spelling
    /// that is already lowercase becomes a `HeaderName` without a copy; both skip the parse
    /// and its allocation, which a proxy otherwise pays on every header it sets.
    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)>
    where
        Self: Sized,
    {
        let case_header_name = self.into_case_header_name();
        let header_name = HeaderName::from_bytes(case_header_name.as_slice())
            .or_err(InvalidHTTPHeader, "invalid header name")?;
        Ok((header_name, case_header_name))
    }
}

impl IntoCaseHeaderName for CaseHeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        self
    }
}

impl IntoCaseHeaderName for String {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }
}

impl IntoCaseHeaderName for &'static str {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self.into())
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        let header_name = if is_plain_lowercase(self) {
            // Cannot panic: the spelling was just checked to be one `from_static` accepts.
            HeaderName::from_static(self)
        } else {
            HeaderName::from_bytes(self.as_bytes())
                .or_err(InvalidHTTPHeader, "invalid header name")?
        };
        Ok((header_name, CaseHeaderName(Bytes::from_static(self.as_bytes()))))
    }
}

impl IntoCaseHeaderName for HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(&self))
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        let case_header_name = CaseHeaderName(titled_header_name(&self));
        Ok((self, case_header_name))
    }
}

impl IntoCaseHeaderName for &HeaderName {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(titled_header_name(self))
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        Ok((self.clone(), CaseHeaderName(titled_header_name(self))))
    }
}

/// A name the caller built once in both forms: the `HeaderName` (e.g. a `const` made with
/// `HeaderName::from_static`) and the spelling to send. Nothing is parsed or allocated; a
/// spelling that is not the same name is an error, so the two maps can never disagree.
impl IntoCaseHeaderName for (HeaderName, &'static str) {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(Bytes::from_static(self.1.as_bytes()))
    }

    fn into_header_names(self) -> Result<(HeaderName, CaseHeaderName)> {
        let (name, spelling) = self;
        // A lowercase spelling, the usual case, is one comparison of bytes.
        let same = name.as_str() == spelling || name.as_str().eq_ignore_ascii_case(spelling);
        if !same {
            return pingora_error::Error::e_explain(InvalidHTTPHeader, "header spelling of another name");
        }
        Ok((name, CaseHeaderName(Bytes::from_static(spelling.as_bytes()))))
    }
}

/// A non-empty name of lowercase letters, digits, `-` and `_` only: a subset of what
/// `HeaderName::from_static` accepts, so it never panics on one.
fn is_plain_lowercase(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl IntoCaseHeaderName for Bytes {
    fn into_case_header_name(self) -> CaseHeaderName {
        CaseHeaderName(self)
    }
}

fn titled_header_name(header_name: &HeaderName) -> Bytes {
    titled_header_name_str(header_name).map_or_else(
        || Bytes::copy_from_slice(header_name.as_str().as_bytes()),
        |s| Bytes::from_static(s.as_bytes()),
    )
}

pub(crate) fn titled_header_name_str(header_name: &HeaderName) -> Option<&'static str> {
    Some(match *header_name {
        header::ACCEPT_RANGES => "Accept-Ranges",
        header::AGE => "Age",
        header::CACHE_CONTROL => "Cache-Control",
        header::CONNECTION => "Connection",
        header::CONTENT_TYPE => "Content-Type",
        header::CONTENT_ENCODING => "Content-Encoding",
        header::CONTENT_LENGTH => "Content-Length",
        header::DATE => "Date",
        header::TRANSFER_ENCODING => "Transfer-Encoding",
        header::HOST => "Host",
        header::SERVER => "Server",
        header::SET_COOKIE => "Set-Cookie",
        // TODO: add more const header here to map to their titled case
        // TODO: automatically upper case the first letter?
        _ => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_case_header_name() {
        assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
        assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
        assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    }

    #[test]
    fn test_header_names() {
        for spelling in ["x-forwarded-for", "x_custom_1", "FoO", "host", "X-Request-Id"] {
            let (name, case) = spelling.into_header_names().unwrap();
            assert_eq!(name, HeaderName::from_bytes(spelling.as_bytes()).unwrap());
            assert_eq!(case.as_slice(), spelling.as_bytes());
        }
        for bad in ["", "a b", "x:y", "é"] {
            assert!(bad.into_header_names().is_err(), "{bad:?}");
        }
        let (name, case) = header::SERVER.into_header_names().unwrap();
        assert_eq!((name, case.as_slice()), (header::SERVER, &b"Server"[..]));
        let custom = HeaderName::from_static("x-wecom-userid");
        let (name, case) = (&custom).into_header_names().unwrap();
        assert_eq!((name, case.as_slice()), (custom, &b"x-wecom-userid"[..]));

        let pair = (HeaderName::from_static("x-request-id"), "X-Request-Id");
        let (name, case) = pair.into_header_names().unwrap();
        assert_eq!(name, HeaderName::from_static("x-request-id"));
        assert_eq!(case.as_slice(), b"X-Request-Id");
        let (name, case) = (header::HOST, "host").into_header_names().unwrap();
        assert_eq!((name, case.as_slice()), (header::HOST, &b"host"[..]));
        assert!((header::HOST, "hos").into_header_names().is_err());
        assert!((header::HOST, "x-host").into_header_names().is_err());
    }
}
