//! Anthropic HH-RLHF transcripts (`\n\nHuman: …\n\nAssistant: …`) split
//! into chat turns.

use crate::io::chat::{Message, Role};

/// The two speakers of an HH-RLHF transcript and the words that introduce them.
const SPEAKERS: [(Role, &str); 2] = [(Role::User, "Human:"), (Role::Assistant, "Assistant:")];

/// Splits an Anthropic HH-RLHF transcript (`\n\nHuman: …\n\nAssistant: …`)
/// into turns at each blank line followed by `Human:` or `Assistant:`,
/// removing one space after the marker. The first marker may also open the
/// text without the blank line. Consecutive turns of one speaker stay
/// separate, as the transcript has them; `Human:` inside a line is text.
/// Emptiness and the final speaker are left to the caller.
pub fn split_transcript<'t>(t: &'t str, what: &str) -> Result<Vec<Message<'t>>, String> {
    // (marker start, content start, role)
    let mut marks: Vec<(usize, usize, Role)> = Vec::new();
    let lead = t.len() - t.trim_start().len();
    let mut from = lead;
    if let Some((role, word)) = SPEAKERS.iter().find(|(_, w)| t[lead..].starts_with(w)) {
        marks.push((lead, lead + word.len(), *role));
        from = lead + word.len();
    }
    while let Some(i) = t[from..].find("\n\n") {
        let at = from + i;
        match SPEAKERS.iter().find(|(_, w)| t[at + 2..].starts_with(w)) {
            Some((role, word)) => {
                marks.push((at, at + 2 + word.len(), *role));
                from = at + 2 + word.len();
            }
            // "\n\n\nHuman:": the marker's blank line may start one byte on.
            None => from = at + 1,
        }
    }
    let Some(first) = marks.first() else {
        return Err(format!("no `Human:`/`Assistant:` turns in `{what}`"));
    };
    if !t[..first.0].trim().is_empty() {
        return Err(format!("text before the first `Human:` turn in `{what}`"));
    }
    let ends = marks.iter().skip(1).map(|m| m.0).chain([t.len()]);
    Ok(marks
        .iter()
        .zip(ends)
        .map(|(&(_, start, role), end)| {
            let body = &t[start..end];
            Message::new(role, body.strip_prefix(' ').unwrap_or(body))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turns(t: &str) -> Vec<(&'static str, String)> {
        split_transcript(t, "chosen")
            .unwrap()
            .into_iter()
            .map(|m| (m.role.as_str(), m.content.into_owned()))
            .collect()
    }

    fn s(role: &'static str, c: &str) -> (&'static str, String) {
        (role, c.to_string())
    }

    #[test]
    fn transcripts_split_into_turns_with_one_space_removed() {
        assert_eq!(
            turns("\n\nHuman: hi there\n\nAssistant:  two spaces\n\nHuman: more\n\nAssistant: ok."),
            vec![
                s("user", "hi there"),
                s("assistant", " two spaces"),
                s("user", "more"),
                s("assistant", "ok.")
            ]
        );
    }

    #[test]
    fn paragraphs_and_inline_markers_stay_in_the_turn() {
        let t = "\n\nHuman: a\n\nb. Human: c\n\nResponse: d\n\nAssistant: e\n\n\nHuman: f\n\nAssistant: g";
        assert_eq!(
            turns(t),
            vec![
                s("user", "a\n\nb. Human: c\n\nResponse: d"),
                s("assistant", "e\n"),
                s("user", "f"),
                s("assistant", "g")
            ]
        );
    }

    #[test]
    fn the_first_marker_may_open_the_text_and_repeated_speakers_stay_apart() {
        assert_eq!(
            turns("Human: q\n\nAssistant: a\n\nAssistant: b"),
            vec![s("user", "q"), s("assistant", "a"), s("assistant", "b")]
        );
        assert_eq!(turns("  \n\nHuman: q\n\nAssistant:"), vec![s("user", "q"), s("assistant", "")]);
    }

    #[test]
    fn transcripts_without_markers_or_with_a_preamble_are_errors() {
        assert_eq!(
            split_transcript("just text", "chosen").unwrap_err(),
            "no `Human:`/`Assistant:` turns in `chosen`"
        );
        assert_eq!(
            split_transcript("", "rejected").unwrap_err(),
            "no `Human:`/`Assistant:` turns in `rejected`"
        );
        assert_eq!(
            split_transcript("Intro\n\nHuman: q\n\nAssistant: a", "chosen").unwrap_err(),
            "text before the first `Human:` turn in `chosen`"
        );
    }
}
