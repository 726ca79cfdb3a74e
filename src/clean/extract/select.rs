//! Pass 2: which blocks are main text.
//!
//! 1. Boilerplate subtrees go (elements flagged by tag or attributes), unless
//!    the flagged element holds most of the page's prose: a wrapper called
//!    `page-with-sidebar` or an ASP.NET page-wide `<form>` is not boilerplate.
//! 2. Containers are scored as readability.js does (Readability.js
//!    `_grabArticle`): each paragraph of ≥ 25 chars scores 1 + commas +
//!    min(chars/100, 3), given in full to its parent, half to its
//!    grandparent and 1/(3·level) further up; a container adds a tag bonus
//!    and ±25 for class hints, and the sum is scaled by (1 − link density).
//!    Declared main content (`<article>`, `<main>`, `itemprop=articleBody`)
//!    gets the class bonus too, as trafilatura looks there first.
//! 3. The best container, moved up while its ancestors score about as well,
//!    plus the siblings readability would append, is the main content;
//!    when it holds too little text, the page's paragraph baseline
//!    (trafilatura's `baseline()` idea) is taken instead, and when it holds
//!    a small share of the baseline's text, the selection widens to an
//!    ancestor's paragraphs.
//! 4. The lead between the headline and the main text is added ([`add_lead`]).

use super::dom::{Block, Page};
use super::patterns::{self, HIDDEN, MAIN, NEG, POS, STRONG, Tag};
use super::{Budget, ExtractParams, Favor};
use crate::clean::Reason;

/// Per-favor thresholds.
struct Knobs {
    /// Lines shorter than `link_line_chars` with a larger share of link text are dropped;
    /// longer lines are prose with links in it. trafilatura's `link_density_test` uses
    /// 0.8 of up to 100 chars (200 when favouring precision).
    max_link_density: f32,
    link_line_chars: u32,
    /// Siblings of the best container are kept from this fraction of its score.
    sibling_ratio: f32,
    /// Drop short photo/source credit lines.
    drop_credits: bool,
    /// Drop short related-links, subscription and post-metadata lines.
    drop_asides: bool,
    /// A container holding less than this share of the page's baseline text
    /// is widened to an ancestor holding [`WIDEN_TO`] of it. On the
    /// trafilatura benchmark (balanced), F1 rises from 0.887 (never) to 0.907
    /// (0.7) and falls from 0.8 on, as precision drops.
    widen_below: f32,
}

fn knobs(f: Favor) -> Knobs {
    match f {
        Favor::Precision => Knobs {
            max_link_density: 0.5,
            link_line_chars: 300,
            sibling_ratio: 0.3,
            drop_credits: true,
            drop_asides: true,
            widen_below: 0.5,
        },
        Favor::Balanced => Knobs {
            max_link_density: 0.8,
            link_line_chars: 200,
            sibling_ratio: 0.2,
            drop_credits: true,
            drop_asides: true,
            widen_below: 0.7,
        },
        Favor::Recall => Knobs {
            max_link_density: 0.9,
            link_line_chars: 100,
            sibling_ratio: 0.1,
            drop_credits: false,
            drop_asides: false,
            widen_below: 0.8,
        },
    }
}

/// Text below this many chars makes the container choice doubtful: compare with the baseline.
const SHORT_TEXT: u32 = 250;
/// How much of the page's baseline text a widened selection reaches for: the
/// main text may be spread over many sibling blocks (recipe steps, one `<div>`
/// per paragraph) or split around an embed, and one container caught a part.
const WIDEN_TO: f32 = 0.7;

/// Paragraph-like blocks that readability scores.
fn scoreable(tag: Tag) -> bool {
    matches!(tag, Tag::P | Tag::Pre | Tag::Quote | Tag::Cell | Tag::DefItem) || tag.is_container()
}

/// Readability's tag bonus for a candidate container.
fn tag_bonus(tag: Tag) -> f32 {
    match tag {
        Tag::Div | Tag::Article | Tag::Main => 5.0,
        Tag::Pre | Tag::Cell | Tag::Quote => 3.0,
        Tag::List | Tag::Li | Tag::DefItem | Tag::Form | Tag::Address => -3.0,
        Tag::H(_) => -5.0,
        _ => 0.0,
    }
}

/// Readability's class weight, plus the declared-main-content bonus.
fn class_weight(flags: u16) -> f32 {
    let mut w = 0.0;
    if flags & POS != 0 {
        w += 25.0;
    }
    if flags & NEG != 0 {
        w -= 25.0;
    }
    if flags & MAIN != 0 {
        w += 25.0;
    }
    w
}

/// Indices of the blocks that make up the main text, in document order.
pub(super) fn select(page: &Page, p: &ExtractParams, budget: &mut Budget) -> Result<Vec<u32>, Reason> {
    let k = knobs(p.favor);
    let els = &page.els;
    let n = els.len();
    let parent = |i: usize| els[i].parent as usize;

    // Subtree sizes (rows are in pre-order: subtree of i = i..i+size[i]) and the
    // "prose" (paragraph-like, not link-heavy, ≥ 25 chars) each subtree holds.
    let mut size = vec![1u32; n];
    let mut prose = vec![0u32; n];
    for b in &page.blocks {
        if b.chars >= 25 && b.link_chars * 2 < b.chars {
            prose[b.el as usize] += b.chars;
        }
    }
    for i in (1..n).rev() {
        budget.tick()?;
        size[parent(i)] += size[i];
        prose[parent(i)] += prose[i];
    }
    let total = prose[0].max(1) as f32;

    // 1. Boilerplate removal, top down.
    let mut removed = vec![false; n];
    for i in 1..n {
        budget.tick()?;
        let f = els[i].flags;
        let share = prose[i] as f32 / total;
        let of_parent = prose[i] as f32 / prose[parent(i)].max(1) as f32;
        let flagged = f & (NEG | STRONG | HIDDEN) != 0 && !matches!(els[i].tag, Tag::Html | Tag::Body);
        // A flagged element holding (nearly) all of its parent's prose is a wrapper
        // (`elementor-widget-wrap`, `page has-sidebar`), not the boilerplate itself.
        let protected = (f & MAIN != 0 && f & STRONG == 0)
            || (f & POS != 0 && share >= 0.25)
            || (f & STRONG == 0 && (share >= 0.5 || of_parent >= 0.8))
            || share >= 0.7;
        removed[i] = removed[parent(i)] || (flagged && !protected);
    }

    // Text and link text per subtree, over the blocks that survived.
    let mut chars = vec![0u32; n];
    let mut links = vec![0u32; n];
    for b in &page.blocks {
        if !removed[b.el as usize] {
            chars[b.el as usize] += b.chars;
            links[b.el as usize] += b.link_chars;
        }
    }
    for i in (1..n).rev() {
        chars[parent(i)] += chars[i];
        links[parent(i)] += links[i];
    }
    let density = |i: usize| if chars[i] == 0 { 0.0 } else { links[i] as f32 / chars[i] as f32 };

    // 2. Readability scores.
    let mut score = vec![0f32; n];
    let mut scored = vec![false; n];
    for b in &page.blocks {
        budget.tick()?;
        let el = b.el as usize;
        let tag = els[el].tag;
        if removed[el] || b.chars < 25 || !scoreable(tag) {
            continue;
        }
        let s = 1.0 + b.commas as f32 + (b.chars / 100).min(3) as f32;
        // Text directly in a div is a paragraph of its own, scored to the div.
        let mut node = if tag.is_container() { el } else { parent(el) };
        for level in 0..5 {
            if node == 0 {
                break;
            }
            let divider = match level {
                0 => 1.0,
                1 => 2.0,
                l => l as f32 * 3.0,
            };
            score[node] += s / divider;
            scored[node] = true;
            node = parent(node);
        }
    }
    let mut best: Option<(usize, f32)> = None;
    for i in 1..n {
        if scored[i] && !removed[i] {
            score[i] = (score[i] + tag_bonus(els[i].tag) + class_weight(els[i].flags)) * (1.0 - density(i));
            if best.is_none_or(|(_, s)| score[i] > s) {
                best = Some((i, score[i]));
            }
        }
    }

    let mut chosen = Vec::new();
    let mut top = 0;
    if let Some((best, best_score)) = best {
        top = climb(page, &score, &scored, best, best_score);
        chosen = siblings(page, &size, &score, &scored, &chars, &links, top, k.sibling_ratio);
    }
    // Whether each block survives removal and the line filters, decided once:
    // every selection below reads it.
    let ok: Vec<bool> = page.blocks.iter().map(|b| !removed[b.el as usize] && passes(page, b, &k)).collect();
    let mut kept = keep_blocks(page, &ok, &chosen, &size, false);
    let kept_chars: u32 = kept.iter().map(|&b| page.blocks[b as usize].chars).sum();
    let base_chars = baseline_chars(page, &ok);
    if kept_chars < SHORT_TEXT && base_chars[0] > kept_chars {
        kept = keep_blocks(page, &ok, &[0], &size, true);
    } else if (kept_chars as f32) < k.widen_below * base_chars[0] as f32 {
        // The nearest ancestor of the container holding WIDEN_TO of the page's baseline text.
        let mut a = top;
        while a != 0 && (base_chars[a] as f32) < WIDEN_TO * base_chars[0] as f32 {
            a = page.els[a].parent as usize;
        }
        kept = keep_blocks(page, &ok, &[a], &size, true);
    }
    add_lead(page, &ok, &mut kept);
    Ok(kept)
}

/// Lines shorter than this are not taken as a lead.
const LEAD_CHARS: u32 = 80;

/// Adds the lead (standfirst): prose lines between the headline (the first
/// `<h1>`, else the first `<h2>`) and the first kept line. News pages set it
/// apart from the body, in a teaser `<p>`, a `<div>` or an `<h2>`, so the
/// container misses it. A line qualifies with [`LEAD_CHARS`] or more, few
/// links, and either a paragraph-like element or a sentence's last
/// character; the headline itself is the `title` column, not text.
fn add_lead(page: &Page, ok: &[bool], kept: &mut Vec<u32>) {
    let Some(&first) = kept.first() else { return };
    let before = &page.blocks[..first as usize];
    let heading = |level| before.iter().position(|b| page.els[b.el as usize].tag == Tag::H(level));
    let Some(headline) = heading(1).or_else(|| heading(2)) else {
        return;
    };
    let mut lead: Vec<u32> = (headline + 1..first as usize)
        .filter(|&i| {
            let b = &page.blocks[i];
            let el = b.el as usize;
            let paragraph = matches!(page.els[el].tag, Tag::P | Tag::Div | Tag::Article | Tag::Main | Tag::Section);
            let sentence = page.block_text(b).trim_end().ends_with(['.', '!', '?', '…', '"', '“', '»']);
            ok[i] && b.chars >= LEAD_CHARS && b.link_chars * 5 < b.chars && (paragraph || sentence)
        })
        .map(|i| i as u32)
        .collect();
    if !lead.is_empty() {
        lead.extend_from_slice(kept);
        *kept = lead;
    }
}

/// Characters of the baseline's lines (see [`keep_blocks`]) in each element's subtree.
fn baseline_chars(page: &Page, ok: &[bool]) -> Vec<u32> {
    let mut sum = vec![0u32; page.els.len()];
    for (i, b) in page.blocks.iter().enumerate() {
        if ok[i] && in_baseline(page, b) {
            sum[b.el as usize] += b.chars;
        }
    }
    for i in (1..sum.len()).rev() {
        sum[page.els[i].parent as usize] += sum[i];
    }
    sum
}

/// Readability's step up from the best container: to an ancestor that scores higher,
/// while ancestors keep at least a third of its score; then out of only-child wrappers.
fn climb(page: &Page, score: &[f32], scored: &[bool], top: usize, top_score: f32) -> usize {
    let els = &page.els;
    let mut top = top;
    let mut last = top_score;
    let threshold = top_score / 3.0;
    let mut node = els[top].parent as usize;
    while node != 0 && !matches!(els[node].tag, Tag::Body | Tag::Html) {
        if scored[node] {
            if score[node] < threshold {
                break;
            }
            if score[node] > last {
                top = node;
                break;
            }
            last = score[node];
        }
        node = els[node].parent as usize;
    }
    top
}

/// The best container and the siblings readability appends to it: those scoring at
/// least `ratio` of it (and 10), and paragraphs that read like prose.
#[allow(clippy::too_many_arguments)]
fn siblings(page: &Page, size: &[u32], score: &[f32], scored: &[bool], chars: &[u32], links: &[u32], top: usize, ratio: f32) -> Vec<usize> {
    let els = &page.els;
    let par = els[top].parent as usize;
    if par == 0 || matches!(els[par].tag, Tag::Html | Tag::Root) {
        return vec![top];
    }
    let threshold = (score[top] * ratio).max(10.0);
    let mut out = Vec::new();
    let end = par + size[par] as usize;
    let mut c = par + 1;
    while c < end {
        let keep = c == top
            || (scored[c] && score[c] >= threshold)
            || (els[c].tag == Tag::P && chars[c] > 0 && {
                let ld = links[c] as f32 / chars[c] as f32;
                (chars[c] >= 80 && ld < 0.25) || (ld == 0.0 && ends_sentence(page, c))
            });
        if keep {
            out.push(c);
        }
        c += size[c] as usize;
    }
    out
}

/// Whether the last block of element `el` ends like a sentence.
fn ends_sentence(page: &Page, el: usize) -> bool {
    page.blocks
        .iter()
        .rev()
        .find(|b| b.el as usize == el)
        .is_some_and(|b| page.block_text(b).trim_end().ends_with(['.', '!', '?', '。', '…']))
}

/// The blocks marked `ok` (not removed, past the line filters) inside the
/// `roots` subtrees; `baseline` keeps only paragraph, heading and list lines (the fallback when no
/// container fits, after trafilatura's `baseline()`).
fn keep_blocks(page: &Page, ok: &[bool], roots: &[usize], size: &[u32], baseline: bool) -> Vec<u32> {
    let mut out = Vec::new();
    let mut r = 0;
    for (i, b) in page.blocks.iter().enumerate() {
        let el = b.el as usize;
        // Roots are disjoint and in document order, as are the blocks.
        while r < roots.len() && el >= roots[r] + size[roots[r]] as usize {
            r += 1;
        }
        if r == roots.len() {
            break;
        }
        if el >= roots[r] && ok[i] && (!baseline || in_baseline(page, b)) {
            out.push(i as u32);
        }
    }
    drop_orphan_headings(page, &mut out);
    out
}

/// Whether a block is a line of the main text by the line filters: link
/// density, boilerplate phrases, credits and asides.
fn passes(page: &Page, b: &Block, k: &Knobs) -> bool {
    let ld = b.link_chars as f32 / b.chars.max(1) as f32;
    if ld > k.max_link_density && b.chars < k.link_line_chars {
        return false;
    }
    let text = page.block_text(b);
    !(patterns::is_boilerplate_line(text)
        || (k.drop_credits && patterns::is_credit_line(text))
        || (k.drop_asides && patterns::is_aside_line(text)))
}

/// Whether a block may be in the baseline: paragraph, heading and list lines.
fn in_baseline(page: &Page, b: &Block) -> bool {
    let tag = page.els[b.el as usize].tag;
    scoreable(tag) || matches!(tag, Tag::Li | Tag::H(_))
}

/// Drops headings whose section lost all its lines ("Related posts" over a dropped
/// link list, "Comments" over a removed thread): a kept heading directly followed by a
/// dropped block, with no kept line before the next heading or the end.
fn drop_orphan_headings(page: &Page, kept: &mut Vec<u32>) {
    let is_heading = |i: u32| matches!(page.els[page.blocks[i as usize].el as usize].tag, Tag::H(_));
    let mut keep = vec![true; kept.len()];
    for j in 0..kept.len() {
        let i = kept[j];
        let next_kept = kept.get(j + 1).copied();
        let next_dropped = (i as usize + 1) < page.blocks.len() && next_kept != Some(i + 1);
        if is_heading(i) && next_dropped && next_kept.is_none_or(is_heading) {
            keep[j] = false;
        }
    }
    let mut it = keep.iter();
    kept.retain(|_| it.next().copied().unwrap_or(true));
}

/// Joins the kept blocks into lines; cells of one table row share a line, joined by " | ".
pub(super) fn assemble(page: &Page, kept: &[u32], _p: &ExtractParams) -> String {
    let mut out = String::new();
    let mut last_row = None;
    for &i in kept {
        let b = &page.blocks[i as usize];
        let el = &page.els[b.el as usize];
        let row = (el.tag == Tag::Cell).then_some(el.parent);
        if !out.is_empty() {
            out.push_str(if row.is_some() && row == last_row { " | " } else { "\n" });
        }
        out.push_str(page.block_text(b));
        last_row = row;
    }
    out
}
