//! The group/entry tree from the XML, with the protected values decrypted
//! in document order (history entries included, as the stream demands).

use base64::Engine as _;
use quick_xml::events::{BytesStart, Event};
use zeroize::Zeroizing;

use super::payload::InnerStream;
use super::{ReadError, corrupt};

/// Deeper nesting than this is refused: no real database comes near it.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Default)]
pub struct Group {
    pub name: String,
    pub uuid: Vec<u8>,
    /// `None` for the root.
    pub parent: Option<usize>,
}

#[derive(Default)]
pub struct Entry {
    pub group: usize,
    pub title: Option<String>,
    pub password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("group", &self.group)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

/// What `ov` reads from a database: groups (the root first), entries in
/// document order, and the recycle bin.
#[derive(Debug, Default)]
pub struct Tree {
    pub groups: Vec<Group>,
    pub entries: Vec<Entry>,
    pub recycle_bin: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    File,
    Meta,
    RecycleBin,
    Root,
    Group,
    GroupName,
    GroupUuid,
    Entry,
    History,
    String,
    Key,
    Value,
    Other,
}

/// One `<String>` of an entry being read.
#[derive(Default)]
struct Field {
    key: String,
    value: Zeroizing<String>,
    protected: bool,
}

struct Parser<'a> {
    stream: &'a mut InnerStream,
    tree: Tree,
    stack: Vec<Tag>,
    /// Open groups, innermost last.
    groups: Vec<usize>,
    /// The entry being read, unless it is a history entry.
    entry: Option<Entry>,
    field: Field,
    text: Zeroizing<String>,
    recycle_uuid: Option<Vec<u8>>,
}

fn is_true(e: &BytesStart<'_>, name: &str) -> bool {
    e.attributes()
        .flatten()
        .any(|a| a.key.as_ref() == name && a.value.as_ref().eq_ignore_ascii_case("true"))
}

impl Parser<'_> {
    fn parent(&self) -> Option<Tag> {
        self.stack.last().copied()
    }

    fn in_history(&self) -> bool {
        self.stack.contains(&Tag::History)
    }

    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), ReadError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(corrupt(format!(
                "the XML nests deeper than {MAX_DEPTH} elements"
            )));
        }
        let name = e.name();
        let tag = match (self.parent(), name.as_ref()) {
            (None, "KeePassFile") => Tag::File,
            (Some(Tag::File), "Meta") => Tag::Meta,
            (Some(Tag::Meta), "RecycleBinUUID") => Tag::RecycleBin,
            (Some(Tag::File), "Root") => Tag::Root,
            (Some(Tag::Root | Tag::Group), "Group") => {
                let parent = self.groups.last().copied();
                if parent.is_none() && !self.tree.groups.is_empty() {
                    return Err(corrupt("the XML has more than one root group"));
                }
                self.tree.groups.push(Group {
                    parent,
                    ..Group::default()
                });
                self.groups.push(self.tree.groups.len() - 1);
                Tag::Group
            }
            (Some(Tag::Group), "Name") => Tag::GroupName,
            (Some(Tag::Group), "UUID") => Tag::GroupUuid,
            (Some(Tag::Group), "Entry") => {
                let group = self.groups.last().copied().unwrap_or_default();
                self.entry = Some(Entry {
                    group,
                    ..Entry::default()
                });
                Tag::Entry
            }
            (Some(Tag::Entry), "History") => Tag::History,
            (Some(Tag::History), "Entry") => Tag::Entry,
            (Some(Tag::Entry), "String") => {
                self.field = Field::default();
                Tag::String
            }
            (Some(Tag::String), "Key") => Tag::Key,
            (Some(Tag::String), "Value") => {
                self.field.protected = is_true(e, "Protected");
                Tag::Value
            }
            _ => Tag::Other,
        };
        self.text.clear();
        self.stack.push(tag);
        Ok(())
    }

    fn close(&mut self) -> Result<(), ReadError> {
        let tag = self
            .stack
            .pop()
            .ok_or_else(|| corrupt("the XML closes more than it opens"))?;
        let text = std::mem::take(&mut self.text);
        match tag {
            Tag::RecycleBin => self.recycle_uuid = Some(uuid(&text)?),
            Tag::GroupName => {
                if let Some(&g) = self.groups.last() {
                    self.tree.groups[g].name = text.to_string();
                }
            }
            Tag::GroupUuid => {
                if let Some(&g) = self.groups.last() {
                    self.tree.groups[g].uuid = uuid(&text)?;
                }
            }
            Tag::Group => {
                self.groups.pop();
            }
            Tag::Key => self.field.key = text.to_string(),
            Tag::Value => {
                self.field.value = if self.field.protected {
                    self.unprotect(&text)?
                } else {
                    text
                };
            }
            Tag::String if !self.in_history() => {
                let field = std::mem::take(&mut self.field);
                if let Some(entry) = &mut self.entry {
                    match field.key.as_str() {
                        "Title" => entry.title = Some(field.value.to_string()),
                        "Password" => entry.password = Some(field.value),
                        _ => {}
                    }
                }
            }
            Tag::Entry if !self.in_history() => {
                if let Some(entry) = self.entry.take() {
                    self.tree.entries.push(entry);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A protected value: base64, XORed with the next bytes of the stream.
    fn unprotect(&mut self, text: &str) -> Result<Zeroizing<String>, ReadError> {
        let mut bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim().as_bytes())
                .map_err(|_| corrupt("a protected value is not base64"))?,
        );
        self.stream.apply(&mut bytes);
        let s =
            std::str::from_utf8(&bytes).map_err(|_| corrupt("a protected value is not UTF-8"))?;
        Ok(Zeroizing::new(s.to_owned()))
    }

    fn collecting(&self) -> bool {
        matches!(
            self.parent(),
            Some(Tag::RecycleBin | Tag::GroupName | Tag::GroupUuid | Tag::Key | Tag::Value)
        )
    }
}

fn uuid(text: &str) -> Result<Vec<u8>, ReadError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim().as_bytes())
        .map_err(|_| corrupt("a UUID is not base64"))
}

/// Parse the XML document into the tree.
pub fn parse(xml: &[u8], stream: &mut InnerStream) -> Result<Tree, ReadError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut p = Parser {
        stream,
        tree: Tree::default(),
        stack: Vec::new(),
        groups: Vec::new(),
        entry: None,
        field: Field::default(),
        text: Zeroizing::new(String::new()),
        recycle_uuid: None,
    };
    let bad = |e: quick_xml::Error| corrupt(format!("the XML does not parse: {e}"));
    loop {
        match reader.read_event().map_err(bad)? {
            Event::Eof => break,
            Event::Start(e) => p.open(&e)?,
            Event::Empty(e) => {
                p.open(&e)?;
                p.close()?;
            }
            Event::End(_) => p.close()?,
            Event::Text(t) if p.collecting() => p.text.push_str(&t.xml10_content()),
            Event::CData(t) if p.collecting() => p.text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if p.collecting() => {
                if let Some(c) = r.resolve_char_ref().map_err(bad)? {
                    p.text.push(c);
                } else {
                    let name = r.xml10_content();
                    let resolved =
                        quick_xml::escape::resolve_predefined_entity(&name).ok_or_else(|| {
                            corrupt(format!("the XML uses an unknown entity &{name};"))
                        })?;
                    p.text.push_str(resolved);
                }
            }
            Event::DocType(_) => return Err(corrupt("the XML declares a document type")),
            _ => {}
        }
    }
    if !p.stack.is_empty() {
        return Err(corrupt("the XML ends early"));
    }
    if p.tree.groups.is_empty() {
        return Err(corrupt("the XML has no root group"));
    }
    let mut tree = p.tree;
    if let Some(rb) = p.recycle_uuid {
        tree.recycle_bin = tree.groups.iter().position(|g| g.uuid == rb);
    }
    Ok(tree)
}

impl Tree {
    /// The group of a service path, walking from the root; the first
    /// child of each name wins, as in KeePassXC's own lookups.
    fn find_group(&self, service: &str) -> Option<usize> {
        let mut current = 0;
        for part in service.split('/') {
            current = self
                .groups
                .iter()
                .position(|g| g.parent == Some(current) && g.name == part)?;
        }
        Some(current)
    }

    /// The first entry titled `entry.key` in the group of `entry.service`.
    pub fn get(&self, entry: &ov_plugin_api::EntryRef) -> Option<&Entry> {
        let group = self.find_group(&entry.service)?;
        self.entries
            .iter()
            .find(|e| e.group == group && e.title.as_deref() == Some(entry.key.as_str()))
    }

    /// The service path of a group: names from below the root down to it.
    fn service_of(&self, mut group: usize) -> Option<String> {
        let mut parts = Vec::new();
        while let Some(parent) = self.groups.get(group)?.parent {
            parts.push(self.groups[group].name.as_str());
            group = parent;
        }
        parts.reverse();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// Is `group` the recycle bin or inside it?
    fn in_recycle_bin(&self, mut group: usize) -> bool {
        let Some(bin) = self.recycle_bin else {
            return false;
        };
        loop {
            if group == bin {
                return true;
            }
            match self.groups.get(group).and_then(|g| g.parent) {
                Some(p) => group = p,
                None => return false,
            }
        }
    }

    /// Every titled entry below the root and outside the recycle bin whose
    /// service matches, sorted.
    pub fn list(&self, service: Option<&str>) -> Vec<ov_plugin_api::EntryRef> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|e| e.group != 0 && !self.in_recycle_bin(e.group))
            .filter_map(|e| Some((self.service_of(e.group)?, e.title.as_deref()?)))
            .filter(|(svc, _)| ov_plugin_api::service_matches(svc, service))
            .map(|(svc, title)| ov_plugin_api::EntryRef::new(svc, title))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
