// ok: test module
//! `kiln chat` through the binary with piped stdin: replies stream to
//! stdout as they are generated, commands work, bad values get a clear
//! message, the history is trimmed to the context, EOF ends cleanly.

mod common;
#[path = "talk/model.rs"]
mod talk;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn spawn(model: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("chat")
        .arg(model)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `kiln chat MODEL ARGS` with `input` on stdin, then EOF.
fn chat(model: &Path, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = spawn(model, args);
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(code, 101, "kiln panicked: {err}");
    // Incremental decoding never splits a character: stdout is UTF-8.
    (code, String::from_utf8(out.stdout).expect("stdout is UTF-8"), err)
}

#[test]
fn chat_streams_replies_and_obeys_commands() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    talk::chat_model_dir(&data, d.path(), 128);
    let input = "Hello there\n/temp 3\n/temp 0\n\nHow are you?\n/bogus\n/reset\nHow are you?\n/quit\nnever read\n";
    let (code, out, err) = chat(d.path(), &["--max-new-tokens", "24", "--system", "Be kind."], input);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("/temp wants a number from 0 (greedy) to 2") && err.contains("got `3`"),
        "{err}"
    );
    assert!(err.contains("(temperature 0)"), "{err}");
    assert!(err.contains("unknown command `/bogus`"), "{err}");
    assert!(err.contains("(conversation cleared)"), "{err}");
    // Three messages were sent; the line after /quit and the empty line were not.
    assert!(err.contains("replies: 3,"), "{err}");
    assert!(!out.is_empty());
    // After /reset, greedy decoding of the same question with the same
    // system message gives what a fresh chat gives: the history is gone.
    let (code, fresh, err2) = chat(
        d.path(),
        &["--max-new-tokens", "24", "--system", "Be kind.", "--temp", "0"],
        "How are you?\n",
    );
    assert_eq!(code, 0, "{err2}");
    assert!(err2.contains("replies: 1,"), "{err2}");
    assert!(out.ends_with(&fresh), "last reply {out:?} vs a fresh chat's {fresh:?}");
}

#[test]
fn a_reply_is_on_stdout_before_the_next_line_is_typed() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    talk::chat_model_dir(&data, d.path(), 128);
    let mut child = spawn(d.path(), &["--max-new-tokens", "16", "--temp", "1", "--seed", "5"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"Hello\n").unwrap();
    stdin.flush().unwrap();
    // Read until the reply's closing newline while stdin stays open: the
    // text was flushed as it was generated, not at exit.
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while stdout.read(&mut b).unwrap_or(0) == 1 {
            got.push(b[0]);
            if b[0] == b'\n' {
                break;
            }
        }
        tx.send(got).unwrap();
        stdout
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("no reply within 60 s while stdin was open");
    assert_eq!(first.last(), Some(&b'\n'), "{first:?}");
    stdin.write_all(b"/quit\n").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    reader.join().unwrap().read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    // Nothing more was said after /quit; the reply seen early was the whole reply.
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn long_messages_are_trimmed_and_bad_setups_are_refused() {
    let Some(data) = common::shared_data() else { return };
    let d = tempfile::tempdir().unwrap();
    talk::chat_model_dir(&data, d.path(), 128);
    // 128 positions, 100 new tokens: the prompt keeps 64 (half the context).
    let long = "Emma Woodhouse, handsome, clever, and rich, with a comfortable home. ".repeat(20);
    let (code, _, err) = chat(d.path(), &["--max-new-tokens", "100"], &format!("Hi\n{long}\n"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("left out the 2 oldest message(s) and the first"), "{err}");
    assert!(err.contains("tokens of your message"), "{err}");
    // A system message that fills the context: the turn is refused, the chat goes on.
    let (code, _, err) = chat(d.path(), &["--max-new-tokens", "100", "--system", &long], "Hi\n");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("does not fit the context") && err.contains("replies: 0,"), "{err}");

    let (code, _, err) = chat(d.path(), &["--temp", "5"], "");
    assert_eq!(code, 2);
    assert!(err.contains("--temp"), "{err}");
    let (code, _, err) = chat(&d.path().join("nowhere"), &[], "");
    assert_eq!(code, 2);
    assert!(err.contains("no such model directory"), "{err}");
    // A tokenizer without the chat tokens (a pretraining-only tokenizer).
    let plain = tempfile::tempdir().unwrap();
    talk::model_dir(&data, plain.path(), 64, &["<|bos|>", "<|endoftext|>"]);
    let (code, _, err) = chat(plain.path(), &[], "Hi\n");
    assert_eq!(code, 2);
    assert!(err.contains("has no `<|system|>` token"), "{err}");
}
