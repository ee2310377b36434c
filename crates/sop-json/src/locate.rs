//! Where a field is in a JSON text: the line and column a value at a path starts, for errors
//! found after parsing (a duplicate key, a bad store name) to name them as a parser would.

use std::fmt::Write;

/// One step of a path: an object's field or an array's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path as people read it: `stores[2].items[7].key`.
pub(crate) fn show(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    if s.is_empty() { ".".into() } else { s }
}

/// The line and column (from 1) where the value at `target` starts in `text`.
pub(crate) fn position(text: &str, target: &[Seg]) -> Option<(usize, usize)> {
    let mut w = Walker {
        b: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut path = Vec::new();
    w.value(&mut path, target).ok().flatten()
}

struct Walker<'a> {
    b: &'a [u8],
    i: usize,
    line: usize,
    col: usize,
}

type Found = Result<Option<(usize, usize)>, ()>;

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            self.col += 1;
        }
        Some(c)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ()> {
        self.ws();
        if self.bump() == Some(c) {
            Ok(())
        } else {
            Err(())
        }
    }

    fn string(&mut self) -> Result<String, ()> {
        if self.bump() != Some(b'"') {
            return Err(());
        }
        let start = self.i;
        loop {
            match self.bump().ok_or(())? {
                b'\\' => {
                    self.bump().ok_or(())?;
                }
                b'"' => break,
                _ => {}
            }
        }
        let raw = std::str::from_utf8(&self.b[start..self.i - 1]).map_err(|_| ())?;
        // Field names of a kit need no unescaping to be compared; decode when they have any.
        if raw.contains('\\') {
            serde_json::from_str(&format!("\"{raw}\"")).map_err(|_| ())
        } else {
            Ok(raw.to_string())
        }
    }

    fn value(&mut self, path: &mut Vec<Seg>, target: &[Seg]) -> Found {
        self.ws();
        if path.as_slice() == target {
            return Ok(Some((self.line, self.col)));
        }
        match self.peek().ok_or(())? {
            b'{' => {
                self.bump();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.bump();
                    return Ok(None);
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.expect(b':')?;
                    path.push(Seg::Key(k));
                    let r = self.value(path, target)?;
                    path.pop();
                    if r.is_some() {
                        return Ok(r);
                    }
                    self.ws();
                    match self.bump() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(None),
                        _ => return Err(()),
                    }
                }
            }
            b'[' => {
                self.bump();
                self.ws();
                if self.peek() == Some(b']') {
                    self.bump();
                    return Ok(None);
                }
                let mut n = 0;
                loop {
                    path.push(Seg::Index(n));
                    let r = self.value(path, target)?;
                    path.pop();
                    if r.is_some() {
                        return Ok(r);
                    }
                    n += 1;
                    self.ws();
                    match self.bump() {
                        Some(b',') => {}
                        Some(b']') => return Ok(None),
                        _ => return Err(()),
                    }
                }
            }
            b'"' => {
                self.string()?;
                Ok(None)
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.bump();
                }
                Ok(None)
            }
        }
    }
}
