//! The tokens file: one `ID TOKEN` line per gateway, exactly what
//! `edge-hub gateway add ID1 ID2 ...` prints.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub id: String,
    pub token: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TokensError(pub String);

impl fmt::Display for TokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokensError {}

/// Parse the file's text. Blank lines and `#` comments are skipped; anything else must be
/// exactly two fields, and an ID may appear once (two tasks sharing one gateway's seqs would
/// send each reading twice).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Gateway>, TokensError> {
    let mut out: Vec<Gateway> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, token] = fields[..] else {
            return Err(TokensError(format!(
                "{origin}:{}: expected `ID TOKEN` (as `edge-hub gateway add ID1 ID2 ...` prints), got {} field(s)",
                n + 1,
                fields.len()
            )));
        };
        // It goes into an Authorization header: visible ASCII only.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokensError(format!(
                "{origin}:{}: the token of {id:?} has characters a header cannot carry",
                n + 1
            )));
        }
        if !seen.insert(id.to_owned()) {
            return Err(TokensError(format!(
                "{origin}:{}: gateway {id:?} appears twice",
                n + 1
            )));
        }
        out.push(Gateway {
            id: id.to_owned(),
            token: token.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(TokensError(format!("{origin}: no `ID TOKEN` lines")));
    }
    Ok(out)
}

pub fn load(path: &Path) -> Result<Vec<Gateway>, TokensError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TokensError(format!("cannot read {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_id_token_lines() {
        let got = parse("gw-1 tok1\n\n# note\n  gw-2\ttok2  \n", "f").unwrap();
        assert_eq!(
            got,
            vec![
                Gateway {
                    id: "gw-1".into(),
                    token: "tok1".into()
                },
                Gateway {
                    id: "gw-2".into(),
                    token: "tok2".into()
                },
            ]
        );
    }

    #[test]
    fn refuses_a_bare_token_and_duplicates() {
        let err = parse("gw-1 tok1\nonlytoken\n", "f").unwrap_err();
        assert!(err.0.starts_with("f:2: expected `ID TOKEN`"), "{err}");
        let err = parse("gw-1 a\ngw-1 b\n", "f").unwrap_err();
        assert!(err.0.contains("appears twice"), "{err}");
        assert!(parse("\n# nothing\n", "f").is_err());
        let err = parse("gw-1 t\u{7f}k\n", "f").unwrap_err();
        assert!(err.0.contains("header"), "{err}");
    }
}
