//! What a tag is and what an element's id/class/role/itemprop/style say
//! about it: the boilerplate and content hints the selection pass uses.
//!
//! The word lists merge readability.js's `unlikelyCandidates` /
//! `okMaybeItsACandidate` / positive / negative class patterns with the
//! id/class words of trafilatura's cleaning XPaths (xpaths.py:
//! `OVERALL_DISCARD_XPATH`, `BODY_XPATH`). Matching is per dash/underscore
//! separated part of each class name, so `tag-politics` (a WordPress post
//! class) does not read as a tag cloud and `shadow` does not read as `ad`;
//! a few long words are also matched inside glued names (`commentlist`).

use html5ever::Attribute;
use std::cell::RefCell;
use std::collections::HashMap;

/// Boilerplate hint: navigation, menus, footers, sidebars, share bars, bylines, dates...
pub(super) const NEG: u16 = 1;
/// Strong boilerplate hint (comments, cookie/consent banners, ads): removed even when big.
pub(super) const STRONG: u16 = 2;
/// Content hint (article, content, entry, post, story, text, body, main).
pub(super) const POS: u16 = 4;
/// Declared main content: `itemprop=articleBody`, `role=main`, `<article>`, `<main>`.
pub(super) const MAIN: u16 = 8;
/// Hidden: `hidden` attribute, `display:none`, `visibility:hidden`.
pub(super) const HIDDEN: u16 = 16;

/// The tags the passes treat differently; everything else is `Inline` or `Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    /// The document node (element table row 0).
    Root,
    Html,
    Body,
    Div,
    Section,
    Article,
    Main,
    P,
    /// `<h1>`..`<h6>`.
    H(u8),
    Li,
    /// `<dt>`, `<dd>`.
    DefItem,
    /// `<ul>`, `<ol>`, `<dl>`.
    List,
    Pre,
    Quote,
    Table,
    Tr,
    /// `<td>`, `<th>`.
    Cell,
    Header,
    Footer,
    Nav,
    Aside,
    Form,
    Address,
    /// `<figcaption>`: photo captions and credits, boilerplate for the benchmark and for LM text.
    Figcaption,
    Time,
    A,
    Br,
    Title,
    Meta,
    /// Elements without visible text (script, style, svg, inputs, media...): skipped whole.
    Drop,
    /// Other block-level elements (figure, center, details, fieldset, hr...).
    Block,
    /// Other inline elements (span, b, em, font...).
    Inline,
}

impl Tag {
    /// Whether the element starts and ends a line of text.
    pub(super) fn is_block(self) -> bool {
        !matches!(
            self,
            Tag::Inline | Tag::A | Tag::Br | Tag::Time | Tag::Title | Tag::Meta | Tag::Drop
        )
    }

    /// Div-like containers: text directly inside them is scored as a paragraph of their own.
    pub(super) fn is_container(self) -> bool {
        matches!(
            self,
            Tag::Div | Tag::Section | Tag::Article | Tag::Main | Tag::Body | Tag::Block | Tag::Root | Tag::Html
        )
    }
}

/// The tag of an element from its (lower-case) local name.
pub(super) fn tag_of(name: &str) -> Tag {
    match name {
        "html" => Tag::Html,
        "body" => Tag::Body,
        "div" => Tag::Div,
        "section" => Tag::Section,
        "article" => Tag::Article,
        "main" => Tag::Main,
        "p" => Tag::P,
        "h1" => Tag::H(1),
        "h2" => Tag::H(2),
        "h3" => Tag::H(3),
        "h4" => Tag::H(4),
        "h5" => Tag::H(5),
        "h6" => Tag::H(6),
        "li" => Tag::Li,
        "dt" | "dd" => Tag::DefItem,
        "ul" | "ol" | "dl" => Tag::List,
        "pre" => Tag::Pre,
        "blockquote" => Tag::Quote,
        "table" => Tag::Table,
        "tr" => Tag::Tr,
        "td" | "th" => Tag::Cell,
        "header" => Tag::Header,
        "footer" => Tag::Footer,
        "nav" | "menu" => Tag::Nav,
        "aside" => Tag::Aside,
        "form" => Tag::Form,
        "address" => Tag::Address,
        "figcaption" => Tag::Figcaption,
        "time" => Tag::Time,
        "a" => Tag::A,
        "br" => Tag::Br,
        "title" => Tag::Title,
        "meta" => Tag::Meta,
        "script" | "style" | "noscript" | "iframe" | "frame" | "frameset" | "svg" | "math" | "template" | "object" | "embed" | "applet"
        | "canvas" | "video" | "audio" | "picture" | "source" | "track" | "map" | "area" | "button" | "input" | "select" | "option"
        | "optgroup" | "datalist" | "textarea" | "label" | "output" | "progress" | "meter" | "dialog" | "link" | "img" | "rp" | "rt"
        | "marquee" => Tag::Drop,
        "center" | "figure" | "details" | "summary" | "fieldset" | "legend" | "hr" | "hgroup" | "thead" | "tbody" | "tfoot" | "caption"
        | "colgroup" | "noframes" | "dir" | "search" => Tag::Block,
        _ => Tag::Inline,
    }
}

/// Class/id parts that mark boilerplate removed even when it holds much text.
const STRONG_PARTS: &[&str] = &[
    "comment",
    "comments",
    "commentlist",
    "disqus",
    "respond",
    "replies",
    "cookie",
    "cookies",
    "consent",
    "gdpr",
    "ad",
    "ads",
    "advert",
    "adverts",
    "advertisement",
    "advertising",
    "adsense",
    "adslot",
    "adunit",
    "sponsored",
    "sponsor",
    "outbrain",
    "taboola",
    "paywall",
];

/// Class/id parts that mark boilerplate.
const NEG_PARTS: &[&str] = &[
    "nav",
    "navbar",
    "navi",
    "navigation",
    "menu",
    "menubar",
    "submenu",
    "breadcrumb",
    "breadcrumbs",
    "crumbs",
    "footer",
    "masthead",
    "sidebar",
    "aside",
    "widget",
    "widgets",
    "share",
    "shares",
    "sharing",
    "sharebar",
    "social",
    "socials",
    "related",
    "recommended",
    "recommendations",
    "promo",
    "newsletter",
    "subscribe",
    "subscription",
    "signup",
    "login",
    "pagination",
    "pager",
    "popup",
    "modal",
    "overlay",
    "toolbar",
    "tools",
    "print",
    "rss",
    "tags",
    "tagcloud",
    "taglist",
    "keywords",
    "meta",
    "metadata",
    "byline",
    "author",
    "authors",
    "date",
    "dateline",
    "timestamp",
    "published",
    "posted",
    "skip",
    "hidden",
    "hide",
    "sronly",
    "teaser",
    "teasers",
    "trending",
    "popular",
    "banner",
    "rating",
    "vote",
    "votes",
    "follow",
    "author-info",
    "bio",
    "avatar",
    "caption",
    "credit",
    "credits",
    "copyright",
    "legal",
    "disclaimer",
    "jump",
    "tooltip",
    "dropdown",
    "search",
    "sitemap",
    "topbar",
    "bottombar",
    "more",
    "next",
    "prev",
    "previous",
    "pagenav",
];

/// Long words also matched inside glued names (`commentlist`, `sharebox`, `sidebarleft`).
const GLUED_STRONG: &[&str] = &["comment", "cookie", "consent", "advert", "sponsor", "disqus", "outbrain", "taboola"];
const GLUED_NEG: &[&str] = &[
    "sidebar",
    "navbar",
    "navigation",
    "breadcrumb",
    "pagination",
    "newsletter",
    "social",
    "related",
    "footer",
    "widget",
    "banner",
    "popup",
    "share",
    "subscribe",
];

/// Class/id parts that mark content.
const POS_PARTS: &[&str] = &[
    "article",
    "articlebody",
    "content",
    "entry",
    "entrycontent",
    "post",
    "postbody",
    "story",
    "storybody",
    "text",
    "body",
    "main",
    "blog",
    "hentry",
    "prose",
    "richtext",
    "column",
    "blogpost",
    "single",
];
const GLUED_POS: &[&str] = &["article", "content", "story"];

/// What a whole class/id part says, first match winning in this order.
#[derive(Clone, Copy)]
enum Part {
    Strong,
    Neg,
    Header,
    Pos,
}

/// Every part of the lists above in one map: a class list is checked part by
/// part on every element, and a scan of the lists was a tenth of extraction.
static PART_KINDS: std::sync::LazyLock<HashMap<&'static str, Part>> = std::sync::LazyLock::new(|| {
    let mut m = HashMap::new();
    // Lowest priority first, so that a part in two lists gets the earlier kind.
    let lists: [(&[&'static str], Part); 4] = [
        (POS_PARTS, Part::Pos),
        (&["header", "head"], Part::Header),
        (NEG_PARTS, Part::Neg),
        (STRONG_PARTS, Part::Strong),
    ];
    for (list, kind) in lists {
        for &w in list {
            m.insert(w, kind);
        }
    }
    m
});

/// Flags from one class name or id (ASCII-lower-cased into `buf`).
fn name_flags(name: &str, buf: &mut String) -> u16 {
    buf.clear();
    buf.extend(name.chars().map(|c| c.to_ascii_lowercase()));
    // A BEM modifier (`section--ads`, `o-section--has-ads`) describes the block, it is not one.
    let block = buf.split("--").next().unwrap_or("");
    let (mut f, mut pos, mut header) = (0u16, false, false);
    let mut prev = "";
    for part in block.split(|c: char| !c.is_ascii_alphanumeric()).filter(|s| !s.is_empty()) {
        // "has-sidebar", "with-ads", "no-comments": a state of the element, not its role.
        if matches!(
            std::mem::replace(&mut prev, part),
            "has" | "with" | "no" | "without" | "show" | "hide" | "is" | "enable"
        ) {
            continue;
        }
        match PART_KINDS.get(part) {
            Some(Part::Strong) => f |= STRONG | NEG,
            Some(Part::Neg) => f |= NEG,
            Some(Part::Header) => header = true,
            Some(Part::Pos) => pos = true,
            None if part.len() > 5 => {
                if GLUED_STRONG.iter().any(|w| part.contains(w)) {
                    f |= STRONG | NEG;
                } else if GLUED_NEG.iter().any(|w| part.contains(w)) {
                    f |= NEG;
                } else if GLUED_POS.iter().any(|w| part.contains(w)) {
                    pos = true;
                }
            }
            None => {}
        }
    }
    // "entry-header"/"article-header" hold the headline; "site-header" is chrome.
    if header && !pos {
        f |= NEG;
    }
    if pos {
        f |= POS;
    }
    f
}

/// The attribute called `name` (any namespace, as an HTML author writes it).
pub(super) fn attr<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| &*a.name.local == name).map(|a| &*a.value)
}

thread_local! {
    /// `class` attribute → its flags. A page repeats a few dozen class lists
    /// over thousands of elements, and matching one list part by part (with
    /// the glued-word scans) was a tenth of extraction.
    static CLASS_FLAGS: RefCell<ahash::AHashMap<Box<str>, u16>> = RefCell::new(ahash::AHashMap::new());
}

/// Memo entries kept per thread before the memo starts over: bounds memory on
/// pages with generated class names.
const CLASS_MEMO_MAX: usize = 1 << 14;

/// The flags of a whole `class` attribute: each class name's, or-ed.
fn class_flags(class: &str, buf: &mut String) -> u16 {
    CLASS_FLAGS.with_borrow_mut(|memo| {
        if let Some(&f) = memo.get(class) {
            return f;
        }
        let f = class.split_ascii_whitespace().fold(0, |f, name| f | name_flags(name, buf));
        if memo.len() >= CLASS_MEMO_MAX {
            memo.clear();
        }
        memo.insert(class.into(), f);
        f
    })
}

/// The boilerplate/content flags of an element from its attributes.
pub(super) fn attr_flags(attrs: &[Attribute], buf: &mut String) -> u16 {
    let mut f = 0;
    if let Some(class) = attr(attrs, "class") {
        f |= class_flags(class, buf);
    }
    if let Some(id) = attr(attrs, "id") {
        f |= name_flags(id, buf);
    }
    if let Some(role) = attr(attrs, "role") {
        f |= match role.trim().to_ascii_lowercase().as_str() {
            "main" | "article" => MAIN,
            "navigation" | "banner" | "contentinfo" | "complementary" | "search" | "menu" | "menubar" | "toolbar" | "dialog"
            | "alertdialog" | "tablist" => NEG,
            _ => 0,
        };
    }
    if let Some(prop) = attr(attrs, "itemprop") {
        for p in prop.split_ascii_whitespace() {
            f |= match p.to_ascii_lowercase().as_str() {
                "articlebody" | "reviewbody" | "text" => MAIN,
                "comment" | "comments" => STRONG | NEG,
                "author" | "datepublished" | "datemodified" | "publisher" | "breadcrumb" => NEG,
                _ => 0,
            };
        }
    }
    if attr(attrs, "hidden").is_some() {
        f |= HIDDEN;
    }
    if let Some(style) = attr(attrs, "style") {
        buf.clear();
        buf.extend(style.chars().filter(|c| !c.is_ascii_whitespace()).map(|c| c.to_ascii_lowercase()));
        if buf.contains("display:none") || buf.contains("visibility:hidden") {
            f |= HIDDEN;
        }
    }
    f
}

/// Short lines that credit a photo or source ("Foto: dpa", "Credit: Reuters", "© AFP",
/// "TebNad/Shutterstock.com", "AFP / MARCO BERTORELLO").
pub(super) fn is_credit_line(line: &str) -> bool {
    if line.chars().count() > 80 {
        return false;
    }
    let l = line.trim_start_matches(|c: char| c == '(' || c.is_whitespace()).to_lowercase();
    if l.starts_with('©') || CREDIT_STARTS.iter().any(|p| l.starts_with(p)) {
        return true;
    }
    // "Name/Agency": a few words around a slash, no sentence, and an image
    // agency named or every word capitalised.
    let words: Vec<&str> = line.split_whitespace().collect();
    let sentence = line.trim_end().ends_with(['.', '!', '?', ':']);
    if !line.contains('/') || sentence || words.len() > 6 || line.len() > 60 || line.contains("://") {
        return false;
    }
    CREDIT_AGENCIES.iter().any(|a| l.contains(a))
        || words
            .iter()
            .all(|w| w.starts_with(|c: char| c.is_uppercase() || c == '/' || c == '('))
}

/// Line starts of credits, lower case.
const CREDIT_STARTS: &[&str] = &[
    "foto:",
    "fotos:",
    "photo:",
    "photos:",
    "bild:",
    "bilder:",
    "bildquelle",
    "titelbild:",
    "beitragsbild",
    "bild anzeigen",
    "credit:",
    "credits:",
    "image:",
    "crédits photos",
    "crédito:",
    "quelle:",
    "quellen:",
    "quellenangaben",
    "source:",
];

/// Photo agencies and stock libraries, lower case.
const CREDIT_AGENCIES: &[&str] = &[
    "shutterstock",
    "getty",
    "istock",
    "unsplash",
    "pixabay",
    "adobe stock",
    "fotolia",
    "imago",
    "picture alliance",
    "picture-alliance",
    "dpa",
    "afp",
    "reuters",
    "wenn.com",
    "keystone",
];

/// Short lines that introduce related links, invite a subscription or
/// describe the post rather than say anything: "Lesen Sie auch", "Mehr zum
/// Thema", "Subscribe to email updates", "This entry was posted in",
/// "Kategorie: News". Matched at the start of lines of at most 120
/// characters, in the languages of the benchmark pages (en, de, fr, es, pl).
pub(super) fn is_aside_line(line: &str) -> bool {
    if line.len() > 160 || line.chars().count() > 120 {
        return false;
    }
    let l = line.trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    ASIDE_STARTS.iter().any(|p| l.starts_with(p))
}

/// Line starts for [`is_aside_line`], lower case.
const ASIDE_STARTS: &[&str] = &[
    // Related content.
    "lesen sie auch",
    "lesen sie mehr",
    "mehr zum thema",
    "mehr themen",
    "mehr kolumnen",
    "weitere artikel",
    "weitere beiträge",
    "weitere themen",
    "weitere aktuelle themen",
    "weitere informationen",
    "weitere infos",
    "weiterführende link",
    "zum weiterlesen",
    "auch interessant",
    "das könnte dich auch",
    "das könnte sie auch",
    "das thema könnte dich",
    "ähnliche beiträge",
    "ähnliche artikel",
    "empfohlene beiträge",
    "verwandte themen",
    "neueste artikel",
    "schon gelesen",
    "vorschau auf den nächsten",
    "relevantes aus dem",
    "related",
    "read more",
    "read also",
    "you may also like",
    "you might also like",
    "more from",
    "most popular",
    "recommended for you",
    "le puede interesar",
    "te puede interesar",
    "artículos relacionados",
    "lire aussi",
    "à lire aussi",
    "czytaj też",
    "czytaj także",
    "polecamy",
    // Subscriptions, newsletters, paywalls, donations.
    "subscribe",
    "sign up for",
    "never miss",
    "receive our",
    "get regular updates",
    "jetzt abonnieren",
    "newsletter abonnieren",
    "unterstütze ",
    "unterstützen sie",
    "jede kleine spende",
    "hazte miembro",
    // What the page says about the post.
    "this entry was posted",
    "this post contains",
    "filed under",
    "posted in",
    "category:",
    "category :",
    "kategorie:",
    "dieser eintrag wurde",
    "der beitrag wurde am",
    "dieser beitrag wurde",
    "erstellt am",
    "aktualisiert am",
    "aktualisiert:",
    "veröffentlicht am",
    "keine kommentare",
    "kommentare schreiben",
    "kommentar schreiben",
    "kommentieren",
    "noch keine bewertungen",
    "über den autor",
    "about the author",
    "seite teilen",
    "artikel teilen",
    "den artikel mit anderen teilen",
    "möchten sie den artikel teilen",
    "war der artikel nützlich",
    "dieser artikel gefällt ihnen",
    "gefällt dir unser",
    "we want to hear what you think",
    "if you enjoyed reading",
    "bloggern gefällt das",
];

/// Whole lines that are interface words, not text (share buttons, ad labels, "read more").
pub(super) fn is_boilerplate_line(line: &str) -> bool {
    if line.len() > 40 {
        return false;
    }
    let l = line.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
    matches!(
        l.as_str(),
        "advertisement"
            | "anzeige"
            | "werbung"
            | "reklama"
            | "publicité"
            | "share"
            | "share this"
            | "share this article"
            | "teilen"
            | "tweet"
            | "print"
            | "drucken"
            | "email"
            | "e-mail"
            | "read more"
            | "weiterlesen"
            | "mehr"
            | "more"
            | "continue reading"
            | "skip to content"
            | "skip to main content"
            | "zum inhalt springen"
            | "back to top"
            | "nach oben"
            | "facebook"
            | "twitter"
            | "whatsapp"
            | "linkedin"
            | "pinterest"
            | "reddit"
            | "loading"
            | "like this"
            | "gefällt mir"
    )
}
