//! OpenAI's chat completions API: the request fields kiln honours, the
//! response, stream chunk and model-list objects, and the error shape
//! `{"error": {"message", "type", "param", "code"}}` — as documented in the
//! OpenAI API reference (`POST /v1/chat/completions`, `GET /v1/models`).

use crate::infer::chat::{Message, ReplyEnd, Role};
use serde_json::{Value, json};

/// An error answered in OpenAI's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What was wrong and how to fix it.
    pub message: String,
    /// The request field at fault, as a JSON path (`messages[1].role`).
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`), when there is one.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A client error.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 about one request field.
    pub fn field(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            ..ApiError::new(400, message)
        }
    }

    /// The same error with a code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// OpenAI's error type: client errors are `invalid_request_error`.
    pub fn kind(&self) -> &'static str {
        if self.status >= 500 {
            "server_error"
        } else {
            "invalid_request_error"
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        json!({"error": {"message": self.message, "type": self.kind(), "param": self.param, "code": self.code}}).to_string()
    }
}

/// A validated `POST /v1/chat/completions` request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// `max_completion_tokens`, else `max_tokens`; `None` = up to the context's end.
    pub max_tokens: Option<usize>,
    /// 0 to 2; OpenAI's default is 1.
    pub temperature: f32,
    /// (0, 1]; 1 = off.
    pub top_p: f32,
    /// Answer as server-sent events.
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the token counts.
    pub include_usage: bool,
    /// Same seed, same request: same reply.
    pub seed: Option<u64>,
    /// Strings that end the reply.
    pub stop: Vec<String>,
}

/// Parses and checks a request body; errors name the field (and, for bad
/// JSON, serde's line and column).
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            format!("the request body is not valid JSON: {e}; send a JSON object like {{\"messages\": [{{\"role\": \"user\", \"content\": \"Hi\"}}]}}"),
        )
    })?;
    let Value::Object(o) = v else {
        return Err(ApiError::new(400, "the request body must be a JSON object with a `messages` list"));
    };
    let messages = match o.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::field(
                "messages",
                "`messages` is required: a list of {role, content} objects",
            ));
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::field("messages", "`messages` is empty: send at least one message"));
        }
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::field("messages", "`messages` must be a list of {role, content} objects")),
    };
    let number = |name: &str| -> Result<Option<f64>, ApiError> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a number, got {v}"))),
        }
    };
    let temperature = number("temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::field(
            "temperature",
            format!("`temperature` {temperature} must be from 0 to 2 (0 = greedy)"),
        ));
    }
    let top_p = number("top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::field("top_p", format!("`top_p` {top_p} must be in (0, 1]")));
    }
    let count = |name: &str| -> Result<Option<u64>, ApiError> {
        match o.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("`{name}` must be a whole number ≥ 0, got {v}"))),
        }
    };
    let (max_name, max_tokens) = match count("max_completion_tokens")? {
        Some(n) => ("max_completion_tokens", Some(n)),
        None => ("max_tokens", count("max_tokens")?),
    };
    if max_tokens == Some(0) {
        return Err(ApiError::field(max_name, format!("`{max_name}` must be at least 1")));
    }
    if let Some(n) = count("n")?
        && n != 1
    {
        return Err(ApiError::field(
            "n",
            format!("`n` {n} is not supported: kiln returns one choice per request (n = 1)"),
        ));
    }
    let seed = match o.get("seed") {
        None | Some(Value::Null) => None,
        // Negative seeds are valid in OpenAI's API: reinterpret the bits.
        Some(v) => Some(
            v.as_i64()
                .map(|s| s as u64)
                .or(v.as_u64())
                .ok_or_else(|| ApiError::field("seed", format!("`seed` must be an integer, got {v}")))?,
        ),
    };
    let flag = |name: &str, v: Option<&Value>| -> Result<bool, ApiError> {
        match v {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(ApiError::field(name, format!("`{name}` must be true or false, got {v}"))),
        }
    };
    let stream = flag("stream", o.get("stream"))?;
    let include_usage = flag(
        "stream_options.include_usage",
        o.get("stream_options").and_then(|s| s.get("include_usage")),
    )?;
    let stop = match o.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(String::from)
                    .ok_or_else(|| ApiError::field(format!("stop[{i}]"), format!("`stop[{i}]` must be a string, got {s}")))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(ApiError::field(
                "stop",
                format!("`stop` must be a string or a list of strings, got {v}"),
            ));
        }
    };
    Ok(ChatRequest {
        messages,
        max_tokens: max_tokens.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        temperature: temperature as f32,
        top_p: top_p as f32,
        stream,
        include_usage,
        seed,
        stop,
    })
}

/// One message: `role` and `content` (a string, a list of `{"type":
/// "text", "text"}` parts, or null).
fn message(i: usize, m: &Value) -> Result<Message, ApiError> {
    let at = |f: &str| format!("messages[{i}].{f}");
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::field(at("role"), format!("message {i} has no `role` string (system, user or assistant)")))?;
    let role = Role::parse(role).map_err(|e| ApiError::field(at("role"), format!("message {i}: {e}")))?;
    let content = match m.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::field(
                            format!("messages[{i}].content[{j}]"),
                            format!(
                                "message {i}: content part {j} is not a {{\"type\": \"text\", \"text\": ...}} part; kiln models read text only"
                            ),
                        ));
                    }
                }
            }
            text
        }
        Some(v) => {
            return Err(ApiError::field(
                at("content"),
                format!("message {i}: `content` must be a string, got {v}"),
            ));
        }
    };
    Ok(Message { role, content })
}

/// OpenAI's `finish_reason` for how a reply ended.
pub fn finish_reason(end: ReplyEnd) -> &'static str {
    match end {
        ReplyEnd::Stop | ReplyEnd::Cancelled => "stop",
        ReplyEnd::Length => "length",
    }
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, after trimming.
    pub prompt: usize,
    /// Generated tokens.
    pub completion: usize,
}

impl Usage {
    fn json(self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.completion, "total_tokens": self.prompt + self.completion})
    }
}

/// The fields every completion and chunk carry.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    /// `chatcmpl-…`.
    pub id: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: &'a str,
}

/// A `chat.completion` object.
pub fn completion(h: &Head, text: &str, end: ReplyEnd, usage: Usage) -> Value {
    json!({
        "id": h.id, "object": "chat.completion", "created": h.created, "model": h.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish_reason(end)}],
        "usage": usage.json(),
    })
}

/// A `chat.completion.chunk`: `delta` is `{"role": ...}`, `{"content":
/// ...}` or `{}` with the finish reason; with `include_usage` every chunk
/// has `"usage": null` but the last, which has no choices.
pub fn chunk(h: &Head, delta: Value, finish: Option<&str>, include_usage: bool) -> Value {
    let mut c = json!({
        "id": h.id, "object": "chat.completion.chunk", "created": h.created, "model": h.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    if include_usage {
        c["usage"] = Value::Null;
    }
    c
}

/// The last chunk of a stream with `include_usage`.
pub fn usage_chunk(h: &Head, usage: Usage) -> Value {
    json!({
        "id": h.id, "object": "chat.completion.chunk", "created": h.created, "model": h.model,
        "choices": [], "usage": usage.json(),
    })
}

/// One model object.
pub fn model(name: &str, created: u64) -> Value {
    json!({"id": name, "object": "model", "created": created, "owned_by": "kiln"})
}

/// The `GET /v1/models` list.
pub fn model_list(name: &str, created: u64) -> Value {
    json!({"object": "list", "data": [model(name, created)]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        parse_chat_request(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_full_request_parses() {
        let r = parse_chat_request(
            br#"{"model": "x", "messages": [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": null}],
               "temperature": 0, "top_p": 0.5, "max_tokens": 7, "max_completion_tokens": 9, "stream": true,
               "stream_options": {"include_usage": true}, "seed": -1, "stop": "\n", "n": 1, "user": "ignored"}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0], Message::new(Role::System, "Be brief."));
        assert_eq!(r.messages[1].content, "Hi there");
        assert_eq!(r.messages[2], Message::new(Role::Assistant, ""));
        assert_eq!((r.temperature, r.top_p, r.max_tokens), (0.0, 0.5, Some(9)));
        assert!(r.stream && r.include_usage);
        assert_eq!((r.seed, r.stop), (Some(u64::MAX), vec!["\n".to_string()]));
        let d = parse_chat_request(br#"{"messages": [{"role": "user", "content": "x"}]}"#).unwrap();
        assert_eq!(
            (d.temperature, d.top_p, d.max_tokens, d.stream, d.seed),
            (1.0, 1.0, None, false, None)
        );
    }

    #[test]
    fn bad_requests_name_the_field() {
        let e = err(r#"{"messages": [}"#);
        assert!(
            e.message.contains("not valid JSON") && e.message.contains("line 1 column 15"),
            "{e:?}"
        );
        assert!(err("[1]").message.contains("JSON object"));
        assert_eq!(err("{}").param.as_deref(), Some("messages"));
        assert!(err(r#"{"messages": []}"#).message.contains("empty"));
        let e = err(r#"{"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[1].role"));
        assert!(e.message.contains("unknown role `tool`"), "{e:?}");
        let one = |extra: &str| err(&format!(r#"{{"messages": [{{"role": "user", "content": "a"}}], {extra}}}"#));
        assert_eq!(one(r#""n": 2"#).param.as_deref(), Some("n"));
        assert_eq!(one(r#""temperature": 3"#).param.as_deref(), Some("temperature"));
        assert_eq!(one(r#""temperature": "hot""#).param.as_deref(), Some("temperature"));
        assert_eq!(one(r#""top_p": 0"#).param.as_deref(), Some("top_p"));
        assert_eq!(one(r#""max_tokens": 0"#).param.as_deref(), Some("max_tokens"));
        assert_eq!(one(r#""max_tokens": -5"#).param.as_deref(), Some("max_tokens"));
        assert_eq!(one(r#""stop": ["a", 3]"#).param.as_deref(), Some("stop[1]"));
        assert_eq!(one(r#""stream": "yes""#).param.as_deref(), Some("stream"));
        let e = err(r#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#);
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
    }

    #[test]
    fn errors_have_openais_shape() {
        let e = ApiError::field("n", "no").with_code("bad_n");
        let v: Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(
            v,
            json!({"error": {"message": "no", "type": "invalid_request_error", "param": "n", "code": "bad_n"}})
        );
        assert_eq!(ApiError::new(500, "x").kind(), "server_error");
    }
}
