//! The rewrite module's directives and `try_files`, read as nginx reads them.

use super::directives::{args, nargs, no_block, regex, template};
use super::model::{Cond, Fallback, FileTest, Flag, Rewrite, Stmt, TryCandidate, TryFiles};
use super::{Directive, ParseError};
use crate::vars::Template;

pub(super) fn try_files(d: &Directive) -> Result<TryFiles, ParseError> {
    nargs(d, |n| n >= 2)?;
    no_block(d)?;
    let a = args(d);
    let (last, rest) = a.split_last().expect("two or more");
    let fallback = if let Some(code) = last.strip_prefix('=') {
        Fallback::Code(
            code.parse()
                .ok()
                .filter(|c: &u16| *c <= 999)
                .ok_or_else(|| d.pos.error(format!("invalid code \"{last}\"")))?,
        )
    } else if last.starts_with('@') {
        Fallback::Named(last.to_string())
    } else {
        Fallback::Uri(template(d, last)?)
    };
    let candidates = rest
        .iter()
        .map(|c| {
            let dir = c.ends_with('/');
            let name = if dir { &c[..c.len() - 1] } else { c };
            Ok(TryCandidate {
                name: template(d, name)?,
                dir,
            })
        })
        .collect::<Result<_, ParseError>>()?;
    Ok(TryFiles {
        candidates,
        fallback,
    })
}

pub(super) fn rewrite(d: &Directive) -> Result<Rewrite, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 2 || n == 3)?;
    let a = args(d);
    let re = regex(d, a[0], false)?;
    let mut value = a[1];
    let mut redirect = None;
    let mut flag = Flag::None;
    // ngx_http_rewrite: these prefixes make a 302 redirect whatever the flag says.
    if value.starts_with("http://") || value.starts_with("https://") || value.starts_with("$scheme")
    {
        redirect = Some(302);
        flag = Flag::Last;
    }
    if let Some(f) = a.get(2) {
        match *f {
            "last" => flag = Flag::Last,
            "break" => flag = Flag::Break,
            "redirect" => redirect = Some(302),
            "permanent" => redirect = Some(301),
            other => return Err(d.pos.error(format!("invalid parameter \"{other}\""))),
        }
    }
    // "The last '?' drops the original arguments."
    let add_args = !value.ends_with('?');
    if !add_args {
        value = &value[..value.len() - 1];
    }
    let has_args = value.contains('?');
    let (uri, args) = Template::compile(value, redirect.is_none()).map_err(|m| d.pos.error(m))?;
    Ok(Rewrite {
        regex: re,
        uri,
        args,
        has_args,
        add_args,
        redirect,
        flag,
    })
}

pub(super) fn ret(d: &Directive) -> Result<Stmt, ParseError> {
    no_block(d)?;
    nargs(d, |n| n == 1 || n == 2)?;
    let a = args(d);
    if let Ok(code) = a[0].parse::<u16>() {
        if code > 999 || !a[0].bytes().all(|b| b.is_ascii_digit()) {
            return Err(d.pos.error(format!("invalid return code \"{}\"", a[0])));
        }
        // A redirect's text is its `Location`: folded and checked as a header's value.
        let redirect = matches!(code, 301 | 302 | 303 | 307 | 308);
        let text = match a.get(1) {
            Some(t) if redirect => Some(template(d, &super::directives::header_text(d, t)?)?),
            Some(t) => Some(template(d, t)?),
            None => None,
        };
        return Ok(Stmt::Return { code, text });
    }
    if a.len() == 1
        && (a[0].starts_with("http://")
            || a[0].starts_with("https://")
            || a[0].starts_with("$scheme"))
    {
        return Ok(Stmt::Return {
            code: 302,
            text: Some(template(d, &super::directives::header_text(d, a[0])?)?),
        });
    }
    Err(d.pos.error(format!("invalid return code \"{}\"", a[0])))
}

/// `ngx_http_rewrite_if_condition`: the parentheses may be separate words or glued on.
pub(super) fn condition(d: &Directive) -> Result<Cond, ParseError> {
    let mut a: Vec<String> = args(d).iter().map(|s| s.to_string()).collect();
    let bad = || d.pos.error("invalid condition");
    let first = a.first_mut().ok_or_else(bad)?;
    if first == "(" {
        a.remove(0);
    } else if let Some(rest) = first.strip_prefix('(') {
        *first = rest.to_string();
    } else {
        return Err(bad());
    }
    let last = a.last_mut().ok_or_else(bad)?;
    if last == ")" {
        a.pop();
    } else if let Some(rest) = last.strip_suffix(')') {
        *last = rest.to_string();
    } else {
        return Err(bad());
    }
    let var = |s: &str| -> Result<String, ParseError> {
        s.strip_prefix('$')
            .filter(|v| !v.is_empty())
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| d.pos.error(format!("invalid condition \"{s}\"")))
    };
    match a.as_slice() {
        [v] if v.starts_with('$') => Ok(Cond::Truth(var(v)?)),
        [v, op, rhs] if v.starts_with('$') => match op.as_str() {
            "=" | "!=" => Ok(Cond::Eq {
                var: var(v)?,
                value: template(d, rhs)?,
                negate: op == "!=",
            }),
            "~" | "~*" | "!~" | "!~*" => Ok(Cond::Regex {
                var: var(v)?,
                regex: regex(d, rhs, op.ends_with('*'))?,
                negate: op.starts_with('!'),
            }),
            _ => Err(d.pos.error(format!("unexpected \"{op}\" in condition"))),
        },
        [op, path] if matches!(op.as_str(), "-f" | "!-f" | "-d" | "!-d" | "-e" | "!-e") => {
            let test = match op.trim_start_matches('!') {
                "-f" => FileTest::File,
                "-d" => FileTest::Dir,
                _ => FileTest::Exists,
            };
            Ok(Cond::File {
                op: test,
                negate: op.starts_with('!'),
                path: template(d, path)?,
            })
        }
        _ => Err(bad()),
    }
}
