//! Each cleaning rule as a [`RowStep`] of the fused chain: what it reads
//! from the document, and what it writes back (text, title, language,
//! counts).

use super::Reason;
use super::chain::{Doc, RowStep};
use super::extract::{ExtractParams, extract};
use super::filters::{C4BadWords, C4Quality, FineWebQuality, GopherQuality, GopherRepetition, Length, UrlFilter};
use super::langid::LangId;
use super::normalize::Normalize;
use super::pii::Pii;
use std::borrow::Cow;

/// `extract` with its parameters.
pub struct Extract(pub ExtractParams);

impl RowStep for Extract {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        let out = extract(&doc.text, &self.0)?;
        doc.text = Cow::Owned(out.text);
        doc.title = out.title;
        Ok(())
    }
}

impl RowStep for UrlFilter {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        UrlFilter::apply(self, doc.url)
    }
}

impl RowStep for LangId {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        let (lang, score) = self.detect(&doc.text);
        doc.lang = lang;
        doc.lang_score = Some(score);
        LangId::apply(self, lang, score)
    }
}

/// Rules that only judge the text.
macro_rules! judges_text {
    ($($t:ty),*) => {$(
        impl RowStep for $t {
            fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
                <$t>::apply(self, &doc.text)
            }
        }
    )*};
}

judges_text!(GopherRepetition, GopherQuality, C4BadWords, FineWebQuality, Length);

impl RowStep for C4Quality {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        if let Some(t) = C4Quality::apply(self, &doc.text)? {
            doc.text = Cow::Owned(t);
        }
        Ok(())
    }
}

impl RowStep for Pii {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        let (text, n) = Pii::apply(self, &doc.text);
        if let Some(t) = text {
            doc.text = Cow::Owned(t);
        }
        for (k, v) in [
            ("pii.emails", n.emails),
            ("pii.ipv4", n.ipv4),
            ("pii.ipv6", n.ipv6),
            ("pii.phones", n.phones),
        ] {
            if v > 0 {
                doc.counts.push((k, v));
            }
        }
        Ok(())
    }
}

impl RowStep for Normalize {
    fn apply(&self, doc: &mut Doc<'_>) -> Result<(), Reason> {
        if let Some(t) = Normalize::apply(self, &doc.text) {
            doc.text = Cow::Owned(t);
        }
        Ok(())
    }
}
