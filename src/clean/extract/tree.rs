//! html5ever's tree, built straight into a flat arena of the little the walk reads.
//!
//! A general DOM (scraper's, over ego_tree) keeps every element's attributes
//! in a sorted vector of owned strings and parses class lists on demand; the
//! walk needs none of that, only each element's [`Tag`], its boilerplate
//! flags and, for `<meta>`, an `og:title`. This sink computes those once, as
//! html5ever creates the element, and drops the attributes.
//!
//! The tree operations follow html5ever's `TreeSink` contract (adjacent text
//! merged on append, nodes detached before being moved), so the tree, and
//! the walk over it, is the one every other html5ever DOM builds.

use super::patterns::{self, Tag, attr};
use super::{lexer, nesting};
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeBuilder, TreeBuilderOpts, TreeSink};
use html5ever::{Attribute, QualName, local_name, ns};
use std::borrow::Cow;
use std::cell::{Ref, RefCell};

/// No node: the end of a sibling list, or a node without a parent.
pub(super) const NONE: u32 = u32::MAX;

/// What a node holds.
pub(super) enum Data {
    /// The document node, always row 0.
    Document,
    Element(Element),
    Text(StrTendril),
    /// Comments, processing instructions, the doctype and template contents:
    /// nothing the walk reads or descends into.
    Other,
}

/// An element: what the walk reads, computed from its attributes at creation.
pub(super) struct Element {
    /// html5ever asks for names while it builds (scoping rules need the namespace).
    name: QualName,
    pub tag: Tag,
    /// `patterns::{NEG, STRONG, POS, MAIN, HIDDEN}` from id/class/role/itemprop/hidden/style.
    pub flags: u16,
    /// Which of the attributes `patterns::attr_flags` reads were present (bit per
    /// name), so that `add_attrs_if_missing` only adds flags of new ones.
    seen: u16,
    /// For `<meta property|name="og:title">`: its `content`, whitespace collapsed.
    pub og_title: Option<Box<str>>,
    /// For `<template>`: its contents node (html5ever keeps them apart from its children).
    template: u32,
}

/// One node and its links; `NONE` where there is none.
pub(super) struct Node {
    pub parent: u32,
    pub prev: u32,
    pub next: u32,
    pub first: u32,
    pub last: u32,
    pub data: Data,
}

/// A parsed document.
pub(super) struct Dom {
    pub nodes: Vec<Node>,
}

impl Dom {
    /// Parses a whole document: kiln's [`lexer`] feeding html5ever's tree builder,
    /// or html5ever's own tokenizer where the lexer gives up.
    pub(super) fn parse(html: &str) -> Dom {
        Dom::parse_fast(html, u64::MAX).unwrap_or_else(|_| Dom::parse_html5ever(html))
    }

    /// [`Dom::parse`], unless html5ever's scans of its element stack would take more
    /// than `limit` steps ([`nesting`]): then the deepest estimated nesting.
    pub(super) fn parse_within(html: &str, limit: u64) -> Result<Dom, usize> {
        if let Ok(dom) = Dom::parse_fast(html, limit) {
            return Ok(dom);
        }
        let (cost, deepest) = nesting::parse_cost(html, limit);
        if cost > limit {
            return Err(deepest);
        }
        Ok(Dom::parse_html5ever(html))
    }

    /// The tree from kiln's lexer and html5ever's tree builder.
    pub(super) fn parse_fast(html: &str, limit: u64) -> Result<Dom, lexer::GiveUp> {
        let builder = TreeBuilder::new(Sink::new(), TreeBuilderOpts::default());
        lexer::run(html, &builder, limit)?;
        Ok(builder.sink.finish())
    }

    /// The tree from html5ever's tokenizer and tree builder.
    pub(super) fn parse_html5ever(html: &str) -> Dom {
        html5ever::parse_document(Sink::new(), Default::default()).one(html)
    }

    /// The text under `id`, whitespace runs collapsed to one space (a `<title>`).
    pub(super) fn text_of(&self, id: u32) -> String {
        let mut words: Vec<&str> = Vec::new();
        let mut stack = vec![self.nodes[id as usize].first];
        while let Some(mut n) = stack.pop() {
            while n != NONE {
                let node = &self.nodes[n as usize];
                match &node.data {
                    Data::Text(t) => words.extend(t.split_whitespace()),
                    Data::Element(_) if node.first != NONE => {
                        // Finish this sibling list after the child's subtree.
                        stack.push(node.next);
                        n = node.first;
                        continue;
                    }
                    _ => {}
                }
                n = node.next;
            }
        }
        words.join(" ")
    }
}

#[cfg(test)]
impl Dom {
    /// Every node in tree order with what the walk reads of it (tag name, flags,
    /// `og:title`, text): two parses of a page agree iff their dumps do.
    pub(super) fn dump(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![(0u32, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            let node = &self.nodes[id as usize];
            let line = match &node.data {
                Data::Document => "#document".to_string(),
                Data::Element(e) => format!("<{}> {:#x} {:?}", &*e.name.local, e.flags, e.og_title),
                Data::Text(t) => format!("{:?}", &**t),
                Data::Other => "?".to_string(),
            };
            out.push_str(&format!("{:depth$}{line}\n", ""));
            let mut kids = Vec::new();
            let mut c = node.first;
            while c != NONE {
                kids.push((c, depth + 1));
                c = self.nodes[c as usize].next;
            }
            if let Data::Element(e) = &node.data
                && e.template != NONE
            {
                kids.push((e.template, depth + 1));
            }
            stack.extend(kids.into_iter().rev());
        }
        out
    }
}

impl Node {
    fn new(data: Data) -> Node {
        Node {
            parent: NONE,
            prev: NONE,
            next: NONE,
            first: NONE,
            last: NONE,
            data,
        }
    }
}

/// The attributes `attr_flags` reads, one bit each in `Element::seen`.
const READ: [&str; 6] = ["class", "id", "role", "itemprop", "hidden", "style"];

fn seen_bits(attrs: &[Attribute]) -> u16 {
    attrs
        .iter()
        .fold(0, |m, a| m | READ.iter().position(|&r| *a.name.local == *r).map_or(0, |i| 1 << i))
}

struct Sink {
    dom: RefCell<Dom>,
    /// Scratch for lower-casing class names.
    buf: RefCell<String>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            dom: RefCell::new(Dom {
                nodes: vec![Node::new(Data::Document)],
            }),
            buf: RefCell::new(String::new()),
        }
    }

    fn push(&self, node: Node) -> u32 {
        let mut dom = self.dom.borrow_mut();
        dom.nodes.push(node);
        (dom.nodes.len() - 1) as u32
    }
}

impl Dom {
    /// Unlinks `id` from its parent and siblings.
    fn detach(&mut self, id: u32) {
        let Node { parent, prev, next, .. } = self.nodes[id as usize];
        if parent == NONE {
            return;
        }
        if prev != NONE {
            self.nodes[prev as usize].next = next;
        } else {
            self.nodes[parent as usize].first = next;
        }
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        } else {
            self.nodes[parent as usize].last = prev;
        }
        let n = &mut self.nodes[id as usize];
        (n.parent, n.prev, n.next) = (NONE, NONE, NONE);
    }

    /// Links the detached `id` as the last child of `parent`.
    fn append_child(&mut self, parent: u32, id: u32) {
        let last = self.nodes[parent as usize].last;
        {
            let n = &mut self.nodes[id as usize];
            (n.parent, n.prev, n.next) = (parent, last, NONE);
        }
        if last != NONE {
            self.nodes[last as usize].next = id;
        } else {
            self.nodes[parent as usize].first = id;
        }
        self.nodes[parent as usize].last = id;
    }

    /// Links the detached `id` just before `sibling` (which has a parent).
    fn insert_before(&mut self, sibling: u32, id: u32) {
        let Node { parent, prev, .. } = self.nodes[sibling as usize];
        {
            let n = &mut self.nodes[id as usize];
            (n.parent, n.prev, n.next) = (parent, prev, sibling);
        }
        self.nodes[sibling as usize].prev = id;
        if prev != NONE {
            self.nodes[prev as usize].next = id;
        } else {
            self.nodes[parent as usize].first = id;
        }
    }

    /// Appends `t` to node `id` if it is text; false if it is not (or is `NONE`).
    fn merge_text(&mut self, id: u32, t: &StrTendril) -> bool {
        if id == NONE {
            return false;
        }
        match &mut self.nodes[id as usize].data {
            Data::Text(old) => {
                old.push_tendril(t);
                true
            }
            _ => false,
        }
    }
}

impl TreeSink for Sink {
    type Handle = u32;
    type Output = Dom;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Dom {
        self.dom.into_inner()
    }

    // Parse errors are normal in crawled HTML and change nothing here.
    fn parse_error(&self, _msg: Cow<'static, str>) {}

    fn get_document(&self) -> u32 {
        0
    }

    fn elem_name<'a>(&'a self, target: &'a u32) -> Ref<'a, QualName> {
        Ref::map(self.dom.borrow(), |d| match &d.nodes[*target as usize].data {
            Data::Element(e) => &e.name,
            // html5ever asks only for elements' names (its contract); an
            // empty name matches no rule should that ever change.
            _ => &EMPTY_NAME,
        })
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, _flags: ElementFlags) -> u32 {
        let tag = patterns::tag_of(&name.local);
        let og_title = (tag == Tag::Meta)
            .then(|| {
                let prop = attr(&attrs, "property").or_else(|| attr(&attrs, "name")).unwrap_or("");
                prop.eq_ignore_ascii_case("og:title").then(|| {
                    attr(&attrs, "content")
                        .unwrap_or("")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .into()
                })
            })
            .flatten();
        let flags = match tag {
            // Never descended into, so their attributes say nothing.
            Tag::Drop | Tag::Title | Tag::Meta | Tag::Br => 0,
            _ => patterns::attr_flags(&attrs, &mut self.buf.borrow_mut()),
        };
        let is_template = name.ns == ns!(html) && name.local == local_name!("template");
        let id = self.push(Node::new(Data::Element(Element {
            name,
            tag,
            flags,
            seen: seen_bits(&attrs),
            og_title,
            template: NONE,
        })));
        if is_template {
            let contents = self.push(Node::new(Data::Other));
            let mut dom = self.dom.borrow_mut();
            dom.append_child(id, contents);
            if let Data::Element(e) = &mut dom.nodes[id as usize].data {
                e.template = contents;
            }
        }
        id
    }

    fn create_comment(&self, _text: StrTendril) -> u32 {
        self.push(Node::new(Data::Other))
    }

    fn create_pi(&self, _target: StrTendril, _data: StrTendril) -> u32 {
        self.push(Node::new(Data::Other))
    }

    fn append(&self, parent: &u32, child: NodeOrText<u32>) {
        match child {
            NodeOrText::AppendNode(id) => {
                let mut dom = self.dom.borrow_mut();
                dom.detach(id);
                dom.append_child(*parent, id);
            }
            NodeOrText::AppendText(t) => {
                let last = self.dom.borrow().nodes[*parent as usize].last;
                if !self.dom.borrow_mut().merge_text(last, &t) {
                    let id = self.push(Node::new(Data::Text(t)));
                    self.dom.borrow_mut().append_child(*parent, id);
                }
            }
        }
    }

    fn append_based_on_parent_node(&self, element: &u32, prev_element: &u32, child: NodeOrText<u32>) {
        if self.dom.borrow().nodes[*element as usize].parent != NONE {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _name: StrTendril, _public_id: StrTendril, _system_id: StrTendril) {
        let id = self.push(Node::new(Data::Other));
        self.dom.borrow_mut().append_child(0, id);
    }

    fn get_template_contents(&self, target: &u32) -> u32 {
        match &self.dom.borrow().nodes[*target as usize].data {
            Data::Element(e) if e.template != NONE => e.template,
            // Only called for templates, which always have contents; the
            // element itself is a safe stand-in.
            _ => *target,
        }
    }

    fn same_node(&self, x: &u32, y: &u32) -> bool {
        x == y
    }

    // The tree builder keeps its own quirks mode; the walk does not need it.
    fn set_quirks_mode(&self, _mode: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &u32, new_node: NodeOrText<u32>) {
        let mut dom = self.dom.borrow_mut();
        if let NodeOrText::AppendNode(id) = new_node {
            dom.detach(id);
        }
        if dom.nodes[*sibling as usize].parent == NONE {
            return;
        }
        match new_node {
            NodeOrText::AppendNode(id) => dom.insert_before(*sibling, id),
            NodeOrText::AppendText(t) => {
                let prev = dom.nodes[*sibling as usize].prev;
                if !dom.merge_text(prev, &t) {
                    dom.nodes.push(Node::new(Data::Text(t)));
                    let id = (dom.nodes.len() - 1) as u32;
                    dom.insert_before(*sibling, id);
                }
            }
        }
    }

    fn add_attrs_if_missing(&self, target: &u32, attrs: Vec<Attribute>) {
        let mut dom = self.dom.borrow_mut();
        if let Data::Element(e) = &mut dom.nodes[*target as usize].data {
            let new: Vec<Attribute> = attrs
                .into_iter()
                .filter(|a| seen_bits(std::slice::from_ref(a)) & !e.seen != 0)
                .collect();
            if !new.is_empty() {
                e.flags |= patterns::attr_flags(&new, &mut self.buf.borrow_mut());
                e.seen |= seen_bits(&new);
            }
        }
    }

    fn remove_from_parent(&self, target: &u32) {
        self.dom.borrow_mut().detach(*target);
    }

    fn reparent_children(&self, node: &u32, new_parent: &u32) {
        let mut dom = self.dom.borrow_mut();
        let mut c = dom.nodes[*node as usize].first;
        while c != NONE {
            let next = dom.nodes[c as usize].next;
            dom.detach(c);
            dom.append_child(*new_parent, c);
            c = next;
        }
    }
}

static EMPTY_NAME: std::sync::LazyLock<QualName> = std::sync::LazyLock::new(|| QualName::new(None, ns!(), local_name!("")));

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as markup: elements by name, text in quotes, other nodes as
    /// `?`, with their children (a template's contents) in brackets.
    fn show(dom: &Dom, id: u32, out: &mut String) {
        let node = &dom.nodes[id as usize];
        match &node.data {
            Data::Text(t) => out.push_str(&format!("{:?}", &**t)),
            Data::Element(e) => out.push_str(&format!("<{}>", &*e.name.local)),
            Data::Other => out.push('?'),
            Data::Document => {}
        }
        let bracket = matches!(node.data, Data::Other) && node.first != NONE;
        if bracket {
            out.push('[');
        }
        let mut c = node.first;
        while c != NONE {
            assert_eq!(dom.nodes[c as usize].parent, id, "parent link of node {c}");
            show(dom, c, out);
            c = dom.nodes[c as usize].next;
        }
        if bracket {
            out.push(']');
        }
        if let Data::Element(e) = &node.data {
            out.push_str(&format!("</{}>", &*e.name.local));
        }
    }

    fn tree(html: &str) -> String {
        let mut out = String::new();
        show(&Dom::parse(html), 0, &mut out);
        out.trim_start_matches("?<html><head></head>")
            .trim_end_matches("</html>")
            .to_string()
    }

    /// The trees the HTML spec's tree-construction examples give (adoption
    /// agency, foster parenting, text merging), as every html5ever DOM builds them.
    #[test]
    fn misnested_and_foster_parented_markup_builds_the_spec_tree() {
        // Misnested formatting: the adoption agency algorithm reparents.
        assert_eq!(
            tree("<!DOCTYPE html><b><p>x</b>y</p>"),
            r#"<body><b></b><p><b>"x"</b>"y"</p></body>"#
        );
        // Text inside a table goes before it, adjacent pieces merged into one node.
        assert_eq!(
            tree("<!DOCTYPE html><table>a<tr>b<td>c</td></tr></table>"),
            r#"<body>"ab"<table><tbody><tr><td>"c"</td></tr></tbody></table></body>"#
        );
        // Text split by a comment stays two nodes; split by nothing, one.
        assert_eq!(tree("<!DOCTYPE html><p>a<!--c-->b</p>"), r#"<body><p>"a"?"b"</p></body>"#);
        assert_eq!(tree("<!DOCTYPE html><p>a&amp;b</p>"), r#"<body><p>"a&b"</p></body>"#);
    }

    #[test]
    fn template_contents_hang_off_a_node_the_walk_skips() {
        let dom = Dom::parse("<template><p>hidden</p></template><p>seen</p>");
        let mut out = String::new();
        show(&dom, 0, &mut out);
        assert!(out.contains(r#"<template>?[<p>"hidden"</p>]</template>"#), "{out}");
        assert!(out.contains(r#"<p>"seen"</p>"#), "{out}");
    }

    /// A second `<body>` tag adds only the attributes the first lacked, and
    /// its class counts toward the body's flags as if written on the first.
    #[test]
    fn repeated_body_tags_merge_missing_attributes_into_the_flags() {
        let flags_of_body = |html: &str| {
            let dom = Dom::parse(html);
            dom.nodes
                .iter()
                .find_map(|n| match &n.data {
                    Data::Element(e) if &*e.name.local == "body" => Some(e.flags),
                    _ => None,
                })
                .expect("a body")
        };
        assert_eq!(flags_of_body("<body><p>x</p>"), 0);
        assert_ne!(flags_of_body(r#"<body><p>x<body class="sidebar">"#) & patterns::NEG, 0);
        // `class` was already set, so the second one is ignored, as in a browser.
        assert_eq!(flags_of_body(r#"<body class="x"><p>x<body class="sidebar">"#) & patterns::NEG, 0);
    }

    #[test]
    fn og_title_is_kept_from_meta_and_nothing_else() {
        let dom = Dom::parse(r#"<head><meta property="OG:Title" content="  A   title "><meta name="x" content="no"></head>"#);
        let titles: Vec<_> = dom
            .nodes
            .iter()
            .filter_map(|n| match &n.data {
                Data::Element(e) => e.og_title.as_deref(),
                _ => None,
            })
            .collect();
        assert_eq!(titles, ["A title"]);
    }
}
