//! Text normalization before filtering: Unicode NFC, control characters
//! removed, whitespace runs collapsed within lines, blank-line runs
//! collapsed, the whole text trimmed. Each part can be turned off.
//!
//! NFC first, so that a decomposed `e` + combining accent and the
//! precomposed `é` compare equal in every later rule (duplicate lines,
//! bad words, dedup). `\r` is a control character, so CRLF becomes LF.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Parameters of `normalize`; all on by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeParams {
    /// Unicode canonical composition (NFC) (default true).
    pub nfc: bool,
    /// Remove control characters except `\n` and `\t` (default true).
    pub remove_control: bool,
    /// Turn each run of whitespace inside a line into one space and strip
    /// spaces at both ends of each line (default true).
    pub collapse_spaces: bool,
    /// Keep at most one blank line between paragraphs (default true).
    pub collapse_blank_lines: bool,
    /// Strip whitespace at both ends of the text (default true).
    pub trim: bool,
}

impl Default for NormalizeParams {
    fn default() -> Self {
        NormalizeParams {
            nfc: true,
            remove_control: true,
            collapse_spaces: true,
            collapse_blank_lines: true,
            trim: true,
        }
    }
}

impl NormalizeParams {
    /// Nothing can be out of range; kept for the common step shape.
    pub fn check(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// The `normalize` step.
#[derive(Debug, Clone)]
pub struct Normalize {
    p: NormalizeParams,
}

impl Normalize {
    /// Builds the step.
    pub fn new(p: &NormalizeParams) -> Result<Self, String> {
        Ok(Normalize { p: p.clone() })
    }

    /// The normalized text, or `None` when `text` is already normal.
    pub fn apply(&self, text: &str) -> Option<String> {
        let p = &self.p;
        let composed;
        let src: &str = if p.nfc && is_nfc_quick(text.chars()) != IsNormalized::Yes {
            composed = text.nfc().collect::<String>();
            &composed
        } else {
            text
        };
        let mut out = String::with_capacity(src.len());
        let mut emitted = 0usize;
        let mut prev_blank = false;
        for line in src.split('\n') {
            let mark = out.len();
            if emitted > 0 {
                out.push('\n');
            }
            let body = out.len();
            let mut pending_space = false;
            for c in line.chars() {
                if p.remove_control && c.is_control() && c != '\t' {
                    continue;
                }
                if p.collapse_spaces && c.is_whitespace() {
                    // A space only between two kept characters: lines come out stripped.
                    pending_space = out.len() > body;
                    continue;
                }
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
            }
            let blank = out[body..].trim().is_empty();
            if blank && p.collapse_blank_lines {
                if prev_blank {
                    out.truncate(mark);
                    continue;
                }
                out.truncate(body);
            }
            emitted += 1;
            prev_blank = blank;
        }
        let result = if p.trim { out.trim() } else { out.as_str() };
        if result == text { None } else { Some(result.to_string()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &NormalizeParams, s: &str) -> String {
        Normalize::new(p).unwrap().apply(s).unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn default_normalization() {
        let d = NormalizeParams::default();
        assert_eq!(
            norm(&d, "  Hello \t  world \r\n\n\n\nNext\u{0}  line\u{7}  \n\n  "),
            "Hello world\n\nNext line"
        );
        // NFC: e + U+0301 → é.
        assert_eq!(norm(&d, "caf\u{65}\u{301}"), "caf\u{e9}");
        // Already normal text reports None.
        assert!(Normalize::new(&d).unwrap().apply("Already\n\nnormal text.").is_none());
        // A single blank line between paragraphs stays; whitespace-only lines are blank.
        assert_eq!(norm(&d, "a\n \t \nb"), "a\n\nb");
        assert_eq!(norm(&d, "\n\n\na\n\n\n"), "a");
        assert_eq!(norm(&d, "no\u{a0}break"), "no break");
    }

    #[test]
    fn parts_can_be_turned_off() {
        let off = NormalizeParams {
            nfc: false,
            remove_control: false,
            collapse_spaces: false,
            collapse_blank_lines: false,
            trim: false,
        };
        let s = "  a\u{1}  b\n\n\n\ne\u{301}  ";
        assert!(Normalize::new(&off).unwrap().apply(s).is_none());
        let only_control = NormalizeParams {
            remove_control: true,
            ..off.clone()
        };
        assert_eq!(norm(&only_control, "a\u{1}b\tc\r\n"), "ab\tc\n");
        let only_blank = NormalizeParams {
            collapse_blank_lines: true,
            ..off
        };
        assert_eq!(norm(&only_blank, "a\n\n\n\nb"), "a\n\nb");
        assert!(NormalizeParams::default().check().is_empty());
    }
}
