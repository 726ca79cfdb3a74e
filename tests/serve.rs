// ok: test module
//! `kiln serve` as a child process on a free port, spoken to with real
//! HTTP over `TcpStream`: the model list, whole and streamed completions
//! (the stream's chunks make the same text as the whole answer), OpenAI's
//! error shape for bad requests, and a client that hangs up mid-stream.

mod common;
#[path = "talk/model.rs"]
mod talk;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `kiln serve`; dropping it kills the process.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(model: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("serve")
            .arg(model)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (err, l2) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let mut server = Server {
            child,
            addr: String::new(),
            log,
        };
        server.addr = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line {first:?}; log: {}", server.log()))
            .to_string();
        server
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s
    }

    /// Sends `method path` with a JSON body and reads the whole answer.
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let mut s = self.connect();
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        read_response(&mut BufReader::new(s))
    }

    fn post(&self, body: &Value) -> Resp {
        self.call("POST", "/v1/chat/completions", Some(&body.to_string()))
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Checks OpenAI's error shape and returns the error object.
    fn error(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        let e = self.json()["error"].clone();
        assert_eq!(e["type"], "invalid_request_error", "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
        assert!(e.get("param").is_some() && e.get("code").is_some(), "{e}");
        e
    }
}

/// Reads one response: the head, then a body by Content-Length or
/// chunked encoding (never waiting for the connection to close).
fn read_response(r: &mut impl BufRead) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if get("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or_else(|_| panic!("chunk size {line:?}"));
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).unwrap();
            assert_eq!(&chunk[n..], b"\r\n", "chunk not closed by CRLF");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("Content-Length") {
        body.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    Resp {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// The `data:` payloads of an event stream, checking its framing.
fn events(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "{body:?}");
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

fn model_dir(block_size: usize) -> Option<tempfile::TempDir> {
    let data = common::shared_data()?;
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("sft");
    std::fs::create_dir(&m).unwrap();
    talk::chat_model_dir(&data, &m, block_size);
    Some(d)
}

#[test]
fn models_whole_and_streamed_completions_agree() {
    let Some(d) = model_dir(256) else { return };
    let srv = Server::start(&d.path().join("sft"), &[]);
    let models = srv.call("GET", "/v1/models", None);
    assert_eq!(models.status, 200);
    assert_eq!(models.header("Content-Type"), Some("application/json"));
    let m = models.json();
    assert_eq!((m["object"].as_str(), m["data"][0]["id"].as_str()), (Some("list"), Some("sft")));
    assert_eq!(
        (m["data"][0]["object"].as_str(), m["data"][0]["owned_by"].as_str()),
        (Some("model"), Some("kiln"))
    );

    let ask = json!({"model": "sft", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is Emma?"}],
                     "temperature": 0.9, "seed": 11, "max_tokens": 24});
    let whole = srv.post(&ask);
    assert_eq!(whole.status, 200, "{}", whole.body);
    let w = whole.json();
    assert_eq!(w["object"], "chat.completion");
    assert_eq!(w["model"], "sft");
    assert_eq!(w["choices"][0]["message"]["role"], "assistant");
    let text = w["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    let finish = w["choices"][0]["finish_reason"].as_str().unwrap().to_string();
    let u = &w["usage"];
    let (p, c) = (u["prompt_tokens"].as_u64().unwrap(), u["completion_tokens"].as_u64().unwrap());
    assert_eq!(u["total_tokens"].as_u64(), Some(p + c));
    // The prompt is the template: bos, two messages of role + text + end, <|assistant|>.
    let tok = kiln::tokenize::load(&d.path().join("sft/tokenizer.json")).unwrap();
    let words = |s: &str| kiln::tokenize::encode(&tok, s).unwrap().len() as u64;
    assert_eq!(p, 1 + (2 + words("Be brief.")) + (2 + words("Who is Emma?")) + 1);
    assert!(c <= 24);
    assert_eq!(finish == "length", c == 24, "{finish} after {c} tokens");
    assert!(text.chars().count() >= 6, "{text:?}");
    // Same seed, same reply.
    assert_eq!(srv.post(&ask).json()["choices"][0]["message"]["content"], text.as_str());

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let s = srv.post(&streamed);
    assert_eq!(s.status, 200);
    assert_eq!(s.header("Content-Type"), Some("text/event-stream"));
    let ev = events(&s.body);
    let ev_count = ev.len();
    assert_eq!(ev.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = ev[..ev.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], w["usage"]);
    let (last, _) = rest.split_last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"].as_str(), Some(finish.as_str()));
    assert_eq!(last["choices"][0]["delta"], json!({}));
    let joined: String = rest.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(joined, text, "the chunks make the whole answer");
    assert!(rest.len() > 3, "streamed in pieces: {} chunks", rest.len());

    // A stop string from the middle of the reply cuts it there.
    let stop: String = text.chars().skip(3).take(2).collect();
    let mut stopped = ask.clone();
    stopped["stop"] = json!([stop.clone(), "never appears \u{1}"]);
    let r = srv.post(&stopped).json();
    let want = &text[..text.find(&stop).unwrap()];
    assert_eq!(r["choices"][0]["message"]["content"].as_str(), Some(want));
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    stopped["stream"] = json!(true);
    let ev = events(&srv.post(&stopped).body);
    let joined: String = ev[..ev.len() - 1]
        .iter()
        .filter_map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(joined, want);

    // The chunked stream ends cleanly: the connection carries a next request.
    let mut conn = BufReader::new(srv.connect());
    let body = streamed.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut().write_all(format!("{head}{body}").as_bytes()).unwrap();
    assert_eq!(events(&read_response(&mut conn).body).len(), ev_count);
    conn.get_mut().write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut conn).json()["object"], "list");

    let log = srv.log();
    assert!(log.contains(&format!("POST /v1/chat/completions 200 {p}+{c} tokens")), "{log}");
    assert!(log.contains("GET /v1/models 200"), "{log}");
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let Some(d) = model_dir(256) else { return };
    let srv = Server::start(&d.path().join("sft"), &["--max-body", "4KiB"]);
    let e = srv
        .call("POST", "/v1/chat/completions", Some("{\"messages\": [\n{\"role\": \"user\",, }]}"))
        .error(400);
    assert!(
        e["message"].as_str().unwrap().contains("not valid JSON") && e["message"].as_str().unwrap().contains("line 2 column"),
        "{e}"
    );
    assert_eq!(srv.post(&json!({"model": "sft"})).error(400)["param"], "messages");
    assert_eq!(srv.post(&json!({"messages": []})).error(400)["param"], "messages");
    let e = srv.post(&json!({"messages": [{"role": "wizard", "content": "hi"}]})).error(400);
    assert_eq!(e["param"], "messages[0].role");
    assert!(e["message"].as_str().unwrap().contains("unknown role `wizard`"), "{e}");
    assert_eq!(
        srv.post(&json!({"messages": [{"role": "user", "content": "hi"}], "n": 3}))
            .error(400)["param"],
        "n"
    );
    // A system message longer than the context allows.
    let huge = "Emma Woodhouse, handsome, clever, and rich. ".repeat(60);
    let e = srv
        .post(&json!({"messages": [{"role": "system", "content": huge}, {"role": "user", "content": "hi"}]}))
        .error(400);
    assert_eq!(e["code"], "context_length_exceeded", "{e}");

    // Over --max-body by its Content-Length: refused before the body is sent.
    let mut s = srv.connect();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
    )
    .unwrap();
    let e = read_response(&mut BufReader::new(s)).error(413);
    assert!(e["message"].as_str().unwrap().contains("--max-body"), "{e}");
    // A chunked body has no length up front: refused once it passes the limit.
    let mut s = srv.connect();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..3 {
        write!(s, "800\r\n{}\r\n", "x".repeat(0x800)).unwrap();
    }
    write!(s, "0\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(s)).error(413);

    let r = srv.call("GET", "/v1/chat/completions", None);
    r.error(405);
    assert_eq!(r.header("Allow"), Some("POST"));
    assert_eq!(
        srv.call("DELETE", "/v1/models", None).error(405)["message"]
            .as_str()
            .map(|m| m.contains("use GET")),
        Some(true)
    );
    srv.call("GET", "/v2/everything", None).error(404);
    assert_eq!(srv.call("GET", "/v1/models/gpt-4", None).error(404)["code"], "model_not_found");
    assert_eq!(srv.call("GET", "/v1/models/sft", None).json()["id"], "sft");

    // Still serving.
    let ok = srv.post(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "seed": 1}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let log = srv.log();
    for line in [
        "POST /v1/chat/completions 400",
        "POST /v1/chat/completions 413",
        "GET /v1/chat/completions 405",
        "GET /v2/everything 404",
    ] {
        assert!(log.contains(line), "{line} missing from: {log}");
    }
}

#[test]
fn a_client_that_hangs_up_mid_stream_stops_its_generation() {
    let Some(d) = model_dir(1024) else { return };
    let srv = Server::start(&d.path().join("sft"), &["--workers", "2"]);
    let ask = json!({"messages": [{"role": "user", "content": "Tell me everything."}], "stream": true, "max_tokens": 1000,
                     "temperature": 1.0, "seed": 3, "stop": []});
    let mut s = srv.connect();
    let body = ask.to_string();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Wait for the first content delta, then hang up with data unread.
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !line.contains("\"content\":\"") || line.contains("\"role\"") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
    }
    drop(r);
    // The next request is answered (after the abandoned one lets go of the model).
    let ok = srv.post(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(srv.call("GET", "/v1/models", None).status, 200);
    let log = srv.log();
    let gone = log
        .lines()
        .find(|l| l.contains("client disconnected after"))
        .unwrap_or_else(|| panic!("{log}"));
    let n: usize = gone
        .split("client disconnected after ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("{gone}");
    assert!(n < 1000, "the generation ran to the end: {gone}");

    // Ctrl-C: the server stops taking requests and exits cleanly.
    let mut srv = srv;
    // SAFETY: signalling our own child process by its id.
    assert_eq!(unsafe { libc::kill(srv.child.id() as i32, libc::SIGINT) }, 0);
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(srv.log().contains("stopped"), "{}", srv.log());
}
