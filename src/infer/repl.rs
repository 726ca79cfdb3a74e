//! `kiln chat`: a conversation in the terminal. Lines from stdin (piped
//! input works the same, for scripts and tests), the reply streamed to
//! stdout as it is generated, notes and errors on stderr; `/reset`,
//! `/temp X`, `/quit`, EOF ends.

use super::InferError;
use super::chat::{ChatModel, Message, ReplyConfig, ReplyEnd, Role};
use super::sample::SampleConfig;
use crate::backend::Precision;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `kiln chat` was asked for.
#[derive(Debug, Clone)]
pub struct ChatArgs {
    /// The model directory.
    pub model: PathBuf,
    /// A system message that starts (and survives trimming of) the conversation.
    pub system: Option<String>,
    /// Most tokens per reply.
    pub max_new_tokens: usize,
    /// Sampling; the seed of turn `i` is `seed + i`, so a replayed
    /// conversation gets the same replies.
    pub sampling: SampleConfig,
    /// Weight precision of the decoder.
    pub precision: Precision,
    /// Print a `> ` prompt before each line (when stdin is a terminal).
    pub interactive: bool,
}

/// Ctrl-C during a reply stops the reply; at the prompt it ends the chat.
#[derive(Debug, Default)]
pub struct Interrupt {
    generating: AtomicBool,
    cancel: AtomicBool,
}

impl Interrupt {
    /// Called from the signal handler: `true` when a reply was stopped,
    /// `false` when nothing was generating and the caller should exit.
    pub fn on_ctrl_c(&self) -> bool {
        if self.generating.load(Ordering::SeqCst) {
            self.cancel.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

/// Totals of one chat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatSummary {
    /// Replies generated.
    pub replies: usize,
    /// Tokens generated over all replies.
    pub tokens: usize,
}

/// The highest `/temp` accepted (OpenAI's range is 0 to 2 as well).
pub const MAX_TEMPERATURE: f32 = 2.0;

/// Parses a `/temp` value: a number from 0 (greedy) to [`MAX_TEMPERATURE`].
pub fn parse_temperature(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(t) if (0.0..=MAX_TEMPERATURE).contains(&t) => Ok(t),
        _ => Err(format!(
            "/temp wants a number from 0 (greedy) to {MAX_TEMPERATURE}, e.g. `/temp 0.7`; got `{}`",
            s.trim()
        )),
    }
}

const HELP: &str =
    "commands: /reset (forget the conversation), /temp X (0 to 2; 0 = greedy), /quit; start a message with // to send a literal /";

/// Runs the chat until `/quit` or the end of `input`.
pub fn run(
    args: &ChatArgs,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    note: &mut dyn Write,
    interrupt: &Interrupt,
) -> Result<ChatSummary, InferError> {
    args.sampling.check()?;
    if args.max_new_tokens == 0 {
        return Err(InferError::Config("--max-new-tokens must be at least 1".into()));
    }
    let model = ChatModel::load(&args.model)?;
    let mut dec = model.decoder(args.precision)?;
    let w = |e: std::io::Error| InferError::Io(format!("writing the chat: {e}"));
    writeln!(note, "chatting with {} (context {} tokens); {HELP}", model.name, model.block_size()).map_err(w)?;
    let system: Vec<Message> = args.system.iter().map(|s| Message::new(Role::System, s.clone())).collect();
    let mut history = system.clone();
    let mut sampling = args.sampling.clone();
    let mut summary = ChatSummary::default();
    let mut line = String::new();
    loop {
        if args.interactive {
            write!(out, "> ").map_err(w)?;
            out.flush().map_err(w)?;
        }
        line.clear();
        if input
            .read_line(&mut line)
            .map_err(|e| InferError::Io(format!("reading stdin: {e}")))?
            == 0
        {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let content = match command(text) {
            Command::Say(s) => s,
            Command::Quit => break,
            Command::Reset => {
                history.clone_from(&system);
                writeln!(note, "(conversation cleared)").map_err(w)?;
                continue;
            }
            Command::Temp(Ok(t)) => {
                sampling.temperature = t;
                writeln!(note, "(temperature {t})").map_err(w)?;
                continue;
            }
            Command::Temp(Err(e)) | Command::Unknown(e) => {
                writeln!(note, "error: {e}").map_err(w)?;
                continue;
            }
            Command::Help => {
                writeln!(note, "{HELP}").map_err(w)?;
                continue;
            }
        };
        history.push(Message::new(Role::User, content));
        let prompt = match model.prompt(&history, args.max_new_tokens) {
            Ok(p) => p,
            Err(e) => {
                history.pop();
                writeln!(note, "error: {e}").map_err(w)?;
                continue;
            }
        };
        if prompt.dropped_messages > 0 || prompt.cut_tokens > 0 {
            writeln!(
                note,
                "(context full: left out the {} oldest message(s){})",
                prompt.dropped_messages,
                if prompt.cut_tokens > 0 {
                    format!(" and the first {} tokens of your message", prompt.cut_tokens)
                } else {
                    String::new()
                }
            )
            .map_err(w)?;
        }
        let cfg = ReplyConfig {
            max_new_tokens: args.max_new_tokens,
            sampling: SampleConfig {
                seed: sampling.seed.wrapping_add(summary.replies as u64),
                ..sampling.clone()
            },
            stop: Vec::new(),
        };
        interrupt.cancel.store(false, Ordering::SeqCst);
        interrupt.generating.store(true, Ordering::SeqCst);
        let mut failure = None;
        let reply = model.reply(&mut dec, &prompt.ids, &cfg, |piece| {
            if let Err(e) = out.write_all(piece.as_bytes()).and_then(|_| out.flush()) {
                failure = Some(w(e));
                return false;
            }
            !interrupt.cancel.load(Ordering::SeqCst)
        });
        interrupt.generating.store(false, Ordering::SeqCst);
        let reply = reply?;
        if let Some(e) = failure {
            return Err(e);
        }
        writeln!(out).map_err(w)?;
        out.flush().map_err(w)?;
        match reply.end {
            ReplyEnd::Length => writeln!(note, "(reply cut at {} tokens)", reply.tokens).map_err(w)?,
            ReplyEnd::Cancelled => writeln!(note, "(stopped)").map_err(w)?,
            ReplyEnd::Stop => {}
        }
        summary.replies += 1;
        summary.tokens += reply.tokens;
        history.push(Message::new(Role::Assistant, reply.text));
    }
    writeln!(note, "replies: {}, tokens: {}", summary.replies, summary.tokens).map_err(w)?;
    Ok(summary)
}

enum Command {
    Say(String),
    Quit,
    Reset,
    Temp(Result<f32, String>),
    Help,
    Unknown(String),
}

fn command(line: &str) -> Command {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("//") {
        return Command::Say(format!("/{rest}"));
    }
    if !t.starts_with('/') {
        return Command::Say(line.to_string());
    }
    let (name, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    match name {
        "/quit" | "/exit" => Command::Quit,
        "/reset" | "/clear" => Command::Reset,
        "/temp" => Command::Temp(parse_temperature(arg)),
        "/help" => Command::Help,
        other => Command::Unknown(format!("unknown command `{other}`; {HELP}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_are_checked() {
        assert_eq!(parse_temperature(" 0.7").unwrap(), 0.7);
        assert_eq!(parse_temperature("0").unwrap(), 0.0);
        for bad in ["-1", "2.5", "warm", "", "NaN"] {
            assert!(parse_temperature(bad).unwrap_err().contains("/temp wants"), "{bad}");
        }
    }

    #[test]
    fn commands_are_recognised_and_slashes_can_be_sent() {
        assert!(matches!(command("/quit"), Command::Quit));
        assert!(matches!(command("  /reset "), Command::Reset));
        assert!(matches!(command("/temp 1.5"), Command::Temp(Ok(t)) if t == 1.5));
        assert!(matches!(command("/temp"), Command::Temp(Err(_))));
        assert!(matches!(command("/nope"), Command::Unknown(e) if e.contains("`/nope`")));
        assert!(matches!(command("//etc/hosts?"), Command::Say(s) if s == "/etc/hosts?"));
        assert!(matches!(command("hello /temp"), Command::Say(s) if s == "hello /temp"));
    }
}
