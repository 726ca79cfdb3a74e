//! Stop strings (OpenAI's `stop`): the reply ends before the first one, and
//! streamed text never shows the start of one that might still complete.

/// Matches stop strings across streamed pieces of text.
#[derive(Debug, Clone, Default)]
pub struct StopStrings {
    stops: Vec<String>,
    /// Text seen but not yet released: a suffix that may begin a stop string.
    pending: String,
}

impl StopStrings {
    /// A matcher for `stops` (empty strings are ignored: they would stop
    /// every reply before it starts).
    pub fn new(stops: &[String]) -> Self {
        StopStrings {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
        }
    }

    /// Adds `piece`; returns the text that is now safe to show and whether
    /// a stop string appeared (the text is then everything before it).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.pending.push_str(piece);
        if self.stops.is_empty() {
            return (std::mem::take(&mut self.pending), false);
        }
        // A match must start in `pending`: what was released held no stop
        // string's prefix at its end.
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let ready = self.pending[..at].to_string();
            self.pending.clear();
            return (ready, true);
        }
        let hold = self.held_suffix();
        let ready = self.pending[..self.pending.len() - hold].to_string();
        self.pending.drain(..self.pending.len() - hold);
        (ready, false)
    }

    /// The text still held back, released when the reply ends without a match.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// The length of the longest suffix of `pending` that is a proper prefix
    /// of some stop string.
    fn held_suffix(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for s in &self.stops {
            let longest = (s.len() - 1).min(p.len());
            for k in (best + 1..=longest).rev() {
                let start = p.len() - k;
                if p.is_char_boundary(start) && s.starts_with(&p[start..]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, bool, String) {
        let mut m = StopStrings::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let mut out = Vec::new();
        for p in pieces {
            let (ready, stop) = m.push(p);
            out.push(ready);
            if stop {
                return (out, true, String::new());
            }
        }
        let rest = m.finish();
        (out, false, rest)
    }

    #[test]
    fn text_passes_through_without_stops() {
        assert_eq!(run(&[], &["a", "b"]), (vec!["a".into(), "b".into()], false, String::new()));
        assert_eq!(run(&[""], &["a"]).0, vec!["a"]);
    }

    #[test]
    fn a_stop_split_across_pieces_is_held_back_then_cut() {
        let (out, stopped, _) = run(&["\nUser:"], &["Hello", " there\nUs", "er: hi"]);
        assert!(stopped);
        assert_eq!(out, vec!["Hello", " there", ""]);
        assert_eq!(out.concat(), "Hello there");
    }

    #[test]
    fn a_false_start_is_released() {
        let (out, stopped, rest) = run(&["END"], &["the EN", "D", "x"]);
        assert!(stopped);
        assert_eq!(out.concat(), "the ");
        assert_eq!(rest, "");
        let (out, stopped, rest) = run(&["END"], &["the EN", "ding", " E"]);
        assert!(!stopped);
        assert_eq!(out, vec!["the ", "ENding", " "]);
        assert_eq!(rest, "E");
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_multibyte_text_is_not_split() {
        let (out, stopped, _) = run(&["ü!", "b"], &["aaü", "!b"]);
        assert!(stopped);
        assert_eq!(out.concat(), "aa");
        // A held suffix never splits a character.
        let (out, _, rest) = run(&["éz"], &["café"]);
        assert_eq!((out.concat(), rest), ("caf".to_string(), "é".to_string()));
    }
}
