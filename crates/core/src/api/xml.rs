//! The EC2 Query protocol's answers: XML whose element names are the
//! service model's `locationName`s (`vpcSet`, `item`, `vpcEndpointId`), in
//! the model's nesting, under `<ActionResponse xmlns=…>` with a `requestId`.
//!
//! The writer only appends to one `String` and escapes text with
//! quick-xml's escaper; every element is closed by the call that opened it
//! ([`Xml::elem`] takes a closure), so a malformed document cannot be built.

use quick_xml::escape::escape;

use super::error::ApiError;

/// The EC2 API's XML namespace for Version 2016-11-15.
pub const EC2_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// An XML answer being written.
#[derive(Debug, Default)]
pub struct Xml {
    out: String,
}

impl Xml {
    /// Opens `<{action}Response>` with the request id; [`Xml::finish`] closes it.
    pub fn response(action: &str, request_id: &str) -> Xml {
        let mut x = Xml { out: String::with_capacity(1024) };
        x.out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        x.out.push('\n');
        x.out.push_str(&format!(r#"<{action}Response xmlns="{EC2_NAMESPACE}">"#));
        x.text("requestId", request_id);
        x
    }

    /// Closes the response element and returns the document.
    pub fn finish(mut self, action: &str) -> String {
        self.out.push_str(&format!("</{action}Response>"));
        self.out
    }

    /// `<name>text</name>`, the text escaped.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>…</name>` when `text` is `Some`; nothing otherwise (EC2 leaves
    /// unset members out).
    pub fn opt(&mut self, name: &str, text: Option<&str>) -> &mut Xml {
        if let Some(t) = text {
            self.text(name, t);
        }
        self
    }

    /// `<name>true|false</name>`.
    pub fn bool(&mut self, name: &str, v: bool) -> &mut Xml {
        self.text(name, if v { "true" } else { "false" })
    }

    /// `<name>n</name>`.
    pub fn num(&mut self, name: &str, v: impl std::fmt::Display) -> &mut Xml {
        self.text(name, &v.to_string())
    }

    /// `<name>` … `</name>` around what `body` writes.
    pub fn elem(&mut self, name: &str, body: impl FnOnce(&mut Xml)) -> &mut Xml {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        body(self);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name><item>…</item>…</name>`, one item per element of `items`.
    pub fn set<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Xml, T),
    ) -> &mut Xml {
        self.elem(name, |x| {
            for it in items {
                x.elem("item", |x| each(x, it));
            }
        })
    }

    /// `<name><item>s</item>…</name>` for a list of strings.
    pub fn strings<'a>(&mut self, name: &str, items: impl IntoIterator<Item = &'a str>) -> &mut Xml {
        self.elem(name, |x| {
            for s in items {
                x.text("item", s);
            }
        })
    }

    /// `<tagSet>` of `(key, value)` pairs.
    pub fn tag_set<'a>(&mut self, tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> &mut Xml {
        self.set("tagSet", tags, |x, (k, v)| {
            x.text("key", k).text("value", v);
        })
    }
}

/// The text of the first `<name>` element of a document this module wrote
/// (no attributes, text escaped), unescaped; `None` when there is none.
pub fn first_text(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find(&format!("</{name}>"))?;
    quick_xml::escape::unescape(&doc[start..end]).ok().map(|t| t.into_owned())
}

/// The EC2 error document: `<Response><Errors><Error>…</Error></Errors><RequestID>…`.
pub fn error_document(e: &ApiError, request_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>"#,
        escape(e.code),
        escape(&e.message),
        escape(request_id)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use quick_xml::events::Event;
    use quick_xml::Reader;

    /// Every text node with its element path (`a/b/item/c`), for tests: the
    /// document must be well formed to get this far.
    pub(crate) fn texts(doc: &str) -> Vec<(String, String)> {
        let mut r = Reader::from_str(doc);
        let (mut path, mut out) = (Vec::<String>::new(), Vec::new());
        loop {
            match r.read_event().expect("well-formed XML") {
                Event::Start(e) => path.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap()),
                Event::End(_) => {
                    path.pop();
                }
                Event::Text(t) => out.push((path.join("/"), t.unescape().unwrap().into_owned())),
                Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    /// The text at `path`, first match.
    pub(crate) fn at(doc: &str, path: &str) -> Option<String> {
        texts(doc).into_iter().find(|(p, _)| p == path).map(|(_, t)| t)
    }

    /// Every text at `path`.
    pub(crate) fn all(doc: &str, path: &str) -> Vec<String> {
        texts(doc).into_iter().filter(|(p, _)| p == path).map(|(_, t)| t).collect()
    }

    #[test]
    fn text_is_escaped_and_the_document_parses() {
        let mut x = Xml::response("CreateTags", "r-1");
        x.text("a", "<&>\"'").set("s", ["x", "y"], |x, s| {
            x.text("v", s);
        });
        let doc = x.finish("CreateTags");
        assert_eq!(at(&doc, "CreateTagsResponse/a").unwrap(), "<&>\"'");
        assert_eq!(all(&doc, "CreateTagsResponse/s/item/v"), ["x", "y"]);
        assert_eq!(at(&doc, "CreateTagsResponse/requestId").unwrap(), "r-1");
    }

    #[test]
    fn the_error_document_has_aws_nesting() {
        let doc = error_document(&ApiError::new("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist"), "r");
        assert_eq!(at(&doc, "Response/Errors/Error/Code").unwrap(), "InvalidVpcID.NotFound");
        assert_eq!(at(&doc, "Response/RequestID").unwrap(), "r");
    }
}
