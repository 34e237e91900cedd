//! Where each key of the config file is: a map from key path (`models.gpt-4o.targets[0]`) to
//! line and column, built by walking the YAML events once with a positions-aware parser. serde
//! reports *which* key is wrong (through `serde_path_to_error`) and validation works on typed
//! values, so neither knows *where* the key is; this map answers that for every problem.

use std::collections::HashMap;
use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root to a node. Kept structured (not a dotted string) because
/// aliases such as `gpt-4.1` contain dots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    pub(crate) fn root() -> KeyPath {
        KeyPath(Vec::new())
    }

    /// This path with one more key.
    pub(crate) fn key(&self, key: &str) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path with one more sequence index.
    pub(crate) fn index(&self, index: usize) -> KeyPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    /// This path followed by a path that serde reported relative to a sub-value.
    pub(crate) fn join(&self, rel: &serde_path_to_error::Path) -> KeyPath {
        let mut segs = self.0.clone();
        for seg in rel.iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                // Enum variants and unknown segments are not keys of the document.
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => {}
            }
        }
        KeyPath(segs)
    }

    pub(crate) fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(key)) => Some(key),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and a 1-based column (in characters), in the text that was parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Key path -> position of the key (for sequence items: of the item's first key or scalar).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    map: HashMap<KeyPath, Pos>,
}

impl Positions {
    /// Walks the first document of `text`. A document the walker cannot read yields an empty
    /// map (positions are then missing, never wrong); serde_yaml has already reported syntax.
    pub(crate) fn build(text: &str) -> Positions {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Positions::default();
        }
        Positions { map: walker.map }
    }

    /// The position of `path`, or of its nearest ancestor that has one.
    pub(crate) fn find(&self, path: &KeyPath) -> Option<Pos> {
        let mut segs = path.0.as_slice();
        loop {
            if let Some(pos) = self.map.get(&KeyPath(segs.to_vec())) {
                return Some(*pos);
            }
            let (_, parent) = segs.split_last()?;
            segs = parent;
        }
    }

    /// The key written last before `pos` on the same line: which key a `${VAR}` belongs to.
    pub(crate) fn key_before(&self, pos: Pos) -> Option<KeyPath> {
        self.map
            .iter()
            .filter(|(_, p)| p.line == pos.line && p.column <= pos.column)
            .max_by_key(|(path, p)| (p.column, path.0.len()))
            .map(|(path, _)| path.clone())
    }

    /// Moves every recorded position, e.g. from expanded-text columns back to the file's.
    pub(crate) fn map_positions(&mut self, f: impl Fn(Pos) -> Pos) {
        for pos in self.map.values_mut() {
            *pos = f(*pos);
        }
    }
}

enum Frame {
    Map { path: KeyPath, key: Option<String> },
    Seq { path: KeyPath, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    map: HashMap<KeyPath, Pos>,
    /// Depth of complex (non-scalar) mapping keys being skipped.
    skipping: usize,
}

impl Walker {
    fn record(&mut self, path: &KeyPath, pos: Pos) {
        // Ancestors without a position (sequence items) take that of their first key.
        for len in 1..=path.0.len() {
            self.map
                .entry(KeyPath(path.0[..len].to_vec()))
                .or_insert(pos);
        }
    }

    /// The path of the node that starts now, or `None` when it is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, pos: Pos) -> Option<KeyPath> {
        match self.stack.last_mut() {
            None => Some(KeyPath::root()),
            Some(Frame::Seq { path, next }) => {
                let p = path.index(*next);
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(path.key(&k)),
                None => {
                    // A key: remember it; non-scalar keys are not addressable and are skipped.
                    let name = scalar.unwrap_or("?").to_owned();
                    let p = path.key(&name);
                    *key = Some(name);
                    self.record(&p, pos);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        // yaml-rust2 lines are 1-based and columns 0-based.
        let pos = Pos {
            line: mark.line(),
            column: mark.col() + 1,
        };
        if self.skipping > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skipping += 1,
                Event::MappingEnd | Event::SequenceEnd => self.skipping -= 1,
                _ => {}
            }
            return;
        }
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(path) = self.node_path(Some(&value), pos) {
                    if !path.0.is_empty() {
                        self.record(&path, pos);
                    }
                }
            }
            Event::Alias(_) => {
                let _ = self.node_path(None, pos);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let key_position = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if key_position {
                    // `? {complex: key}`: mark the key consumed and skip its content.
                    let _ = self.node_path(None, pos);
                    self.skipping = 1;
                    return;
                }
                let path = self.node_path(None, pos).unwrap_or_default();
                self.stack.push(if is_map {
                    Frame::Map { path, key: None }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}
