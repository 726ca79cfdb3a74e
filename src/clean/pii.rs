//! PII redaction, after datatrove 0.10 `PIIFormatter`
//! (`src/datatrove/pipeline/formatters/pii.py`), the last step of FineWeb:
//! e-mail addresses and public IP addresses are replaced by placeholders
//! that cycle through a fixed list; phone numbers optionally.
//!
//! Differences from datatrove, each deliberate:
//! * e-mails match case-insensitively (datatrove's pattern is lowercase-only,
//!   so `John.Doe@Example.com` slipped through);
//! * an IPv4 candidate must not be part of a longer dotted number
//!   (`1.2.3.4.5`), and IPv6 addresses are redacted too;
//! * the placeholder cycle restarts for each document, so the output does
//!   not depend on how documents are spread over threads.
//!
//! "Public" follows Python's `ipaddress.is_global`: private, loopback,
//! link-local, shared (100.64/10), documentation, benchmarking, multicast
//! and reserved IPv4 ranges are kept; for IPv6 only global unicast
//! (2000::/3, minus documentation 2001:db8::/32 and the IETF block
//! 2001::/23) is redacted.

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Parameters of `pii`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PiiParams {
    /// Replace e-mail addresses (default true).
    pub emails: bool,
    /// Replace IPv4 and IPv6 addresses (default true).
    pub ips: bool,
    /// Only public addresses (default true, as FineWeb).
    pub only_public_ips: bool,
    /// Replace phone numbers (default false: FineWeb does not, and digit
    /// patterns have false positives).
    pub phones: bool,
    /// E-mail placeholders, used in turn (default datatrove's
    /// `email@example.com`, `firstname.lastname@example.org`).
    pub email_replacements: Vec<String>,
    /// IPv4 placeholders, used in turn (default datatrove's six addresses,
    /// which did not answer pings when it chose them).
    pub ip_replacements: Vec<String>,
    /// IPv6 placeholders, used in turn (default two addresses of the
    /// documentation prefix 2001:db8::/32).
    pub ipv6_replacements: Vec<String>,
    /// Phone placeholders, used in turn (default numbers of the fictional
    /// 555-01xx range).
    pub phone_replacements: Vec<String>,
}

impl Default for PiiParams {
    fn default() -> Self {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        PiiParams {
            emails: true,
            ips: true,
            only_public_ips: true,
            phones: false,
            email_replacements: v(&["email@example.com", "firstname.lastname@example.org"]),
            ip_replacements: v(&[
                "22.214.171.124",
                "126.96.36.199",
                "188.8.131.52",
                "184.108.40.206",
                "220.127.116.11",
                "18.104.22.168",
            ]),
            ipv6_replacements: v(&["2001:db8::1", "2001:db8:85a3::8a2e:370:7334"]),
            phone_replacements: v(&["555-555-0100", "555-555-0123"]),
        }
    }
}

impl PiiParams {
    /// `(field, message)` for an empty placeholder list of an enabled kind.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (on, field, list) in [
            (self.emails, "email_replacements", &self.email_replacements),
            (self.ips, "ip_replacements", &self.ip_replacements),
            (self.ips, "ipv6_replacements", &self.ipv6_replacements),
            (self.phones, "phone_replacements", &self.phone_replacements),
        ] {
            if on && list.is_empty() {
                p.push((field.into(), "needs at least one placeholder".into()));
            }
        }
        p
    }
}

/// Replacements made in one document, per kind (summed into the manifest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    /// E-mail addresses replaced.
    pub emails: u64,
    /// IPv4 addresses replaced.
    pub ipv4: u64,
    /// IPv6 addresses replaced.
    pub ipv6: u64,
    /// Phone numbers replaced.
    pub phones: u64,
}

impl PiiCounts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &PiiCounts) {
        self.emails += o.emails;
        self.ipv4 += o.ipv4;
        self.ipv6 += o.ipv6;
        self.phones += o.phones;
    }

    /// All replacements.
    pub fn total(&self) -> u64 {
        self.emails + self.ipv4 + self.ipv6 + self.phones
    }
}

/// The `pii` step.
#[derive(Debug, Clone)]
pub struct Pii {
    p: PiiParams,
    email: Regex,
    ipv4: Regex,
    ipv6: Regex,
    phone: Regex,
}

/// Python's `IPv4Address.is_global`.
fn ipv4_is_global(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || ip.is_unspecified()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

/// Global unicast IPv6 (see the module docs).
fn ipv6_is_global(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0] & 0xE000) == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8) && !(s[0] == 0x2001 && s[1] < 0x0200)
}

/// Replaces the matches of `re` that `accept` takes, cycling through
/// `repls`; `None` when nothing was replaced.
fn replace(text: &str, re: &Regex, repls: &[String], count: &mut u64, accept: impl Fn(&str, usize, usize) -> bool) -> Option<String> {
    if repls.is_empty() {
        return None;
    }
    let before = *count;
    let mut out = String::new();
    let mut last = 0;
    for m in re.find_iter(text) {
        if !accept(text, m.start(), m.end()) {
            continue;
        }
        if *count == before {
            out.reserve(text.len());
        }
        out.push_str(&text[last..m.start()]);
        out.push_str(&repls[*count as usize % repls.len()]);
        *count += 1;
        last = m.end();
    }
    if *count == before {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

impl Pii {
    /// Compiles the patterns.
    pub fn new(p: &PiiParams) -> Result<Self, String> {
        let re = |s: &str| Regex::new(s).map_err(|e| e.to_string());
        Ok(Pii {
            p: p.clone(),
            // datatrove's pattern (RFC 5322-ish local part, dotted domain or an
            // IP literal), case-insensitive.
            email: re(
                r"(?i)\b[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[a-z0-9-]*[a-z0-9]:)\])",
            )?,
            ipv4: re(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")?,
            ipv6: re(r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{0,4})")?,
            // +CC groups, or North American (NXX) NXX-XXXX, with separators.
            phone: re(r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]\d{2,4}){2,4}|(?:\(\d{3}\) ?|\b\d{3}[.-])\d{3}[.-]\d{4})\b")?,
        })
    }

    /// The redacted text (`None` when unchanged) and what was replaced.
    pub fn apply(&self, text: &str) -> (Option<String>, PiiCounts) {
        let p = &self.p;
        let mut c = PiiCounts::default();
        let mut cur: Option<String> = None;
        if p.emails
            && let Some(s) = replace(
                cur.as_deref().unwrap_or(text),
                &self.email,
                &p.email_replacements,
                &mut c.emails,
                |_, _, _| true,
            )
        {
            cur = Some(s);
        }
        if p.ips {
            let public = p.only_public_ips;
            let v4 = |s: &str, a: usize, b: usize| {
                // Not part of a longer dotted number such as a version string.
                let before_ok = !s[..a].ends_with('.');
                let after = &s[b..];
                let after_ok = !(after.starts_with('.') && after[1..].starts_with(|ch: char| ch.is_ascii_digit()));
                before_ok && after_ok && s[a..b].parse::<Ipv4Addr>().is_ok_and(|ip| !public || ipv4_is_global(ip))
            };
            if let Some(s) = replace(cur.as_deref().unwrap_or(text), &self.ipv4, &p.ip_replacements, &mut c.ipv4, v4) {
                cur = Some(s);
            }
            let v6 = |s: &str, a: usize, b: usize| {
                let word = |ch: char| ch.is_ascii_alphanumeric() || ch == ':' || ch == '.';
                !s[..a].ends_with(word)
                    && !s[b..].starts_with(word)
                    && s[a..b].parse::<Ipv6Addr>().is_ok_and(|ip| !public || ipv6_is_global(ip))
            };
            if let Some(s) = replace(cur.as_deref().unwrap_or(text), &self.ipv6, &p.ipv6_replacements, &mut c.ipv6, v6) {
                cur = Some(s);
            }
        }
        if p.phones {
            let ok = |s: &str, a: usize, b: usize| {
                let digits = s[a..b].bytes().filter(u8::is_ascii_digit).count();
                (10..=15).contains(&digits) && !s[..a].ends_with(|ch: char| ch.is_ascii_alphanumeric())
            };
            if let Some(s) = replace(
                cur.as_deref().unwrap_or(text),
                &self.phone,
                &p.phone_replacements,
                &mut c.phones,
                ok,
            ) {
                cur = Some(s);
            }
        }
        (cur, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &PiiParams, s: &str) -> (String, PiiCounts) {
        let (out, c) = Pii::new(p).unwrap().apply(s);
        (out.unwrap_or_else(|| s.to_string()), c)
    }

    #[test]
    fn emails_cycle_through_placeholders() {
        let (out, c) = run(
            &PiiParams::default(),
            "Write to John.Doe@Example.COM or jane@mail.co.uk. Or x@[192.168.0.1]!",
        );
        assert_eq!(
            out,
            "Write to email@example.com or firstname.lastname@example.org. Or email@example.com!"
        );
        assert_eq!(
            c,
            PiiCounts {
                emails: 3,
                ..Default::default()
            }
        );
        assert!(
            Pii::new(&PiiParams::default())
                .unwrap()
                .apply("no at sign here, user at host")
                .0
                .is_none()
        );
    }

    #[test]
    fn only_public_ipv4() {
        let d = PiiParams::default();
        let (out, c) = run(
            &d,
            "server 8.8.8.8, lan 192.168.1.10, 10.0.0.1, 127.0.0.1, 100.64.0.1, 172.32.0.1 and 1.2.3.4.5",
        );
        assert_eq!(
            out,
            "server 22.214.171.124, lan 192.168.1.10, 10.0.0.1, 127.0.0.1, 100.64.0.1, 126.96.36.199 and 1.2.3.4.5"
        );
        assert_eq!(c.ipv4, 2);
        // Out-of-range octets and leading zeros are not addresses.
        assert_eq!(run(&d, "999.1.1.1 and 08.8.8.8").1.ipv4, 0);
        let all = PiiParams {
            only_public_ips: false,
            ..Default::default()
        };
        assert_eq!(run(&all, "lan 192.168.1.10").1.ipv4, 1);
    }

    #[test]
    fn public_ipv6() {
        let d = PiiParams::default();
        let (out, c) = run(
            &d,
            "v6 2a00:1450:4001:82a::200e and ::1, fe80::1, 2001:db8::5, std::vector, 10:30:45",
        );
        assert_eq!(out, "v6 2001:db8::1 and ::1, fe80::1, 2001:db8::5, std::vector, 10:30:45");
        assert_eq!(c.ipv6, 1);
    }

    #[test]
    fn phones_only_when_enabled() {
        let text = "Call (415) 555-2671 or +44 20 7946 0958, not 2023-01-15 or 12345.";
        assert_eq!(run(&PiiParams::default(), text).1.phones, 0);
        let on = PiiParams {
            phones: true,
            ..Default::default()
        };
        let (out, c) = run(&on, text);
        assert_eq!(out, "Call 555-555-0100 or 555-555-0123, not 2023-01-15 or 12345.");
        assert_eq!(c.phones, 2);
        assert_eq!(c.total(), 2);
        assert_eq!(
            PiiParams {
                email_replacements: vec![],
                ..Default::default()
            }
            .check()
            .len(),
            1
        );
    }
}
