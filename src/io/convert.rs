//! Converters on `read`: the record shapes SFT and preference data come in
//! (Alpaca, ShareGPT, Anthropic HH-RLHF, GSM8K, chat messages, DPO pairs)
//! turned into `chat` or `preferences` rows, without rewriting the files.
//!
//! Every converter checks what a trainer relies on: roles it knows, no empty
//! user or assistant turn, an assistant reply last, and for pairs a prompt
//! that chosen and rejected share. A record that fails becomes a reject with
//! the reason; the rest of the file is read on.

mod transcript;

use super::chat::{ChatBuilder, Message, PreferenceBuilder, Role};
use super::chunker::Chunk;
use super::docs::Reject;
use super::parse::{
    Entries, FieldMap, Items, Origin, Parsed, as_string, finish_batch, json_type, metadata_json, own_source, record_entries, record_id,
    reject,
};
use crate::spec::ops::{Format, Kind};
use serde_json::value::RawValue;
use std::borrow::Cow;
pub use transcript::split_transcript;

/// A preference pair: the shared conversation, then the two final replies;
/// a ranked record also carries its K responses (best first).
struct Pair<'a> {
    prompt: Vec<Message<'a>>,
    chosen: Cow<'a, str>,
    rejected: Cow<'a, str>,
    responses: Option<Vec<Cow<'a, str>>>,
    margin: Option<f64>,
}

/// The top-level fields a format reads; the others go to `metadata`.
fn own_fields(format: Format) -> &'static [&'static str] {
    match format {
        Format::Alpaca => &["instruction", "input", "output", "system", "history"],
        Format::Sharegpt => &["conversations", "system"],
        // Both transcripts belong to the format, even when only `chosen`
        // becomes the chat: copying `rejected` into metadata would double
        // the artifact for nothing.
        Format::HhRlhf | Format::HhRlhfPreferences => &["chosen", "rejected"],
        Format::Gsm8k => &["question", "answer"],
        Format::Chat => &["messages", "reference"],
        Format::Preferences => &["prompt", "chosen", "rejected", "conversations", "system", "responses", "margin"],
        Format::Jsonl | Format::Json | Format::Parquet | Format::Text | Format::Warc | Format::Wet => &[],
    }
}

/// Converts a chunk of JSON records in `format` into `chat` or
/// `preferences` rows. `format` must be a converter
/// ([`Format::is_converter`]); any other rejects every record.
pub fn parse_chunk(chunk: &Chunk, origin: &Origin, format: Format, map: &FieldMap) -> Parsed {
    let (rows, bytes) = (chunk.recs.len(), chunk.data.len());
    let (batch, rejects) = if format.output_kind() == Kind::Preferences {
        let mut b = PreferenceBuilder::with_capacity(rows, bytes);
        let rejects = each_record(chunk, origin, format, map, |e, id, source, meta| {
            let p = match format {
                Format::HhRlhfPreferences => hh_rlhf_pair(e)?,
                Format::Preferences => preference_pair(e)?,
                other => return Err(format!("`{}` is not a preference converter", other.name())),
            };
            let ranking: Option<Vec<&str>> = p.responses.as_ref().map(|r| r.iter().map(|x| x.as_ref()).collect());
            b.push_ranked(id, &p.prompt, &p.chosen, &p.rejected, ranking.as_deref(), p.margin, source, meta);
            Ok(())
        });
        ((!b.is_empty()).then(|| b.finish()), rejects)
    } else {
        let mut b = ChatBuilder::with_capacity(rows, bytes);
        let rejects = each_record(chunk, origin, format, map, |e, id, source, meta| {
            let (messages, reference) = match format {
                Format::Alpaca => (alpaca(e)?, None),
                Format::Sharegpt => (sharegpt(e)?, None),
                Format::HhRlhf => (transcript(e, "chosen")?, None),
                Format::Gsm8k => gsm8k(e)?,
                // A short expected answer beside the conversation (the world's
                // held-out prompts): kept for `eval_chat` and verifiable rewards.
                Format::Chat => (chat(e)?, optional_str(e, "reference")?.map(|s| s.into_owned())),
                other => return Err(format!("`{}` is not a chat converter", other.name())),
            };
            b.push(id, &messages, source, reference.as_deref(), meta);
            Ok(())
        });
        ((!b.is_empty()).then(|| b.finish()), rejects)
    };
    finish_batch(batch, rejects, chunk, origin)
}

/// Runs `emit(entries, id, source, metadata)` on each record of the chunk;
/// a record whose `emit` (or id) fails becomes a reject. `emit` must only
/// push once everything it could fail on has been checked.
fn each_record(
    chunk: &Chunk,
    origin: &Origin,
    format: Format,
    map: &FieldMap,
    mut emit: impl FnMut(&Entries, &str, &str, Option<&str>) -> Result<(), String>,
) -> Vec<Reject> {
    let fields = own_fields(format);
    let id_key = map.id.as_deref().filter(|p| p.len() == 1).map(|p| p[0].as_str());
    let (mut id, mut meta) = (String::new(), String::new());
    let mut rejects = Vec::new();
    for rec in &chunk.recs {
        let raw = &chunk.data[rec.start..rec.end];
        let result = (|| -> Result<(), String> {
            let entries = record_entries(raw)?;
            record_id(&entries, map.id.as_deref(), origin, rec, &mut id)?;
            let own = own_source(&entries, origin)?;
            meta.clear();
            if map.keep_metadata {
                let skip = |k: &str| fields.contains(&k) || id_key == Some(k) || (k == "source" && own.is_some());
                metadata_json(&entries, skip, &mut meta);
            }
            let source = own.as_deref().unwrap_or(origin.source);
            emit(&entries, &id, source, (!meta.is_empty()).then_some(meta.as_str()))
        })();
        if let Err(reason) = result {
            rejects.push(reject(origin, rec, raw, reason));
        }
    }
    rejects
}

// ---- JSON access with reasons that name the field ----

fn field<'a>(e: &Entries<'a>, key: &str) -> Option<&'a RawValue> {
    e.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn first_byte(v: &RawValue) -> u8 {
    v.get().as_bytes().first().copied().unwrap_or(b' ')
}

/// A string with something in it; `what` names the field.
fn text<'a>(v: &'a RawValue, what: &str) -> Result<Cow<'a, str>, String> {
    let s = as_string(v, what)?;
    if s.trim().is_empty() {
        return Err(format!("field `{what}` is empty"));
    }
    Ok(s)
}

/// A required top-level string with something in it.
fn required_text<'a>(e: &Entries<'a>, key: &str) -> Result<Cow<'a, str>, String> {
    text(field(e, key).ok_or_else(|| format!("missing field `{key}`"))?, key)
}

/// An optional top-level string: absent and `null` are `None`.
fn optional_str<'a>(e: &Entries<'a>, key: &str) -> Result<Option<Cow<'a, str>>, String> {
    match field(e, key) {
        None => Ok(None),
        Some(v) if v.get() == "null" => Ok(None),
        Some(v) => as_string(v, key).map(Some),
    }
}

fn list<'a>(v: &'a RawValue, what: &str) -> Result<Vec<&'a RawValue>, String> {
    if first_byte(v) != b'[' {
        return Err(format!("field `{what}` is {}, not a list", json_type(v)));
    }
    serde_json::from_str::<Items>(v.get())
        .map(|i| i.0)
        .map_err(|e| format!("field `{what}`: {e}"))
}

fn object<'a>(v: &'a RawValue, what: &str) -> Result<Entries<'a>, String> {
    if first_byte(v) != b'{' {
        return Err(format!("field `{what}` is {}, not an object", json_type(v)));
    }
    serde_json::from_str::<Entries>(v.get()).map_err(|e| format!("field `{what}`: {e}"))
}

// ---- messages ----

/// How a message object names its role and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `{role, content}` with roles system/user/assistant (OpenAI, TRL).
    RoleContent,
    /// `{from, value}` with human/gpt/system (ShareGPT, LLaMA-Factory).
    FromValue,
    /// Either, told apart by the keys (`from` means ShareGPT).
    Either,
}

/// One message object at `what` (`messages.2`). An empty system message
/// says nothing, so it is dropped (`Ok(None)`); an empty user or assistant
/// turn is an error, since training on it teaches nothing or worse.
fn message<'a>(v: &'a RawValue, what: &str, style: Style) -> Result<Option<Message<'a>>, String> {
    let e = object(v, what)?;
    let style = match style {
        Style::Either if field(&e, "from").is_some() => Style::FromValue,
        Style::Either => Style::RoleContent,
        s => s,
    };
    let (role_key, content_key) = match style {
        Style::FromValue => ("from", "value"),
        _ => ("role", "content"),
    };
    let role_path = format!("{what}.{role_key}");
    let name = as_string(
        field(&e, role_key).ok_or_else(|| format!("missing field `{role_path}`"))?,
        &role_path,
    )?;
    let role = match (style, name.as_ref()) {
        (_, "system") => Role::System,
        // ShareGPT dumps use the chat names too; both mean the same speaker.
        (Style::FromValue, "human" | "user") | (Style::RoleContent, "user") => Role::User,
        (Style::FromValue, "gpt" | "assistant") | (Style::RoleContent, "assistant") => Role::Assistant,
        (Style::FromValue, other) => {
            return Err(format!(
                "unknown ShareGPT role in `{role_path}`: `{other}` (expected human, gpt or system)"
            ));
        }
        (_, other) => {
            return Err(format!(
                "unknown role in `{role_path}`: `{other}` (expected system, user or assistant)"
            ));
        }
    };
    let content_path = format!("{what}.{content_key}");
    let content = as_string(
        field(&e, content_key).ok_or_else(|| format!("missing field `{content_path}`"))?,
        &content_path,
    )?;
    if content.trim().is_empty() {
        if role == Role::System {
            return Ok(None);
        }
        return Err(format!("empty {} message in `{what}`", role.as_str()));
    }
    Ok(Some(Message { role, content }))
}

/// A list of message objects at `what`.
fn messages<'a>(v: &'a RawValue, what: &str, style: Style) -> Result<Vec<Message<'a>>, String> {
    let items = list(v, what)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.extend(message(item, &format!("{what}.{i}"), style)?);
    }
    Ok(out)
}

/// The record's top-level `system` prompt as a message, when it has one.
fn system<'a>(e: &Entries<'a>) -> Result<Vec<Message<'a>>, String> {
    Ok(optional_str(e, "system")?
        .filter(|s| !s.trim().is_empty())
        .map(|s| Message::new(Role::System, s))
        .into_iter()
        .collect())
}

/// A conversation a fine-tune can learn from: a user turn, and an assistant
/// reply last (a trailing user turn has no answer to learn).
fn check_chat(messages: &[Message], what: &str) -> Result<(), String> {
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        return Err(format!("no assistant turn in `{what}`"));
    }
    if !messages.iter().any(|m| m.role == Role::User) {
        return Err(format!("no user turn in `{what}`"));
    }
    match messages.last() {
        Some(m) if m.role != Role::Assistant => Err(format!("`{what}` ends with a {} turn, not an assistant reply", m.role.as_str())),
        _ => Ok(()),
    }
}

// ---- formats that make chat ----

/// Alpaca (Stanford, LLaMA-Factory): `instruction` + non-empty `input` is
/// the user turn, `output` the reply; optional `system` and `history`
/// (`[[user, assistant], ...]` turns before this one).
fn alpaca<'a>(e: &Entries<'a>) -> Result<Vec<Message<'a>>, String> {
    let instruction = required_text(e, "instruction")?;
    let output = required_text(e, "output")?;
    let mut out = system(e)?;
    if let Some(h) = field(e, "history").filter(|h| h.get() != "null") {
        for (i, pair) in list(h, "history")?.into_iter().enumerate() {
            let what = format!("history.{i}");
            let turn = list(pair, &what)?;
            let [user, reply] = turn.as_slice() else {
                return Err(format!("field `{what}` has {} items, not a [user, assistant] pair", turn.len()));
            };
            out.push(Message::new(Role::User, text(user, &format!("{what}.0"))?));
            out.push(Message::new(Role::Assistant, text(reply, &format!("{what}.1"))?));
        }
    }
    let user = match optional_str(e, "input")? {
        Some(input) if !input.trim().is_empty() => Cow::Owned(format!("{instruction}\n\n{input}")),
        _ => instruction,
    };
    out.push(Message::new(Role::User, user));
    out.push(Message::new(Role::Assistant, output));
    Ok(out)
}

/// ShareGPT: `conversations: [{from, value}]`, optional top-level `system`.
fn sharegpt<'a>(e: &Entries<'a>) -> Result<Vec<Message<'a>>, String> {
    let conv = field(e, "conversations").ok_or("missing field `conversations`")?;
    let mut out = system(e)?;
    out.extend(messages(conv, "conversations", Style::FromValue)?);
    check_chat(&out, "conversations")?;
    Ok(out)
}

/// Records that are chats already: `messages: [{role, content}]`.
fn chat<'a>(e: &Entries<'a>) -> Result<Vec<Message<'a>>, String> {
    let m = field(e, "messages").ok_or("missing field `messages`")?;
    let out = messages(m, "messages", Style::RoleContent)?;
    check_chat(&out, "messages")?;
    Ok(out)
}

/// GSM8K: `question` → user, `answer` (the worked solution, `#### n` line
/// included, since that is what the model should learn to write) →
/// assistant; `n` is also kept as the `reference` for exact-match scoring.
fn gsm8k<'a>(e: &Entries<'a>) -> Result<(Vec<Message<'a>>, Option<String>), String> {
    let question = required_text(e, "question")?;
    let answer = required_text(e, "answer")?;
    let reference = final_answer(&answer)
        .ok_or("field `answer` has no final `#### <answer>` line")?
        .to_string();
    Ok((
        vec![Message::new(Role::User, question), Message::new(Role::Assistant, answer)],
        Some(reference),
    ))
}

/// The text after the last `####` of a GSM8K answer, trimmed.
fn final_answer(answer: &str) -> Option<&str> {
    let (_, after) = answer.rsplit_once("####")?;
    Some(after.trim()).filter(|s| !s.is_empty())
}

// ---- HH-RLHF transcripts ----

/// The HH-RLHF transcript in field `key` as a checked conversation.
fn transcript(e: &Entries, key: &str) -> Result<Vec<Message<'static>>, String> {
    let t = as_string(field(e, key).ok_or_else(|| format!("missing field `{key}`"))?, key)?;
    let turns = split_transcript(&t, key)?;
    if let Some((i, m)) = turns.iter().enumerate().find(|(_, m)| m.content.trim().is_empty()) {
        return Err(format!(
            "empty {} turn in `{key}` (turn {} of {})",
            m.role.as_str(),
            i + 1,
            turns.len()
        ));
    }
    check_chat(&turns, key)?;
    // Escaped JSON strings are decoded into a String that dies here.
    Ok(turns.into_iter().map(|m| Message::new(m.role, m.content.into_owned())).collect())
}

// ---- formats that make preferences ----

/// Splits two full conversations into the prompt they share and their final
/// assistant replies.
fn pair<'a>(chosen: Vec<Message<'a>>, rejected: Vec<Message<'a>>) -> Result<Pair<'a>, String> {
    check_chat(&chosen, "chosen")?;
    check_chat(&rejected, "rejected")?;
    let (mut prompt, mut rejected) = (chosen, rejected);
    // check_chat has made sure both end with an assistant reply.
    let (Some(c), Some(r)) = (prompt.pop(), rejected.pop()) else {
        return Err("no assistant turn in `chosen`".into());
    };
    if prompt != rejected {
        let at = prompt.iter().zip(&rejected).take_while(|(a, b)| a == b).count();
        return Err(format!(
            "chosen and rejected do not share the prompt: they differ at message {} (prompts of {} and {} messages)",
            at + 1,
            prompt.len(),
            rejected.len()
        ));
    }
    // A pair with one reply twice teaches the reward model nothing and
    // gives DPO a zero gradient: it is a data error, not a preference.
    if c.content.trim() == r.content.trim() {
        return Err("chosen and rejected are the same reply".into());
    }
    Ok(Pair {
        prompt,
        chosen: c.content,
        rejected: r.content,
        responses: None,
        margin: None,
    })
}

/// HH-RLHF pairs: two transcripts that share all turns but the last.
fn hh_rlhf_pair(e: &Entries) -> Result<Pair<'static>, String> {
    let chosen = transcript(e, "chosen")?;
    let rejected = transcript(e, "rejected")?;
    pair(chosen, rejected)
}

/// `chosen` or `rejected`: a string (one assistant reply), one message
/// object (`{from, value}` as LLaMA-Factory writes DPO data, or `{role,
/// content}`), or a message list (TRL's conversational form).
fn reply<'a>(e: &Entries<'a>, key: &str) -> Result<Vec<Message<'a>>, String> {
    let v = field(e, key).ok_or_else(|| format!("missing field `{key}`"))?;
    match first_byte(v) {
        b'"' => Ok(vec![Message::new(Role::Assistant, text(v, key)?)]),
        b'{' => Ok(message(v, key, Style::Either)?.into_iter().collect()),
        b'[' => messages(v, key, Style::Either),
        _ => Err(format!(
            "field `{key}` is {}, not a string, a message or a message list",
            json_type(v)
        )),
    }
}

/// Preference records: `prompt` (a string, or a message list) with
/// `chosen`/`rejected`; or ShareGPT DPO records (`conversations` with
/// `chosen`/`rejected` messages); or, without either, full conversations in
/// `chosen`/`rejected` whose shared turns are the prompt. A top-level
/// `system` string opens the prompt.
fn preference_pair<'a>(e: &Entries<'a>) -> Result<Pair<'a>, String> {
    let margin = match field(e, "margin") {
        None => None,
        Some(v) if v.get() == "null" => None,
        Some(v) => Some(
            v.get()
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite())
                .ok_or_else(|| format!("field `margin` is {}, not a finite number", json_type(v)))?,
        ),
    };
    let mut p = preference_prompt_and_replies(e)?;
    p.margin = margin;
    Ok(p)
}

/// The ranked form (`responses: [best, ..., worst]`, InstructGPT's K
/// completions per prompt): each item a reply string or one assistant
/// message. Chosen is the best, rejected the worst.
fn ranked<'a>(prompt: Vec<Message<'a>>, v: &'a RawValue, e: &Entries<'a>) -> Result<Pair<'a>, String> {
    if field(e, "chosen").is_some() || field(e, "rejected").is_some() {
        return Err("give either `responses` (a ranking) or `chosen`/`rejected` (a pair), not both".into());
    }
    match prompt.last() {
        Some(m) if m.role == Role::User => {}
        Some(m) => {
            return Err(format!(
                "`prompt` ends with a {} turn; ranked replies answer a user turn",
                m.role.as_str()
            ));
        }
        None => return Err("missing field `prompt`".into()),
    }
    let items = list(v, "responses")?;
    if items.len() < 2 {
        return Err(format!("field `responses` has {} item(s); a ranking needs at least 2", items.len()));
    }
    let mut out: Vec<Cow<'a, str>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let what = format!("responses.{i}");
        let reply = match first_byte(item) {
            b'"' => text(item, &what)?,
            b'{' => match message(item, &what, Style::Either)? {
                Some(m) if m.role == Role::Assistant => m.content,
                _ => return Err(format!("`{what}` is not an assistant message")),
            },
            _ => return Err(format!("field `{what}` is {}, not a string or a message", json_type(item))),
        };
        if let Some(j) = out.iter().position(|o| o.trim() == reply.trim()) {
            return Err(format!("responses {j} and {i} are the same reply"));
        }
        out.push(reply);
    }
    let (chosen, rejected) = (out[0].clone(), out[out.len() - 1].clone());
    Ok(Pair {
        prompt,
        chosen,
        rejected,
        responses: Some(out),
        margin: None,
    })
}

fn preference_prompt_and_replies<'a>(e: &Entries<'a>) -> Result<Pair<'a>, String> {
    let mut prompt = system(e)?;
    match (field(e, "prompt"), field(e, "conversations")) {
        (Some(p), _) if first_byte(p) == b'"' => prompt.push(Message::new(Role::User, text(p, "prompt")?)),
        (Some(p), _) if first_byte(p) == b'[' => prompt.extend(messages(p, "prompt", Style::Either)?),
        (Some(p), _) => return Err(format!("field `prompt` is {}, not a string or a message list", json_type(p))),
        (None, Some(c)) => prompt.extend(messages(c, "conversations", Style::FromValue)?),
        // Without a prompt, only full conversations in chosen/rejected work.
        (None, None) if field(e, "chosen").is_some_and(|c| first_byte(c) != b'[') => return Err("missing field `prompt`".into()),
        (None, None) => {}
    }
    if let Some(r) = field(e, "responses").filter(|r| r.get() != "null") {
        return ranked(prompt, r, e);
    }
    let mut chosen = prompt.clone();
    chosen.extend(reply(e, "chosen")?);
    prompt.extend(reply(e, "rejected")?);
    pair(chosen, prompt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prompt contents, chosen, rejected, responses, margin
    type PrefRow = (Vec<String>, String, String, Option<Vec<String>>, Option<f64>);

    fn pref(json: &str) -> Result<PrefRow, String> {
        let e = super::super::parse::record_entries(json.as_bytes())?;
        let p = preference_pair(&e)?;
        Ok((
            p.prompt.iter().map(|m| m.content.to_string()).collect(),
            p.chosen.into_owned(),
            p.rejected.into_owned(),
            p.responses.map(|r| r.into_iter().map(Cow::into_owned).collect()),
            p.margin,
        ))
    }

    #[test]
    fn rankings_keep_every_response_with_best_and_worst_as_the_pair() {
        let (prompt, c, r, resp, m) =
            pref(r#"{"prompt": "q?", "responses": ["best", {"role": "assistant", "content": "mid"}, "worst"], "margin": 0.5}"#).unwrap();
        assert_eq!(prompt, ["q?"]);
        assert_eq!((c.as_str(), r.as_str()), ("best", "worst"));
        assert_eq!(resp.unwrap(), ["best", "mid", "worst"]);
        assert_eq!(m, Some(0.5));
        let (_, _, _, resp, m) = pref(r#"{"prompt": "q?", "chosen": "a", "rejected": "b"}"#).unwrap();
        assert!(resp.is_none() && m.is_none());
    }

    #[test]
    fn bad_rankings_and_pairs_are_rejected_with_a_reason() {
        let cases = [
            (
                r#"{"prompt": "q", "responses": ["only"]}"#,
                "field `responses` has 1 item(s); a ranking needs at least 2",
            ),
            (
                r#"{"prompt": "q", "responses": ["a", "b", " a "]}"#,
                "responses 0 and 2 are the same reply",
            ),
            (r#"{"prompt": "q", "responses": ["a", ""]}"#, "field `responses.1` is empty"),
            (
                r#"{"prompt": "q", "responses": ["a", 3]}"#,
                "field `responses.1` is a number, not a string or a message",
            ),
            (
                r#"{"prompt": "q", "responses": ["a", "b"], "chosen": "a"}"#,
                "give either `responses` (a ranking) or `chosen`/`rejected` (a pair), not both",
            ),
            (r#"{"responses": ["a", "b"]}"#, "missing field `prompt`"),
            (
                r#"{"prompt": "q", "chosen": "same", "rejected": "same"}"#,
                "chosen and rejected are the same reply",
            ),
            (
                r#"{"prompt": "q", "chosen": "x", "rejected": "y", "margin": "big"}"#,
                "field `margin` is a string, not a finite number",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(pref(json).unwrap_err(), want, "{json}");
        }
    }

    #[test]
    fn gsm8k_reference_is_the_text_after_the_last_marker() {
        assert_eq!(final_answer("x = 3\n#### 18"), Some("18"));
        assert_eq!(final_answer("#### 1 #### 2 \n"), Some("2"));
        assert_eq!(final_answer("no marker"), None);
        assert_eq!(final_answer("####  \n"), None);
    }
}
