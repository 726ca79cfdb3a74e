//! The HTTP side of `kiln serve` over tiny_http: bounded body reads, JSON
//! answers, and a server-sent-events stream written and flushed event by
//! event, so that a closed connection shows up as a write error.

use super::openai::ApiError;
use std::io::{Read, Write};
use tiny_http::{HTTPVersion, Header, Request, Response};

/// Declared bodies above this are never answered: tiny_http drains an
/// unread body on drop into one buffer of the remaining size, so answering
/// (which drops the request) could abort the process on a huge
/// `Content-Length`. The connection is left to the client to close.
const DRAIN_LIMIT: usize = 1 << 30;

/// How much of a refused chunked body is read and dropped before answering.
const CHUNKED_DRAIN: usize = 64 << 20;

/// Reads the body, at most `max` bytes: a larger declared `Content-Length`
/// is refused before reading anything, a chunked body once it passes `max`.
pub fn read_body(rq: &mut Request, max: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(n) = rq.body_length()
        && n > max
    {
        return Err(too_large(n, max));
    }
    let mut body = Vec::with_capacity(rq.body_length().unwrap_or(0).min(max));
    rq.as_reader()
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::new(400, format!("could not read the request body: {e}")))?;
    if body.len() > max {
        return Err(too_large(body.len(), max));
    }
    Ok(body)
}

/// The 413 error.
pub fn too_large(n: usize, max: usize) -> ApiError {
    ApiError::new(
        413,
        format!("the request body is {n} bytes or more; this server takes at most {max} (start it with a larger --max-body)"),
    )
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Answers `body` as JSON with `status`; the error is the client's (a
/// closed connection), for the log.
pub fn respond_json(rq: Request, status: u16, body: String, extra: &[(&str, &str)]) -> std::io::Result<()> {
    let mut r = Response::from_string(body).with_status_code(status);
    for (k, v) in [("Content-Type", "application/json")].iter().chain(extra) {
        if let Some(h) = header(k, v) {
            r.add_header(h);
        }
    }
    rq.respond(r)
}

/// Answers an error; a body too large to read is refused off the worker
/// thread, since tiny_http then waits for the unread body to arrive (or the
/// client to hang up) before the request is gone.
pub fn respond_error(rq: Request, e: &ApiError, extra: &[(&str, &str)]) -> std::io::Result<()> {
    if e.status != 413 {
        return respond_json(rq, e.status, e.body(), extra);
    }
    if rq.body_length().is_some_and(|n| n > DRAIN_LIMIT) {
        // Forgetting it leaks one idle connection; dropping it could abort.
        std::mem::forget(rq);
        return Ok(());
    }
    let body = e.body();
    std::thread::spawn(move || {
        let mut rq = rq;
        if rq.body_length().is_none() {
            // A chunked body arrives whole, wanted or not; closing the socket
            // with some of it unread would reset the connection and could
            // lose the answer, so read (and drop) a bounded amount first.
            let _ = std::io::copy(&mut rq.as_reader().take(CHUNKED_DRAIN as u64), &mut std::io::sink());
        }
        respond_json(rq, 413, body, &[("Connection", "close")])
    });
    Ok(())
}

/// A `text/event-stream` answer written straight to the connection:
/// chunked transfer encoding on HTTP/1.1 (the connection stays usable),
/// a body ended by closing on HTTP/1.0.
pub struct EventStream {
    out: Box<dyn Write + Send>,
    chunked: bool,
}

impl EventStream {
    /// Sends the status line and headers.
    pub fn start(rq: Request) -> std::io::Result<Self> {
        let chunked = *rq.http_version() >= HTTPVersion(1, 1);
        let mut out = rq.into_writer();
        let framing = if chunked {
            "Transfer-Encoding: chunked\r\n"
        } else {
            "Connection: close\r\n"
        };
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n{framing}\r\n"
        )?;
        out.flush()?;
        Ok(EventStream { out, chunked })
    }

    /// Sends `data: {payload}` and flushes it.
    pub fn event(&mut self, payload: &str) -> std::io::Result<()> {
        let data = format!("data: {payload}\n\n");
        self.raw(data.as_bytes())
    }

    fn raw(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.chunked {
            write!(self.out, "{:x}\r\n", data.len())?;
            self.out.write_all(data)?;
            self.out.write_all(b"\r\n")?;
        } else {
            self.out.write_all(data)?;
        }
        self.out.flush()
    }

    /// Ends the body.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.chunked {
            self.out.write_all(b"0\r\n\r\n")?;
        }
        self.out.flush()
    }
}
