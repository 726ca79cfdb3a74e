//! The crawl: every page of every site, plus what a real crawl also holds —
//! exact duplicates under other URLs, near duplicates (a changed date,
//! sentence or sidebar), keyword-stuffed spam, pages with no content, and
//! pages in other languages — in a shuffled order.

use super::foreign::{Lang, guide_page};
use super::html::{Article, Block, SITES, Site, render, slug};
use super::pages::{country_entry, news_story, person_entry, town_entry, travel_post, worksheet};
use super::world::{World, below, pick, shuffle};
use crate::model::rng::Rng;
use std::collections::BTreeSet;

/// What a page is, for the cleaning funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageKind {
    /// An English page about the world (encyclopedia, travel, news).
    Article,
    /// An English arithmetic worksheet.
    Worksheet,
    /// A page in German, French or Spanish.
    Foreign,
    /// Byte-identical copy of another page under another URL.
    ExactDup,
    /// Another page with a changed date, sentence or sidebar.
    NearDup,
    /// Keyword-stuffed or repetitive spam.
    Spam,
    /// No real content: soft 404, sign-in wall, tag index.
    Short,
}

impl PageKind {
    /// Lowercase name, as in the README's table.
    pub fn name(self) -> &'static str {
        match self {
            PageKind::Article => "article",
            PageKind::Worksheet => "worksheet",
            PageKind::Foreign => "foreign",
            PageKind::ExactDup => "exact_dup",
            PageKind::NearDup => "near_dup",
            PageKind::Spam => "spam",
            PageKind::Short => "short",
        }
    }
}

/// One page of the crawl.
#[derive(Debug, Clone)]
pub struct Page {
    /// `WARC-Target-URI`.
    pub url: String,
    /// `WARC-Date` (`2025-01-07T10:22:31Z`).
    pub fetched: String,
    /// What it is.
    pub kind: PageKind,
    /// Language of its main content (`en`, `de`, `fr`, `es`).
    pub lang: &'static str,
    /// The rendered HTML.
    pub html: String,
    /// The article it was rendered from (its main content is `article.blocks`).
    pub article: Article,
    /// For duplicates: the index of the page copied.
    pub copy_of: Option<usize>,
}

/// Counts of the generated extras at scale 1.
const EXACT_DUPS: f64 = 60.0;
const NEAR_DUPS: f64 = 60.0;
const SPAM: f64 = 45.0;
const SHORT: f64 = 30.0;

/// Spam vocabulary (keyword stuffing as seen in the wild).
const SPAM_WORDS: [&str; 20] = [
    "cheap", "buy", "now", "best", "casino", "bonus", "free", "win", "winner", "discount", "deal", "offer", "price", "pills", "loans",
    "crypto", "jackpot", "click", "online", "sale",
];

struct Builder<'a> {
    rng: &'a mut Rng,
    w: &'a World,
    pages: Vec<Page>,
    urls: BTreeSet<String>,
}

impl Builder<'_> {
    fn date(&mut self) -> String {
        format!(
            "{}-{:02}-{:02}",
            2023 + below(self.rng, 2),
            1 + below(self.rng, 12),
            1 + below(self.rng, 28)
        )
    }

    fn fetched(&mut self) -> String {
        let (d, h, m, s) = (
            1 + below(self.rng, 28),
            below(self.rng, 24),
            below(self.rng, 60),
            below(self.rng, 60),
        );
        format!("2025-02-{d:02}T{h:02}:{m:02}:{s:02}Z")
    }

    /// A URL not used yet: `base`, else `base-2`, `base-3`, ...
    fn unique(&mut self, base: String, ext: &str) -> String {
        let mut url = format!("{base}{ext}");
        let mut k = 2;
        while !self.urls.insert(url.clone()) {
            url = format!("{base}-{k}{ext}");
            k += 1;
        }
        url
    }

    /// Five sidebar links to other entries of the world.
    fn links(&mut self, prefix: &str) -> Vec<(String, String)> {
        (0..5)
            .map(|_| {
                let t = &pick(self.rng, &self.w.towns).name;
                (t.clone(), format!("{prefix}{}", slug(t)))
            })
            .collect()
    }

    fn push(&mut self, site: &Site, url: String, kind: PageKind, title: String, blocks: Vec<Block>, author: Option<String>) {
        let prefix = if site.domain.starts_with("wiki.") { "/wiki/" } else { "/" };
        let article = Article {
            title,
            author,
            date: self.date(),
            blocks,
            links: self.links(prefix),
        };
        let html = render(site, &article);
        let fetched = self.fetched();
        self.pages.push(Page {
            url,
            fetched,
            kind,
            lang: site.lang,
            html,
            article,
            copy_of: None,
        });
    }

    fn author(&mut self) -> Option<String> {
        let p = &pick(self.rng, &self.w.people).name;
        Some(format!("By {p}"))
    }
}

/// Generates the whole crawl, shuffled.
pub fn generate(rng: &mut Rng, w: &World, scale: f64) -> Vec<Page> {
    let mut b = Builder {
        rng,
        w,
        pages: Vec::new(),
        urls: BTreeSet::new(),
    };
    let s = &SITES;
    // Two encyclopedias, each with every entity.
    for (site, base) in [
        (&s.atlas, "https://www.atlasofthenorth.org/entry/"),
        (&s.wiki, "https://wiki.lakelands-atlas.net/wiki/"),
    ] {
        for c in 0..w.countries.len() {
            let (title, blocks) = country_entry(b.rng, w, c);
            let url = b.unique(format!("{base}{}", slug(&title)), "");
            b.push(site, url, PageKind::Article, title, blocks, None);
        }
        for t in 0..w.towns.len() {
            let (title, blocks) = town_entry(b.rng, w, t);
            let url = b.unique(format!("{base}{}", slug(&title)), "");
            b.push(site, url, PageKind::Article, title, blocks, None);
        }
        for p in 0..w.people.len() {
            let (title, blocks) = person_entry(b.rng, w, p);
            let url = b.unique(format!("{base}{}", slug(&title)), "");
            b.push(site, url, PageKind::Article, title, blocks, None);
        }
    }
    for t in 0..w.towns.len() {
        for _ in 0..6 {
            let (title, blocks) = travel_post(b.rng, w, t);
            let (y, m) = (2023 + below(b.rng, 2), 1 + below(b.rng, 12));
            let url = b.unique(format!("https://www.wanderlog-journal.com/{y}/{m:02}/{}", slug(&title)), "/");
            let author = b.author();
            b.push(&s.blog, url, PageKind::Article, title, blocks, author);
        }
        for _ in 0..5 {
            let (title, blocks) = news_story(b.rng, w, t);
            let url = b.unique(format!("https://news.dailylantern.net/towns/{}", slug(&title)), ".html");
            let author = b.author();
            b.push(&s.news, url, PageKind::Article, title, blocks, author);
        }
    }
    // Every sum and difference the questions ask about, twice over, eight to a
    // sheet, in two shuffled passes (so no two sheets are alike).
    let sums: Vec<(i64, i64)> = (1..20).flat_map(|a| (1..20 - a).map(move |b| (a, b))).collect();
    let differences: Vec<(i64, i64)> = (1..20).flat_map(|a| (1..=a).map(move |b| (a, b))).collect();
    let mut sheets = Vec::new();
    for (facts, plus) in [(&sums, true), (&differences, false)] {
        for _ in 0..2 {
            let mut facts = facts.clone();
            shuffle(b.rng, &mut facts);
            // Seven or eight a sheet: even slices, so no sheet is left too short to pass as prose.
            let k = facts.len().div_ceil(8);
            sheets.extend((0..k).map(|i| (facts[i * facts.len() / k..(i + 1) * facts.len() / k].to_vec(), plus)));
        }
    }
    for (i, (facts, plus)) in sheets.iter().enumerate() {
        let (title, blocks) = worksheet(b.rng, w, facts, *plus, i + 1);
        let url = b.unique(format!("https://www.numberhouse-kids.org/worksheets/{}", slug(&title)), ".html");
        b.push(&s.numbers, url, PageKind::Worksheet, title, blocks, None);
    }
    for (lang, site, base) in [
        (Lang::De, &s.de, "https://www.reisefuehrer-nordland.de/staedte/"),
        (Lang::Fr, &s.fr, "https://www.guide-des-terres.fr/villes/"),
        (Lang::Es, &s.es, "https://www.guia-del-norte.es/ciudades/"),
    ] {
        for t in 0..w.towns.len() {
            let (title, blocks) = guide_page(b.rng, w, lang, t);
            let url = b.unique(format!("{base}{}", slug(&w.towns[t].name)), "");
            b.push(site, url, PageKind::Foreign, title, blocks, None);
        }
    }
    for i in 0..(SPAM * scale).round().max(3.0) as usize {
        let (title, blocks) = spam(b.rng, i);
        let url = b.unique(format!("https://best-cheap-deals-online.biz/{}", slug(&title)), ".html");
        b.push(&s.spam, url, PageKind::Spam, title, blocks, None);
    }
    for i in 0..(SHORT * scale).round().max(3.0) as usize {
        let (site, title, blocks) = short(b.rng, i);
        let url = b.unique(format!("https://{}/{}", site.domain, slug(&title)), "/");
        b.push(site, url, PageKind::Short, title, blocks, None);
    }
    let originals = b.pages.iter().filter(|p| p.kind == PageKind::Article).count();
    for i in 0..(EXACT_DUPS * scale).round() as usize {
        let src = below(b.rng, originals);
        let mut copy = b.pages[src].clone();
        copy.url = match i % 3 {
            0 => b.unique(format!("{}?utm_source=newsletter&utm_medium=email", copy.url), ""),
            1 => b.unique(format!("{}?ref=share", copy.url), ""),
            _ => b.unique(format!("{}/amp", copy.url.trim_end_matches('/')), ""),
        };
        copy.fetched = b.fetched();
        copy.kind = PageKind::ExactDup;
        copy.copy_of = Some(src);
        b.pages.push(copy);
    }
    for i in 0..(NEAR_DUPS * scale).round() as usize {
        let src = below(b.rng, originals);
        let mut a = b.pages[src].article.clone();
        a.date = b.date();
        let note = format!("This article was updated on {}.", a.date);
        if let Some(Block::Para(p)) = a.blocks.iter_mut().rev().find(|b| matches!(b, Block::Para(_))) {
            p.push(' ');
            p.push_str(&note);
        }
        a.links = b.links("/");
        let site = site_of(&b.pages[src].url);
        let url = b.unique(
            format!("{}-{}", b.pages[src].url.trim_end_matches('/'), ["updated", "print", "v2"][i % 3]),
            "",
        );
        let fetched = b.fetched();
        b.pages.push(Page {
            url,
            fetched,
            kind: PageKind::NearDup,
            lang: "en",
            html: render(site, &a),
            article: a,
            copy_of: Some(src),
        });
    }
    let mut pages = b.pages;
    // Shuffle so that copies are far from their originals, as in a real crawl.
    let mut order: Vec<usize> = (0..pages.len()).collect();
    shuffle(rng, &mut order);
    let mut new_index = vec![0; pages.len()];
    for (to, &from) in order.iter().enumerate() {
        new_index[from] = to;
    }
    let mut slots: Vec<Option<Page>> = pages.drain(..).map(Some).collect();
    let mut out: Vec<Page> = order.iter().filter_map(|&i| slots[i].take()).collect();
    for p in &mut out {
        p.copy_of = p.copy_of.map(|i| new_index[i]);
    }
    out
}

/// The site a URL of an English article belongs to.
fn site_of(url: &str) -> &'static Site {
    let s = &SITES;
    [&s.atlas, &s.wiki, &s.blog, &s.news]
        .into_iter()
        .find(|site| url.contains(site.domain))
        .unwrap_or(&s.atlas)
}

/// A spam page of one of three kinds: keyword salad, one line repeated,
/// or a sentence drowned in keywords.
fn spam(rng: &mut Rng, i: usize) -> (String, Vec<Block>) {
    let mut words = |n: usize| (0..n).map(|_| *pick(rng, &SPAM_WORDS)).collect::<Vec<_>>().join(" ");
    let title = format!("{} {} {} {}", words(1), words(1), words(1), i);
    let blocks = match i % 3 {
        0 => (0..4).map(|_| Block::Para(words(45))).collect(),
        1 => (0..24)
            .map(|_| Block::Para("Best casino bonus online, click here and win big today!".into()))
            .collect(),
        _ => {
            let mut v = vec![Block::Para("Looking for the best deal? You found it.".into())];
            v.extend((0..5).map(|_| Block::Para(format!("cheap cheap cheap {} buy now buy now best price {}", words(12), words(12)))));
            v
        }
    };
    (title.to_uppercase(), blocks)
}

/// A page with no real content.
fn short(rng: &mut Rng, i: usize) -> (&'static Site, String, Vec<Block>) {
    let s = &SITES;
    let site = *pick(rng, &[&s.atlas, &s.blog, &s.news, &s.numbers]);
    let (title, blocks) = match i % 3 {
        0 => (
            format!("Page not found {i}"),
            vec![Block::Para("Sorry, the page you are looking for could not be found.".into())],
        ),
        1 => (
            format!("Sign in {i}"),
            vec![Block::Para("Please sign in to read this page.".into())],
        ),
        _ => (format!("Tag archive {i}"), vec![Block::Heading("Posts tagged travel".into())]),
    };
    (site, title, blocks)
}
