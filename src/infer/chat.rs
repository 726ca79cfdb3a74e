//! Talking to a chat model: the prompt for the next assistant turn, history
//! trimmed to the context, and a streamed reply that stops at the template's
//! end marker or a stop string. Shared by `kiln chat` and `kiln serve`.
//!
//! The prompt is the chat template of [`crate::tokenize::chat`] applied to
//! the history, followed by `<|assistant|>`: `[<|bos|>] (<|role|> content
//! <|end|>)* <|assistant|>`. The reply ends when the model draws `<|end|>`
//! (how SFT taught it to stop), `<|endoftext|>`, or starts a new turn.

use super::InferError;
use super::generate::{Finish, GenerateConfig, generate};
use super::kv::Decoder;
use super::sample::SampleConfig;
use super::session::resolve_model_dir;
use crate::backend::Precision;
use crate::model::{Gpt, hf};
use crate::tokenize::{self, Encoder, Specials};
use std::path::{Path, PathBuf};

pub use super::stop::StopStrings;

/// Who says a message: the roles a `chat` artifact holds.
pub use crate::io::chat::Role;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message of `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// The special token ids of the chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Starts the conversation, when the tokenizer has one.
    pub bos: Option<u32>,
    /// `<|system|>`, `<|user|>`, `<|assistant|>`.
    pub roles: [u32; 3],
    /// `<|end|>`: closes every message.
    pub end: u32,
    /// Ids that end a reply: `<|end|>`, `<|endoftext|>`, and the role
    /// tokens (a model that opens a turn has finished its own).
    pub stop: Vec<u32>,
}

impl Template {
    /// The template's ids in a tokenizer, or an error naming the missing token.
    pub fn of(sp: &Specials) -> Result<Self, InferError> {
        let need = |id: Option<u32>, name: &str| {
            id.ok_or_else(|| {
                InferError::Config(format!(
                    "the tokenizer has no `{name}` token, so it cannot render a chat: use a model whose tokenizer was trained with kiln's default special_tokens (and fine-tuned with `sft`)"
                ))
            })
        };
        let roles = [
            need(sp.system, "<|system|>")?,
            need(sp.user, "<|user|>")?,
            need(sp.assistant, "<|assistant|>")?,
        ];
        let end = need(sp.end, "<|end|>")?;
        let mut stop = vec![end];
        stop.extend(sp.eos);
        stop.extend(roles);
        Ok(Template {
            bos: sp.bos,
            roles,
            end,
            stop,
        })
    }

    fn role(&self, r: Role) -> u32 {
        self.roles[r as usize]
    }
}

/// A message's content as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who says it.
    pub role: Role,
    /// The content's ids (no role or end token).
    pub body: Vec<u32>,
}

/// The prompt for the next reply, and what trimming took out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The ids to continue, ending with `<|assistant|>`.
    pub ids: Vec<u32>,
    /// Whole messages dropped from the front of the history (oldest first).
    pub dropped_messages: usize,
    /// Tokens cut from the front of the one message left.
    pub cut_tokens: usize,
}

/// How many prompt tokens leave room for `max_new_tokens` in `block_size`:
/// at least half the context stays for the prompt (as in
/// [`fit_prompt`](super::generate::fit_prompt)); a longer reply then stops
/// at the context's end.
pub fn prompt_budget(block_size: usize, max_new_tokens: usize) -> usize {
    block_size.saturating_sub(max_new_tokens).max(block_size / 2).max(1)
}

/// The prompt for `turns`, trimmed to `budget` tokens.
///
/// While it is too long, the oldest exchange after a leading system message
/// goes (a user message with the replies up to the next user message); the
/// last message is never dropped. When only it is left and the prompt is
/// still too long, the front of its content is cut, since the end of what
/// the user just said matters most. A system message that leaves no room at
/// all is an error.
pub fn fit_turns(tpl: &Template, turns: &[Turn], budget: usize) -> Result<Prompt, InferError> {
    // BOS + each turn's role, body and end + the final `<|assistant|>`.
    let cost = |t: &Turn| t.body.len() + 2;
    let fixed = usize::from(tpl.bos.is_some()) + 1;
    let lead = usize::from(turns.first().is_some_and(|t| t.role == Role::System));
    let mut first = lead;
    let mut total = fixed + turns.iter().map(cost).sum::<usize>();
    while total > budget && turns.len() - first > 1 {
        // The exchange: this message and everything up to the next user message,
        // never the last message.
        let next_user = turns[first + 1..].iter().position(|t| t.role == Role::User).map(|i| first + 1 + i);
        let stop = next_user.unwrap_or(turns.len() - 1).min(turns.len() - 1);
        total -= turns[first..stop].iter().map(cost).sum::<usize>();
        first = stop;
    }
    let mut cut = 0;
    if total > budget {
        let over = total - budget;
        let last = turns.len().saturating_sub(1);
        if turns.len() > lead && turns[last].body.len() > over {
            cut = over;
        } else {
            let system = if lead == 1 { cost(&turns[0]) } else { 0 };
            return Err(InferError::Config(format!(
                "the conversation does not fit the context: even with only the last message ({} tokens) and the system message ({system} tokens) it needs {total} prompt tokens, and {budget} fit (block_size minus the tokens to generate, at most half the context): shorten the system message or ask for fewer tokens",
                turns.get(last).map_or(0, cost),
            )));
        }
    }
    let mut ids = Vec::with_capacity(total - cut);
    ids.extend(tpl.bos);
    for (i, t) in turns[..lead].iter().chain(&turns[first..]).enumerate() {
        ids.push(tpl.role(t.role));
        let is_last = i + 1 == lead + turns.len() - first;
        ids.extend_from_slice(if is_last { &t.body[cut..] } else { &t.body });
        ids.push(tpl.end);
    }
    ids.push(tpl.role(Role::Assistant));
    Ok(Prompt {
        ids,
        dropped_messages: first - lead,
        cut_tokens: cut,
    })
}

/// How a reply is generated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyConfig {
    /// Most tokens to generate; the reply also ends when the context is full.
    pub max_new_tokens: usize,
    /// Temperature, top-k, top-p and seed.
    pub sampling: SampleConfig,
    /// Strings that end the reply (not included in it), as OpenAI's `stop`.
    pub stop: Vec<String>,
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEnd {
    /// The model ended its turn, or a stop string appeared.
    Stop,
    /// `max_new_tokens` or the context ran out.
    Length,
    /// The text callback said stop (a closed connection, Ctrl-C).
    Cancelled,
}

/// A finished reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The text, as streamed.
    pub text: String,
    /// Tokens generated (the end token excluded).
    pub tokens: usize,
    /// Why it ended.
    pub end: ReplyEnd,
}

/// A chat model loaded from a model directory: weights, tokenizer, template.
pub struct ChatModel {
    /// The model's name: its directory's name (a pipeline's node id).
    pub name: String,
    /// The model directory.
    pub dir: PathBuf,
    /// The weights.
    pub model: Gpt,
    /// The tokenizer.
    pub enc: Encoder,
    /// The chat template's ids.
    pub template: Template,
}

impl ChatModel {
    /// Loads `path` (a model directory or a file in it); errors say what is
    /// missing, including a tokenizer without the chat tokens.
    pub fn load(path: &Path) -> Result<Self, InferError> {
        let dir = resolve_model_dir(path)?;
        let tok = tokenize::load(&dir.join("tokenizer.json")).map_err(InferError::Io)?;
        let template = Template::of(&Specials::of(&tok))?;
        // The decoder keeps its own weight copies; this model's backend is unused.
        let model = hf::load(&dir, Precision::F32)?;
        let vocab = model.config().vocab_size;
        if let Some(bad) = template.roles.iter().chain([&template.end]).find(|&&id| id as usize >= vocab) {
            return Err(InferError::Io(format!(
                "{}: tokenizer.json gives a chat token id {bad}, outside the model's vocab_size {vocab}: the tokenizer does not belong to this model",
                dir.display()
            )));
        }
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        let name = canonical
            .file_name()
            .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
        Ok(ChatModel {
            name,
            dir,
            model,
            enc: Encoder::new(tok),
            template,
        })
    }

    /// The context length.
    pub fn block_size(&self) -> usize {
        self.model.config().block_size
    }

    /// A decoder for one conversation at a time.
    pub fn decoder(&self, precision: Precision) -> Result<Decoder<'_>, InferError> {
        Decoder::new(&self.model, 1, self.block_size(), precision)
    }

    /// Encodes each message's content.
    pub fn turns(&self, messages: &[Message]) -> Result<Vec<Turn>, InferError> {
        let vocab = self.model.config().vocab_size;
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let body = self
                    .enc
                    .encode(&m.content)
                    .map_err(|e| InferError::Io(format!("message {i}: {e}")))?;
                if let Some(bad) = body.iter().find(|&&t| t as usize >= vocab) {
                    return Err(InferError::Io(format!(
                        "message {i}: the tokenizer gives id {bad}, outside the model's vocab_size {vocab}"
                    )));
                }
                Ok(Turn { role: m.role, body })
            })
            .collect()
    }

    /// The prompt for the next reply to `messages`, trimmed so that it and
    /// `max_new_tokens` fit the context.
    pub fn prompt(&self, messages: &[Message], max_new_tokens: usize) -> Result<Prompt, InferError> {
        fit_turns(
            &self.template,
            &self.turns(messages)?,
            prompt_budget(self.block_size(), max_new_tokens),
        )
    }

    /// Generates a reply to `prompt`, calling `on_text` with each piece of
    /// text as soon as it is whole (no split UTF-8 characters, nothing that
    /// could still turn out to be a stop string); `on_text` returning
    /// `false` cancels the reply.
    pub fn reply(
        &self,
        dec: &mut Decoder<'_>,
        prompt: &[u32],
        cfg: &ReplyConfig,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Reply, InferError> {
        let gen_cfg = GenerateConfig {
            max_new_tokens: cfg.max_new_tokens,
            sampling: cfg.sampling.clone(),
            stop: self.template.stop.clone(),
        };
        let mut stream = self.enc.hf.decode_stream(false);
        let mut stops = StopStrings::new(&cfg.stop);
        let mut text = String::new();
        let mut failure = None;
        let (mut hit_stop, mut cancelled) = (false, false);
        let out = generate(dec, &[prompt.to_vec()], &gen_cfg, |_, id| {
            let piece = match stream.step(id) {
                Ok(Some(p)) => p,
                // Part of a multi-byte character: it comes with the next token.
                Ok(None) => return true,
                Err(e) => {
                    failure = Some(InferError::Io(format!("decoding token {id}: {e}")));
                    return false;
                }
            };
            let (ready, stopped) = stops.push(&piece);
            hit_stop = stopped;
            if !ready.is_empty() {
                text.push_str(&ready);
                if !on_text(&ready) {
                    cancelled = true;
                    return false;
                }
            }
            !stopped
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let g = out
            .into_iter()
            .next()
            .ok_or_else(|| InferError::Shape("generation returned no sequence".into()))?;
        let end = if cancelled {
            ReplyEnd::Cancelled
        } else if hit_stop {
            ReplyEnd::Stop
        } else {
            match g.finish {
                Finish::Stop(_) => ReplyEnd::Stop,
                Finish::Length | Finish::Context => ReplyEnd::Length,
                Finish::Cancelled => ReplyEnd::Cancelled,
            }
        };
        if !cancelled && !hit_stop {
            // Text held back as a possible stop string's start is text after all.
            let rest = stops.finish();
            if !rest.is_empty() {
                text.push_str(&rest);
                if !on_text(&rest) {
                    return Ok(Reply {
                        text,
                        tokens: g.tokens.len(),
                        end: ReplyEnd::Cancelled,
                    });
                }
            }
        }
        Ok(Reply {
            text,
            tokens: g.tokens.len(),
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids: bos 1, system 2, user 3, assistant 4, end 5; content ids ≥ 10.
    fn tpl() -> Template {
        Template {
            bos: Some(1),
            roles: [2, 3, 4],
            end: 5,
            stop: vec![5],
        }
    }

    fn turn(role: Role, n: usize, first: u32) -> Turn {
        Turn {
            role,
            body: (first..first + n as u32).collect(),
        }
    }

    #[test]
    fn a_history_that_fits_renders_the_template_then_assistant() {
        let turns = [
            turn(Role::System, 2, 10),
            turn(Role::User, 3, 20),
            turn(Role::Assistant, 1, 30),
            turn(Role::User, 2, 40),
        ];
        let p = fit_turns(&tpl(), &turns, 100).unwrap();
        assert_eq!(p.ids, vec![1, 2, 10, 11, 5, 3, 20, 21, 22, 5, 4, 30, 5, 3, 40, 41, 5, 4]);
        assert_eq!((p.dropped_messages, p.cut_tokens), (0, 0));
        // Exactly at the budget still fits.
        assert_eq!(fit_turns(&tpl(), &turns, 18).unwrap().ids.len(), 18);
    }

    #[test]
    fn oldest_exchanges_go_first_and_the_system_message_stays() {
        let turns = [
            turn(Role::System, 2, 10),
            turn(Role::User, 3, 20),
            turn(Role::Assistant, 4, 30),
            turn(Role::User, 2, 40),
            turn(Role::Assistant, 2, 50),
            turn(Role::User, 1, 60),
        ];
        // Whole: 1 + 4 + 5 + 6 + 4 + 4 + 3 + 1 = 28. Dropping the first exchange
        // (user + assistant, 11 tokens) leaves 17.
        let p = fit_turns(&tpl(), &turns, 17).unwrap();
        assert_eq!(p.ids, vec![1, 2, 10, 11, 5, 3, 40, 41, 5, 4, 50, 51, 5, 3, 60, 5, 4]);
        assert_eq!((p.dropped_messages, p.cut_tokens), (2, 0));
        // One token less: the second exchange goes too, whole.
        let p = fit_turns(&tpl(), &turns, 16).unwrap();
        assert_eq!(p.ids, vec![1, 2, 10, 11, 5, 3, 60, 5, 4]);
        assert_eq!(p.dropped_messages, 4);
    }

    #[test]
    fn without_a_system_message_the_last_message_is_kept() {
        // Consecutive user messages are separate exchanges; the last one stays
        // even when it is the assistant's (a prefill).
        let turns = [turn(Role::User, 3, 20), turn(Role::User, 3, 30), turn(Role::Assistant, 2, 40)];
        let p = fit_turns(&tpl(), &turns, 11).unwrap();
        assert_eq!(p.ids, vec![1, 3, 30, 31, 32, 5, 4, 40, 41, 5, 4]);
        assert_eq!(p.dropped_messages, 1);
        let p = fit_turns(&tpl(), &turns, 10).unwrap();
        assert_eq!(p.ids, vec![1, 4, 40, 41, 5, 4]);
        assert_eq!(p.dropped_messages, 2);
    }

    #[test]
    fn a_single_long_message_loses_its_front() {
        let turns = [
            turn(Role::System, 1, 10),
            turn(Role::User, 3, 20),
            turn(Role::Assistant, 1, 30),
            turn(Role::User, 10, 40),
        ];
        // bos + system(3) + user(12) + assistant = 17 > 12: cut 5 tokens of the last message.
        let p = fit_turns(&tpl(), &turns, 12).unwrap();
        assert_eq!(p.ids, vec![1, 2, 10, 5, 3, 45, 46, 47, 48, 49, 5, 4]);
        assert_eq!((p.dropped_messages, p.cut_tokens), (2, 5));
    }

    #[test]
    fn a_system_message_that_fills_the_context_is_an_error() {
        let turns = [turn(Role::System, 20, 10), turn(Role::User, 2, 40)];
        let e = fit_turns(&tpl(), &turns, 12).unwrap_err().to_string();
        assert!(
            e.contains("does not fit the context") && e.contains("system message (22 tokens)"),
            "{e}"
        );
        // A lone system message cannot be cut either.
        assert!(fit_turns(&tpl(), &turns[..1], 12).is_err());
    }

    #[test]
    fn the_budget_leaves_room_for_the_reply_but_half_the_context_for_the_prompt() {
        assert_eq!(prompt_budget(1024, 256), 768);
        assert_eq!(prompt_budget(1024, 1000), 512);
        assert_eq!(prompt_budget(1, 10), 1);
    }

    #[test]
    fn roles_parse_by_name() {
        assert_eq!(Role::parse("developer").unwrap(), Role::System);
        assert_eq!(Role::parse("assistant").unwrap().as_str(), "assistant");
        assert!(Role::parse("tool").unwrap_err().contains("unknown role `tool`"));
    }
}
