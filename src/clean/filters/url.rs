//! URL blocklists, as datatrove 0.10 `URLFilter`
//! (`src/datatrove/pipeline/filters/url_filter.py`) applies them, minus its
//! bundled lists (the UT1 "adult" domain/URL lists and its banned-word
//! files): give list files or inline lists instead.
//!
//! Rules, in datatrove's order:
//! 1. the host or any parent domain is in the domain blocklist
//!    (`example.com` blocks `a.example.com`; datatrove checks the
//!    registered domain and the full host, which this covers without a
//!    public-suffix list);
//! 2. the URL is in the URL blocklist (compared without scheme and `www.`,
//!    lowercase host; an entry also blocks the paths below it, the
//!    squidGuard convention the UT1 lists are written for);
//! 3. a banned word is one of the URL's words (`[^a-z0-9]+`-split,
//!    lowercased);
//! 4. at least `soft_word_threshold` distinct soft-banned words are URL words;
//! 5. a banned subword occurs anywhere in the URL with non-alphanumerics
//!    removed.

use super::{Problem, Reason, read_list, reason};
use ahash::AHashSet;
use aho_corasick::AhoCorasick;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Parameters of `url_filter`: list files and inline lists, merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UrlFilterParams {
    /// Files of blocked domains, one per line (`#` comments allowed).
    pub domain_blocklist: Vec<String>,
    /// Files of blocked URLs, one per line.
    pub url_blocklist: Vec<String>,
    /// Files of banned words: a URL containing one as a word is dropped.
    pub banned_words: Vec<String>,
    /// Files of soft-banned words: dropped when `soft_word_threshold` occur.
    pub soft_banned_words: Vec<String>,
    /// Files of banned subwords: dropped when one occurs anywhere in the
    /// URL's letters and digits.
    pub banned_subwords: Vec<String>,
    /// Inline blocked domains.
    pub domains: Vec<String>,
    /// Inline blocked URLs.
    pub urls: Vec<String>,
    /// Inline banned words.
    pub words: Vec<String>,
    /// Inline soft-banned words.
    pub soft_words: Vec<String>,
    /// Inline banned subwords.
    pub subwords: Vec<String>,
    /// Distinct soft-banned words that drop a URL (default 2, datatrove's).
    pub soft_word_threshold: u64,
    /// Drop documents without a URL (default false: keep them).
    pub require_url: bool,
}

impl Default for UrlFilterParams {
    fn default() -> Self {
        UrlFilterParams {
            domain_blocklist: vec![],
            url_blocklist: vec![],
            banned_words: vec![],
            soft_banned_words: vec![],
            banned_subwords: vec![],
            domains: vec![],
            urls: vec![],
            words: vec![],
            soft_words: vec![],
            subwords: vec![],
            soft_word_threshold: 2,
            require_url: false,
        }
    }
}

impl UrlFilterParams {
    /// `(field, message)` for each value out of range.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.soft_word_threshold == 0 {
            p.push(("soft_word_threshold".into(), "0 would drop every URL; must be at least 1".into()));
        }
        p
    }
}

/// The `url_filter` step.
#[derive(Debug, Clone)]
pub struct UrlFilter {
    domains: AHashSet<String>,
    urls: AHashSet<String>,
    words: AHashSet<String>,
    soft_words: AHashSet<String>,
    subwords: Option<AhoCorasick>,
    soft_threshold: u64,
    require_url: bool,
}

/// Lowercase letters and digits only (datatrove's `normalize`).
fn alnum_lower(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `(host, rest)` of a URL: scheme, user info, port and a leading `www.`
/// removed, host lowercased without a trailing dot; `rest` starts at the
/// path (may be empty).
fn split_url(url: &str) -> (String, &str) {
    let u = url.trim();
    let after_scheme = match u.find("://") {
        Some(i) if u[..i].chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) => &u[i + 3..],
        _ => u,
    };
    let host_end = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(host_end);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or("").to_string()
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let host = host.strip_prefix("www.").map(str::to_string).unwrap_or(host);
    (host, rest)
}

/// A URL-list entry or a URL in the form they are compared: `host/path`
/// without a trailing `/`.
fn url_key(url: &str) -> String {
    let (host, rest) = split_url(url);
    let path = rest.split('#').next().unwrap_or("");
    format!("{host}{path}").trim_end_matches('/').to_string()
}

impl UrlFilter {
    /// Loads every list file (the error names the one that cannot be read)
    /// and merges the inline lists.
    pub fn new(p: &UrlFilterParams) -> Result<Self, String> {
        let load = |files: &[String], inline: &[String], what: &str| -> Result<Vec<String>, String> {
            let mut all = inline.to_vec();
            for f in files {
                all.extend(read_list(f, what)?);
            }
            Ok(all)
        };
        let domains = load(&p.domain_blocklist, &p.domains, "domain blocklist")?
            .into_iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .map(|d| d.strip_prefix("www.").map(str::to_string).unwrap_or(d))
            .filter(|d| !d.is_empty())
            .collect();
        let urls = load(&p.url_blocklist, &p.urls, "URL blocklist")?
            .iter()
            .map(|u| url_key(u))
            .filter(|u| !u.is_empty())
            .collect();
        let norm = |v: Vec<String>| {
            v.iter()
                .map(|w| alnum_lower(w))
                .filter(|w| !w.is_empty())
                .collect::<AHashSet<String>>()
        };
        let words = norm(load(&p.banned_words, &p.words, "banned words")?);
        let soft_words = norm(load(&p.soft_banned_words, &p.soft_words, "soft-banned words")?);
        let subwords: Vec<String> = norm(load(&p.banned_subwords, &p.subwords, "banned subwords")?)
            .into_iter()
            .collect();
        let subwords = if subwords.is_empty() {
            None
        } else {
            Some(AhoCorasick::new(&subwords).map_err(|e| format!("banned subwords: {e}"))?)
        };
        Ok(UrlFilter {
            domains,
            urls,
            words,
            soft_words,
            subwords,
            soft_threshold: p.soft_word_threshold,
            require_url: p.require_url,
        })
    }

    /// Keeps the document with this URL, or names the rule that blocks it.
    pub fn apply(&self, url: Option<&str>) -> Result<(), Reason> {
        let url = match url.map(str::trim) {
            Some(u) if !u.is_empty() => u,
            _ if self.require_url => return Err(reason("url_missing", "the document has no url")),
            _ => return Ok(()),
        };
        if !self.domains.is_empty() {
            let (host, _) = split_url(url);
            let mut d = host.as_str();
            loop {
                if self.domains.contains(d) {
                    return Err(reason("url_domain_blocklist", format!("{host} is under blocked domain {d}")));
                }
                match d.find('.') {
                    // Stop before a bare TLD: "com" in a list must not block all of .com.
                    Some(i) if d[i + 1..].contains('.') => d = &d[i + 1..],
                    _ => break,
                }
            }
        }
        if !self.urls.is_empty() {
            let key = url_key(url);
            let blocked = key
                .match_indices('/')
                .map(|(i, _)| &key[..i])
                .chain(std::iter::once(key.as_str()))
                .find(|k| self.urls.contains(*k));
            if let Some(k) = blocked {
                return Err(reason("url_blocklist", format!("{url} is under blocked URL {k}")));
            }
        }
        if !self.words.is_empty() || !self.soft_words.is_empty() {
            let lower = url.to_ascii_lowercase();
            let url_words: AHashSet<&str> = lower
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| !w.is_empty())
                .collect();
            if let Some(w) = url_words.iter().find(|w| self.words.contains(**w)) {
                return Err(reason("url_banned_word", format!("url word {w:?} is banned")));
            }
            let soft = url_words.iter().filter(|w| self.soft_words.contains(**w)).count() as u64;
            if !self.soft_words.is_empty() && soft >= self.soft_threshold {
                return Err(reason(
                    "url_soft_banned_words",
                    format!("{soft} soft-banned words >= {}", self.soft_threshold),
                ));
            }
        }
        if let Some(ac) = &self.subwords {
            let norm = alnum_lower(url);
            if let Some(m) = ac.find(&norm) {
                return Err(reason("url_banned_subword", format!("contains {:?}", &norm[m.start()..m.end()])));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clean::filters::test_class as class;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn domains_block_subdomains_only() {
        let f = UrlFilter::new(&UrlFilterParams {
            domains: v(&["Example.com", "com"]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(class(f.apply(Some("https://example.com/a"))), "url_domain_blocklist");
        assert_eq!(class(f.apply(Some("http://user@a.b.EXAMPLE.com:8080/x"))), "url_domain_blocklist");
        assert_eq!(class(f.apply(Some("https://www.example.com."))), "url_domain_blocklist");
        assert_eq!(class(f.apply(Some("https://notexample.com/"))), "keep");
        assert_eq!(class(f.apply(Some("https://example.com.evil.org/"))), "keep");
        assert_eq!(class(f.apply(None)), "keep");
        let strict = UrlFilter::new(&UrlFilterParams {
            require_url: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(class(strict.apply(None)), "url_missing");
    }

    #[test]
    fn urls_block_their_subpaths() {
        let f = UrlFilter::new(&UrlFilterParams {
            urls: v(&["site.org/bad"]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(class(f.apply(Some("https://www.site.org/bad"))), "url_blocklist");
        assert_eq!(class(f.apply(Some("http://site.org/bad/page.html"))), "url_blocklist");
        assert_eq!(class(f.apply(Some("http://site.org/badge"))), "keep");
        assert_eq!(class(f.apply(Some("http://site.org/"))), "keep");
    }

    #[test]
    fn banned_and_soft_words() {
        let p = UrlFilterParams {
            words: v(&["casino"]),
            soft_words: v(&["hot", "free"]),
            subwords: v(&["xxx"]),
            ..Default::default()
        };
        let f = UrlFilter::new(&p).unwrap();
        assert_eq!(class(f.apply(Some("https://a.com/Casino-games"))), "url_banned_word");
        assert_eq!(class(f.apply(Some("https://a.com/casinos"))), "keep");
        // One soft word keeps, two drop (threshold 2).
        assert_eq!(class(f.apply(Some("https://a.com/hot-news"))), "keep");
        assert_eq!(class(f.apply(Some("https://a.com/hot-free-news"))), "url_soft_banned_words");
        assert_eq!(class(f.apply(Some("https://x-x-x.com/"))), "url_banned_subword");
    }

    #[test]
    fn list_files_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("domains");
        std::fs::write(&path, "# comment\n\nblocked.net\n").unwrap();
        let p = UrlFilterParams {
            domain_blocklist: vec![path.display().to_string()],
            ..Default::default()
        };
        let f = UrlFilter::new(&p).unwrap();
        assert_eq!(class(f.apply(Some("http://cdn.blocked.net/x"))), "url_domain_blocklist");
        let missing = dir.path().join("nope").display().to_string();
        let e = UrlFilter::new(&UrlFilterParams {
            banned_words: vec![missing.clone()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains(&missing), "{e}");
        assert_eq!(
            UrlFilterParams {
                soft_word_threshold: 0,
                ..Default::default()
            }
            .check()
            .len(),
            1
        );
    }
}
