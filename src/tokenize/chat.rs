//! The chat template and its loss mask, and document framing.
//!
//! A conversation renders as `[<|bos|>] (<|role|> content <|end|>)*`. The
//! model is trained only on what the assistant says: the loss mask is 1 on an
//! assistant message's content tokens and its closing `<|end|>` (so it learns
//! to stop), 0 on role tokens, user and system text and BOS.

use super::{Encoder, Specials};

/// Token ids, and the loss mask for chats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The ids.
    pub ids: Vec<u32>,
    /// 1 where the token is trained on; `None` for plain documents.
    pub mask: Option<Vec<u8>>,
}

fn need(id: Option<u32>, token: &str) -> Result<u32, String> {
    id.ok_or_else(|| format!("the tokenizer has no `{token}` token; train it with kiln's default special_tokens"))
}

/// The token that opens a message of `role` (message `i`, for the error).
fn role_id(sp: &Specials, role: &str, i: usize) -> Result<u32, String> {
    match role {
        "system" => need(sp.system, "<|system|>"),
        "user" => need(sp.user, "<|user|>"),
        "assistant" => need(sp.assistant, "<|assistant|>"),
        other => Err(format!("message {i} has unknown role `{other}` (want system, user or assistant)")),
    }
}

/// `[bos] text [eos]`.
pub fn encode_document(tok: &Encoder, sp: &Specials, text: &str, bos: bool, eos: bool) -> Result<Encoded, String> {
    let mut ids = Vec::with_capacity(text.len() / 3 + 2);
    if bos {
        ids.push(need(sp.bos, "<|bos|>")?);
    }
    ids.extend(tok.encode(text)?);
    if eos {
        ids.push(need(sp.eos, "<|endoftext|>")?);
    }
    Ok(Encoded { ids, mask: None })
}

/// Renders `messages` (role, content) with the chat template.
pub fn encode_chat(tok: &Encoder, sp: &Specials, messages: &[(&str, &str)], bos: bool) -> Result<Encoded, String> {
    if !messages.iter().any(|(r, _)| *r == "assistant") {
        return Err("no assistant turn: nothing to train on".into());
    }
    let end = need(sp.end, "<|end|>")?;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    if bos {
        ids.push(need(sp.bos, "<|bos|>")?);
        mask.push(0);
    }
    for (i, (role, content)) in messages.iter().enumerate() {
        let role_id = role_id(sp, role, i)?;
        let train = u8::from(*role == "assistant");
        ids.push(role_id);
        mask.push(0);
        let body = tok.encode(content)?;
        mask.extend(std::iter::repeat_n(train, body.len()));
        ids.extend(body);
        ids.push(end);
        mask.push(train);
    }
    Ok(Encoded { ids, mask: Some(mask) })
}

/// Renders `messages` (a conversation that ends with a user turn) for
/// generation: the template of every message, then `<|assistant|>`, so the
/// model's next tokens are the assistant's reply (ended by `<|end|>`).
pub fn encode_prompt(tok: &Encoder, sp: &Specials, messages: &[(&str, &str)], bos: bool) -> Result<Vec<u32>, String> {
    let end = need(sp.end, "<|end|>")?;
    let mut ids = Vec::new();
    if bos {
        ids.push(need(sp.bos, "<|bos|>")?);
    }
    for (i, (role, content)) in messages.iter().enumerate() {
        ids.push(role_id(sp, role, i)?);
        ids.extend(tok.encode(content)?);
        ids.push(end);
    }
    ids.push(need(sp.assistant, "<|assistant|>")?);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::train::{TrainConfig, train};
    use crate::tokenize::{Tokenizer, encode};

    fn tokenizer() -> Tokenizer {
        let cfg = TrainConfig {
            vocab_size: 300,
            split: "gpt4".into(),
            special_tokens: crate::spec::ops::DEFAULT_SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect(),
            min_frequency: 1,
        };
        let text = "Hi there. What is two plus two? Two plus two is four. Thanks!".to_string();
        train(&cfg, std::iter::repeat_n(text, 20)).unwrap()
    }

    #[test]
    fn a_prompt_is_the_chat_up_to_the_assistant_token() {
        let tok = tokenizer();
        let sp = Specials::of(&tok);
        let enc = Encoder::new(tok);
        let msgs = [("system", "Be brief."), ("user", "What is two plus two?")];
        let p = encode_prompt(&enc, &sp, &msgs, true).unwrap();
        let full = encode_chat(&enc, &sp, &[msgs[0], msgs[1], ("assistant", "Four.")], true).unwrap();
        assert_eq!(p[..], full.ids[..p.len()]);
        assert_eq!(p.last(), sp.assistant.as_ref());
        // The tokens after the prompt are exactly the trained ones.
        let mask = full.mask.unwrap();
        assert!(mask[..p.len()].iter().all(|&m| m == 0) && mask[p.len()..].iter().all(|&m| m == 1));
        assert!(encode_prompt(&enc, &sp, &[("robot", "hi")], false).unwrap_err().contains("robot"));
    }

    #[test]
    fn the_mask_covers_assistant_content_and_its_end_token_by_token() {
        let tok = tokenizer();
        let sp = Specials::of(&tok);
        let enc = Encoder::new(tok.clone());
        assert!(enc.slow_because.is_none(), "{:?}", enc.slow_because);
        let msgs = [
            ("system", "Be brief."),
            ("user", "What is two plus two?"),
            ("assistant", "Four."),
            ("user", "Thanks!"),
            ("assistant", "Hi."),
        ];
        let e = encode_chat(&enc, &sp, &msgs, true).unwrap();
        let mask = e.mask.clone().unwrap();
        assert_eq!(e.ids.len(), mask.len());
        // Walk the rendering token by token and say what each one is.
        let mut want_ids = vec![sp.bos.unwrap()];
        let mut want_mask = vec![0u8];
        for (role, content) in msgs {
            let role_id = tok.token_to_id(&format!("<|{role}|>")).unwrap();
            let body = encode(&tok, content).unwrap();
            let t = u8::from(role == "assistant");
            want_ids.push(role_id);
            want_mask.push(0);
            want_mask.extend(std::iter::repeat_n(t, body.len()));
            want_ids.extend(body);
            want_ids.push(sp.end.unwrap());
            want_mask.push(t);
        }
        assert_eq!(e.ids, want_ids);
        assert_eq!(mask, want_mask);
        // Spelled out: the trained tokens decode to exactly the assistant text and its ends.
        let trained: Vec<u32> = e.ids.iter().zip(&mask).filter(|(_, m)| **m == 1).map(|(i, _)| *i).collect();
        assert_eq!(tok.decode(&trained, false).unwrap(), "Four.<|end|>Hi.<|end|>");
        let untrained: Vec<u32> = e.ids.iter().zip(&mask).filter(|(_, m)| **m == 0).map(|(i, _)| *i).collect();
        assert_eq!(
            tok.decode(&untrained, false).unwrap(),
            "<|bos|><|system|>Be brief.<|end|><|user|>What is two plus two?<|end|><|assistant|><|user|>Thanks!<|end|><|assistant|>"
        );
    }

    #[test]
    fn bad_chats_are_refused_with_a_reason() {
        let tok = tokenizer();
        let sp = Specials::of(&tok);
        let tok = Encoder::new(tok);
        assert!(
            encode_chat(&tok, &sp, &[("user", "hi")], true)
                .unwrap_err()
                .contains("no assistant turn")
        );
        let e = encode_chat(&tok, &sp, &[("robot", "x"), ("assistant", "y")], true).unwrap_err();
        assert!(e.contains("unknown role `robot`"), "{e}");
        let d = encode_document(&tok, &sp, "Hi there.", true, true).unwrap();
        assert_eq!(d.ids[0], sp.bos.unwrap());
        assert_eq!(*d.ids.last().unwrap(), sp.eos.unwrap());
    }
}
