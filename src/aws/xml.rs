//! A small XML writer for the Query protocol's answers: elements opened and
//! closed by name, text always escaped. No attributes but the root's
//! namespace, which is all AWS Query answers carry.

use std::fmt::{Display, Write as _};

/// An XML document being written.
#[derive(Debug, Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    pub fn new() -> Xml {
        Xml::default()
    }

    /// `<name xmlns="namespace">`: the root of an answer.
    pub fn root(&mut self, name: &str, namespace: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(" xmlns=\"");
        escape_into(&mut self.out, namespace);
        self.out.push_str("\">");
        self
    }

    /// `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Xml {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>` around what `body` writes.
    pub fn element(&mut self, name: &str, body: impl FnOnce(&mut Xml)) -> &mut Xml {
        self.open(name);
        body(self);
        self.close(name)
    }

    /// `<name>text</name>`, the text escaped.
    pub fn leaf(&mut self, name: &str, text: impl Display) -> &mut Xml {
        self.open(name);
        let mut raw = String::new();
        // Writing to a String cannot fail.
        let _ = write!(raw, "{text}");
        escape_into(&mut self.out, &raw);
        self.close(name)
    }

    /// Text where the writer stands (a list of strings' `member`), escaped.
    pub fn text(&mut self, text: &str) -> &mut Xml {
        escape_into(&mut self.out, text);
        self
    }

    /// A leaf when there is a value, else nothing (AWS omits absent members).
    pub fn leaf_opt(&mut self, name: &str, text: Option<impl Display>) -> &mut Xml {
        if let Some(text) = text {
            self.leaf(name, text);
        }
        self
    }

    /// `<name><member>…</member>…</name>`: a list in the Query protocol's
    /// shape, each item written by `item` inside its `member`.
    pub fn members<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Xml, T),
    ) -> &mut Xml {
        self.open(name);
        for i in items {
            self.open("member");
            item(self, i);
            self.close("member");
        }
        self.close(name)
    }

    /// Appends a fragment written apart (already escaped).
    pub fn append(&mut self, fragment: Xml) -> &mut Xml {
        self.out.push_str(&fragment.out);
        self
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

/// Appends `text` escaped for element content and attribute values. Control
/// characters XML 1.0 cannot carry at all become U+FFFD.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let mut x = Xml::new();
        x.root("R", "urn:a&b")
            .leaf("M", "<a href='x'>&\"\r\u{1}</a>")
            .close("R");
        assert_eq!(
            x.into_string(),
            "<R xmlns=\"urn:a&amp;b\"><M>&lt;a href=&apos;x&apos;&gt;&amp;&quot;&#13;\u{FFFD}&lt;/a&gt;</M></R>"
        );
    }

    #[test]
    fn lists_are_members() {
        let mut x = Xml::new();
        x.members("L", [1, 2], |x, n| {
            x.leaf("N", n);
        })
        .leaf_opt("A", None::<&str>)
        .leaf_opt("B", Some(true));
        assert_eq!(
            x.into_string(),
            "<L><member><N>1</N></member><member><N>2</N></member></L><B>true</B>"
        );
    }
}
