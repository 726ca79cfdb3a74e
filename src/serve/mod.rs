//! `kiln serve`: a model behind an OpenAI-compatible HTTP API, so that
//! OpenAI clients, `curl` and chat UIs can talk to it.
//!
//! - `GET /v1/models` lists the one model served (named after its directory).
//! - `POST /v1/chat/completions` answers a conversation, whole or streamed
//!   as server-sent events.
//!
//! A few worker threads take requests (tiny_http, no async runtime);
//! replies are generated one at a time behind a mutex around the single KV
//! cache — on CPU a second concurrent generation would only halve the speed
//! of both — while model lists and errors are answered at once. A streamed
//! reply stops as soon as writing to its client fails. One log line per
//! request goes to stderr.

pub mod http;
pub mod openai;

use crate::backend::Precision;
use crate::infer::chat::{ChatModel, ReplyConfig, ReplyEnd, fit_turns, prompt_budget};
use crate::infer::{Decoder, InferError, SampleConfig};
use http::{EventStream, read_body, respond_error, respond_json};
use openai::{ApiError, ChatRequest, Head, Usage};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tiny_http::{Method, Request, Server};

/// What `kiln serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The model directory.
    pub model: PathBuf,
    /// Address to bind.
    pub host: String,
    /// Port; 0 picks a free one.
    pub port: u16,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Requests handled at once.
    pub workers: usize,
    /// Weight precision of the decoder.
    pub precision: Precision,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] InferError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {why} (is another server on that port? pick another with --port, or 0 for any free one)")]
    Bind {
        /// `host:port`.
        addr: String,
        /// The OS's reason.
        why: String,
    },
}

/// Parses a size: a number of bytes, optionally with a unit (`KiB`, `MiB`,
/// `GiB`, or `KB`, `MB`, `GB` in powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("`{s}`: want a size like 1MiB, 64KiB or 20000 (bytes)")),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}`: want a size like 1MiB, 64KiB or 20000 (bytes)"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("`{s}` is too large"))?;
    usize::try_from(bytes).map_err(|_| format!("`{s}` is too large"))
}

/// What every worker shares.
struct State<'m> {
    model: &'m ChatModel,
    /// The one KV cache; a reply holds it from its first token to its last.
    engine: Mutex<Decoder<'m>>,
    max_body: usize,
    stop: &'m AtomicBool,
    next_id: AtomicU64,
    started: u64,
}

/// What the log line says about a request.
struct Outcome {
    status: u16,
    usage: Option<Usage>,
    note: String,
}

impl Outcome {
    fn plain(status: u16) -> Self {
        Outcome {
            status,
            usage: None,
            note: String::new(),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Loads the model, listens, prints `listening on http://ADDR` as stdout's
/// first line, and serves until `stop` is set (Ctrl-C).
pub fn run(opts: &ServeOptions, stop: &AtomicBool) -> Result<(), ServeError> {
    let model = ChatModel::load(&opts.model)?;
    let engine = Mutex::new(model.decoder(opts.precision)?);
    let addr = format!("{}:{}", opts.host, opts.port);
    let server = Server::http(addr.as_str()).map_err(|e| ServeError::Bind {
        addr: addr.clone(),
        why: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().map_or(addr, |a| a.to_string());
    println!("listening on http://{bound}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    eprintln!(
        "serving {} (context {} tokens) at http://{bound}/v1 — POST /v1/chat/completions, GET /v1/models; Ctrl-C stops",
        model.name,
        model.block_size()
    );
    let state = State {
        model: &model,
        engine,
        max_body: opts.max_body,
        stop,
        next_id: AtomicU64::new(1),
        started: unix_now(),
    };
    std::thread::scope(|s| {
        for _ in 0..opts.workers.max(1) {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(rq)) => handle(&state, rq),
                        Ok(None) => {}
                        Err(e) => {
                            eprintln!("error: receiving requests: {e}");
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    eprintln!("stopped");
    Ok(())
}

/// Routes one request and logs it.
fn handle(st: &State, mut rq: Request) {
    let start = Instant::now();
    let method = rq.method().clone();
    let url = rq.url().to_string();
    let path = url.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
    let out = match (&method, path.as_str()) {
        // Any body over the limit is refused before reading it, whatever the route.
        _ if rq.body_length().is_some_and(|n| n > st.max_body) => {
            let n = rq.body_length().unwrap_or(0);
            fail(rq, &http::too_large(n, st.max_body), &[])
        }
        (Method::Get, "/v1/models") => send(rq, 200, openai::model_list(&st.model.name, st.started).to_string()),
        (Method::Get, p) if p.strip_prefix("/v1/models/") == Some(st.model.name.as_str()) => {
            send(rq, 200, openai::model(&st.model.name, st.started).to_string())
        }
        (Method::Get, p) if p.starts_with("/v1/models/") => {
            let e = ApiError::new(404, format!("no model `{}` here; this server serves `{}`", &p[11..], st.model.name))
                .with_code("model_not_found");
            fail(rq, &e, &[])
        }
        (Method::Post, "/v1/chat/completions") => match read_body(&mut rq, st.max_body).and_then(|b| openai::parse_chat_request(&b)) {
            Ok(req) => complete(st, rq, req),
            Err(e) => fail(rq, &e, &[]),
        },
        (m, "/v1/models" | "/v1/chat/completions") => {
            let allow = if path == "/v1/models" { "GET" } else { "POST" };
            let e = ApiError::new(405, format!("{m} is not allowed on {path}; use {allow}"));
            fail(rq, &e, &[("Allow", allow)])
        }
        (m, _) => {
            let e = ApiError::new(
                404,
                format!("no route {m} {url}; this server answers GET /v1/models and POST /v1/chat/completions"),
            );
            fail(rq, &e, &[])
        }
    };
    let tokens = out
        .usage
        .map_or_else(String::new, |u| format!(" {}+{} tokens", u.prompt, u.completion));
    eprintln!(
        "{method} {url} {}{tokens} {} ms{}",
        out.status,
        start.elapsed().as_millis(),
        out.note
    );
}

fn send(rq: Request, status: u16, body: String) -> Outcome {
    let mut o = Outcome::plain(status);
    if let Err(e) = respond_json(rq, status, body, &[]) {
        o.note = format!(" (client gone: {e})");
    }
    o
}

fn fail(rq: Request, e: &ApiError, extra: &[(&str, &str)]) -> Outcome {
    let mut o = Outcome::plain(e.status);
    o.note = format!(" ({})", e.message);
    if let Err(w) = respond_error(rq, e, extra) {
        o.note.push_str(&format!(" (client gone: {w})"));
    }
    o
}

/// Answers a chat completion, whole or streamed.
fn complete(st: &State, rq: Request, req: ChatRequest) -> Outcome {
    let model = st.model;
    let block = model.block_size();
    // Without max_tokens the reply may run to the end of the context.
    let budget = prompt_budget(block, req.max_tokens.unwrap_or(1));
    let prompt = match model.turns(&req.messages).and_then(|t| fit_turns(&model.template, &t, budget)) {
        Ok(p) => p,
        Err(InferError::Config(m)) => return fail(rq, &ApiError::field("messages", m).with_code("context_length_exceeded"), &[]),
        Err(e) => return fail(rq, &ApiError::field("messages", e.to_string()), &[]),
    };
    let n = st.next_id.fetch_add(1, Ordering::SeqCst);
    let id = format!("chatcmpl-{}-{n}", st.started);
    let seed = req.seed.unwrap_or_else(|| {
        // No seed asked for: a different draw per request, as OpenAI's.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(n, |d| d.as_nanos() as u64 ^ n.rotate_left(32))
    });
    let cfg = ReplyConfig {
        max_new_tokens: req.max_tokens.unwrap_or(block),
        sampling: SampleConfig {
            temperature: req.temperature,
            top_k: 0,
            top_p: req.top_p,
            seed,
        },
        stop: req.stop.clone(),
    };
    let head = Head {
        id: &id,
        created: unix_now(),
        model: &model.name,
    };
    let mut note = if prompt.dropped_messages > 0 || prompt.cut_tokens > 0 {
        format!(
            " (trimmed: {} message(s) dropped, {} token(s) cut)",
            prompt.dropped_messages, prompt.cut_tokens
        )
    } else {
        String::new()
    };
    let usage = |completion| Usage {
        prompt: prompt.ids.len(),
        completion,
    };
    if !req.stream {
        let reply = {
            let mut dec = st.engine.lock().unwrap_or_else(|p| p.into_inner());
            model.reply(&mut dec, &prompt.ids, &cfg, |_| !st.stop.load(Ordering::SeqCst))
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return fail(rq, &ApiError::new(500, format!("generation failed: {e}")), &[]),
        };
        if reply.end == ReplyEnd::Cancelled {
            return fail(
                rq,
                &ApiError::new(503, "the server is shutting down; the reply was not finished"),
                &[],
            );
        }
        let u = usage(reply.tokens);
        let mut o = send(rq, 200, openai::completion(&head, &reply.text, reply.end, u).to_string());
        o.usage = Some(u);
        o.note.insert_str(0, &note);
        return o;
    }
    let mut events = match EventStream::start(rq) {
        Ok(s) => s,
        Err(e) => {
            return Outcome {
                status: 200,
                usage: None,
                note: format!(" (client gone before the stream: {e})"),
            };
        }
    };
    let chunk = |delta, finish| openai::chunk(&head, delta, finish, req.include_usage).to_string();
    let mut broken = events.event(&chunk(json!({"role": "assistant", "content": ""}), None)).err();
    let reply = if broken.is_none() {
        let mut dec = st.engine.lock().unwrap_or_else(|p| p.into_inner());
        model.reply(&mut dec, &prompt.ids, &cfg, |piece| {
            if let Err(e) = events.event(&chunk(json!({ "content": piece }), None)) {
                broken = Some(e);
                return false;
            }
            !st.stop.load(Ordering::SeqCst)
        })
    } else {
        Err(InferError::Io("client gone".into()))
    };
    let mut out = Outcome {
        status: 200,
        usage: None,
        note: String::new(),
    };
    match (reply, broken) {
        (r, Some(e)) => {
            let n = r.map_or(0, |r| r.tokens);
            note.push_str(&format!(" (client disconnected after {n} tokens: {e}; generation stopped)"));
        }
        (Err(e), None) => {
            // Headers are gone: the error can only be an event.
            let err = ApiError::new(500, format!("generation failed: {e}"));
            let _ = events.event(&err.body());
            note.push_str(&format!(" (generation failed: {e})"));
        }
        (Ok(r), None) => {
            out.usage = Some(usage(r.tokens));
            let mut tail = events.event(&chunk(json!({}), Some(openai::finish_reason(r.end))));
            if req.include_usage {
                tail = tail.and_then(|_| events.event(&openai::usage_chunk(&head, usage(r.tokens)).to_string()));
            }
            let tail = tail.and_then(|_| events.event("[DONE]")).and_then(|_| events.finish());
            if let Err(e) = tail {
                note.push_str(&format!(" (client gone at the end: {e})"));
            }
            if r.end == ReplyEnd::Cancelled {
                note.push_str(" (stopped: shutting down)");
            }
        }
    }
    out.note = format!(" stream{note}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert_eq!(parse_size("20000"), Ok(20000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        for bad in ["", "MiB", "1.5MiB", "1 parsec", "-3"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
