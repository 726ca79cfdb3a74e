//! Pass 1: the parsed tree → an element table and a list of text blocks.
//!
//! One iterative walk over the arena [`tree`](super::tree) builds (a loop
//! over first-child / next-sibling / parent links, never recursion). Elements
//! without visible text (script, style, svg, inputs...) are skipped whole.
//! Every block-level element, `<br>`, and inline element carrying a
//! boilerplate hint (`<span class="date">`) ends a line, so the selection
//! pass can keep or drop it on its own; inline text within a line is
//! concatenated with whitespace runs collapsed to one space, as a browser
//! renders it.

use super::patterns::{MAIN, NEG, Tag};
use super::tree::{Data, Dom, NONE};
use super::{Budget, ExtractParams};
use crate::clean::Reason;

/// One element that survived the walk. Row 0 is the document itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct El {
    /// Row of the parent element (0 for the root itself). Rows are in document
    /// (pre-)order, so a parent's row is always smaller than its children's.
    pub parent: u32,
    pub tag: Tag,
    /// `patterns::{NEG, STRONG, POS, MAIN, HIDDEN}` bits.
    pub flags: u16,
}

/// One line of text: a run of inline content between two line boundaries.
#[derive(Debug, Clone, Copy)]
pub(super) struct Block {
    /// Byte range in `Page::text`.
    pub start: u32,
    pub end: u32,
    /// Characters, and characters inside `<a>`.
    pub chars: u32,
    pub link_chars: u32,
    /// `,` and its CJK/Arabic forms: readability's sign of real sentences.
    pub commas: u32,
    /// The innermost line-boundary element holding the text.
    pub el: u32,
}

/// The walked page.
pub(super) struct Page {
    pub els: Vec<El>,
    pub blocks: Vec<Block>,
    /// All block texts, back to back.
    pub text: String,
    title_tag: Option<String>,
    og_title: Option<String>,
    first_h1: Option<String>,
}

impl Page {
    /// The text of one block.
    pub(super) fn block_text(&self, b: &Block) -> &str {
        self.text.get(b.start as usize..b.end as usize).unwrap_or("")
    }

    /// `og:title`, else `<title>`, else the first `<h1>`.
    pub(super) fn title(&self) -> Option<String> {
        [&self.og_title, &self.title_tag, &self.first_h1]
            .into_iter()
            .flatten()
            .find(|t| !t.is_empty())
            .cloned()
    }
}

/// An open element on the walk's stack.
struct Frame {
    el: u32,
    boundary: bool,
    link: bool,
    article: bool,
}

struct Walker {
    page: Page,
    stack: Vec<Frame>,
    /// Rows of the open line-boundary elements; the last one owns the current line.
    bounds: Vec<u32>,
    links: u32,
    articles: u32,
    /// Start of the current line in `page.text`, its counts, and whether a space is pending.
    line_start: usize,
    chars: u32,
    link_chars: u32,
    space: bool,
}

impl Walker {
    /// Appends a text node, collapsing whitespace runs to one space.
    fn push_text(&mut self, t: &str) {
        let lead = t.starts_with(char::is_whitespace);
        let mut first = true;
        for w in t.split_whitespace() {
            if self.page.text.len() > self.line_start && (self.space || lead || !first) {
                self.page.text.push(' ');
                self.chars += 1;
                if self.links > 0 {
                    self.link_chars += 1;
                }
            }
            first = false;
            self.space = false;
            self.page.text.push_str(w);
            let n = if w.is_ascii() { w.len() } else { w.chars().count() } as u32;
            self.chars += n;
            if self.links > 0 {
                self.link_chars += n;
            }
        }
        if t.ends_with(char::is_whitespace) {
            self.space = true;
        }
    }

    /// Ends the current line (if it has text) as a block owned by the innermost boundary.
    fn flush(&mut self) {
        let end = self.page.text.len();
        if end > self.line_start {
            let line = &self.page.text[self.line_start..end];
            let commas = line.chars().filter(|c| matches!(c, ',' | '，' | '、' | '،')).count() as u32;
            let el = self.bounds.last().copied().unwrap_or(0);
            if self.page.first_h1.is_none() && self.page.els[el as usize].tag == Tag::H(1) {
                self.page.first_h1 = Some(line.to_string());
            }
            self.page.blocks.push(Block {
                start: self.line_start as u32,
                end: end as u32,
                chars: self.chars,
                link_chars: self.link_chars.min(self.chars),
                commas,
                el,
            });
        }
        self.line_start = end;
        self.chars = 0;
        self.link_chars = 0;
        self.space = false;
    }
}

impl Walker {
    /// Opens node `id`; returns whether it became an open element to descend into.
    fn open(&mut self, dom: &Dom, id: u32, p: &ExtractParams) -> bool {
        let e = match &dom.nodes[id as usize].data {
            Data::Element(e) => e,
            Data::Text(t) => {
                self.push_text(t);
                return false;
            }
            _ => return false,
        };
        let mut tag = e.tag;
        if tag == Tag::Table && !p.include_tables {
            tag = Tag::Drop;
        }
        match tag {
            Tag::Drop => return false,
            Tag::Title => {
                if self.page.title_tag.is_none() {
                    self.page.title_tag = Some(dom.text_of(id));
                }
                return false;
            }
            Tag::Meta => {
                if self.page.og_title.is_none() {
                    self.page.og_title = e.og_title.as_deref().map(str::to_string);
                }
                return false;
            }
            Tag::Br => {
                self.flush();
                return false;
            }
            _ => {}
        }
        let mut flags = e.flags;
        flags |= match tag {
            Tag::Nav | Tag::Aside | Tag::Footer | Tag::Address | Tag::Time | Tag::Form | Tag::Figcaption => NEG,
            // A page header is chrome; an article's header holds its headline.
            Tag::Header if self.articles == 0 => NEG,
            Tag::Article | Tag::Main => MAIN,
            _ => 0,
        };
        let boundary = tag.is_block() || flags & NEG != 0;
        if boundary {
            self.flush();
        }
        let parent = self.stack.last().map_or(0, |f| f.el);
        let el = self.page.els.len() as u32;
        self.page.els.push(El { parent, tag, flags });
        let link = tag == Tag::A;
        let article = matches!(tag, Tag::Article | Tag::Main) || flags & MAIN != 0;
        self.links += link as u32;
        self.articles += article as u32;
        if boundary {
            self.bounds.push(el);
        }
        self.stack.push(Frame {
            el,
            boundary,
            link,
            article,
        });
        true
    }

    /// Closes the innermost open element.
    fn close(&mut self) {
        if let Some(f) = self.stack.pop() {
            if f.boundary {
                self.flush();
                self.bounds.pop();
            }
            self.links -= f.link as u32;
            self.articles -= f.article as u32;
        }
    }
}

/// Walks the parsed document into a [`Page`]. Fails only when the budget runs out.
///
/// The walk is a loop over first-child / next-sibling / parent links (no
/// recursion); subtrees without visible text are skipped without a visit.
pub(super) fn walk(dom: &Dom, p: &ExtractParams, budget: &mut Budget) -> Result<Page, Reason> {
    let mut w = Walker {
        page: Page {
            els: vec![El {
                parent: 0,
                tag: Tag::Root,
                flags: 0,
            }],
            blocks: Vec::new(),
            text: String::new(),
            title_tag: None,
            og_title: None,
            first_h1: None,
        },
        stack: Vec::new(),
        bounds: vec![0],
        links: 0,
        articles: 0,
        line_start: 0,
        chars: 0,
        link_chars: 0,
        space: false,
    };
    let mut node = dom.nodes[0].first;
    if node == NONE {
        return Ok(w.page);
    }
    'walk: loop {
        budget.tick()?;
        if w.open(dom, node, p) {
            let c = dom.nodes[node as usize].first;
            if c != NONE {
                node = c;
                continue;
            }
            w.close();
        }
        // Done with `node`'s subtree: on to its next sibling, closing ancestors on the way up.
        loop {
            let n = &dom.nodes[node as usize];
            if n.next != NONE {
                node = n.next;
                break;
            }
            match n.parent {
                up if up != 0 && up != NONE => {
                    node = up;
                    w.close();
                }
                _ => break 'walk,
            }
        }
    }
    w.flush();
    Ok(w.page)
}
