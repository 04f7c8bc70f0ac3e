//! Tokens of nginx's configuration syntax, as `ngx_conf_read_token` splits them.

use super::ParseError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Word {
        text: String,
        quoted: bool,
    },
    Semi,
    /// `{`; `glued` when it follows a word without a space (`^/u/(\d{3})$` unquoted: nginx
    /// ends the word there and opens a block, as this does).
    Open {
        glued: bool,
    },
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
}

pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let advance = |c: char, line: &mut usize, col: &mut usize| {
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let (tl, tc) = (line, col);
        if c.is_whitespace() {
            advance(c, &mut line, &mut col);
            i += 1;
            continue;
        }
        let punct = match c {
            ';' => Some(Tok::Semi),
            '{' => Some(Tok::Open {
                glued: i > 0
                    && !chars[i - 1].is_whitespace()
                    && !matches!(chars[i - 1], ';' | '{' | '}'),
            }),
            '}' => Some(Tok::Close),
            _ => None,
        };
        if let Some(tok) = punct {
            out.push(Token {
                tok,
                line: tl,
                col: tc,
            });
            advance(c, &mut line, &mut col);
            i += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
                col += 1;
            }
            continue;
        }
        let mut text = String::new();
        if c == '"' || c == '\'' {
            advance(c, &mut line, &mut col);
            i += 1;
            loop {
                let Some(&ch) = chars.get(i) else {
                    return Err(ParseError::at(
                        tl,
                        tc,
                        "unexpected end of file, expecting a closing quote",
                    ));
                };
                advance(ch, &mut line, &mut col);
                i += 1;
                if ch == c {
                    break;
                }
                if ch == '\\' {
                    if let Some(&next) = chars.get(i) {
                        advance(next, &mut line, &mut col);
                        i += 1;
                        push_escaped(&mut text, next);
                        continue;
                    }
                }
                text.push(ch);
            }
            // nginx requires a separator right after a closing quote.
            if let Some(&next) = chars.get(i) {
                if !(next.is_whitespace() || matches!(next, ';' | '{' | '}' | ')')) {
                    return Err(ParseError::at(line, col, format!("unexpected \"{next}\"")));
                }
            }
            out.push(Token {
                tok: Tok::Word { text, quoted: true },
                line: tl,
                col: tc,
            });
            continue;
        }
        // An unquoted word: ends at whitespace, ';' or '{'/'}' (but "${" opens a variable).
        let mut in_var_brace = false;
        while let Some(&ch) = chars.get(i) {
            if ch.is_whitespace() || ch == ';' || ch == '}' && !in_var_brace {
                break;
            }
            if ch == '{' {
                if text.ends_with('$') {
                    in_var_brace = true;
                } else {
                    break;
                }
            }
            if ch == '}' {
                in_var_brace = false;
            }
            advance(ch, &mut line, &mut col);
            i += 1;
            if ch == '\\' {
                if let Some(&next) = chars.get(i) {
                    advance(next, &mut line, &mut col);
                    i += 1;
                    push_escaped(&mut text, next);
                    continue;
                }
            }
            text.push(ch);
        }
        out.push(Token {
            tok: Tok::Word {
                text,
                quoted: false,
            },
            line: tl,
            col: tc,
        });
    }
    Ok(out)
}

/// nginx keeps a backslash unless it escapes a quote, a backslash or t/r/n.
fn push_escaped(text: &mut String, next: char) {
    match next {
        '"' | '\'' | '\\' => text.push(next),
        't' => text.push('\t'),
        'r' => text.push('\r'),
        'n' => text.push('\n'),
        _ => {
            text.push('\\');
            text.push(next);
        }
    }
}
