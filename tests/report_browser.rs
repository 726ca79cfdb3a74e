// ok: test module
//! The report in a real browser: headless Chromium loads it, runs its
//! script, and the page shows its SVG plots without a JavaScript error.
//! Skips with a message when no `chromium` is on PATH (.ci/run installs it).

mod common;

use common::{kiln_in, pipeline};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    eprintln!("SKIP: no chromium or chromium-browser on PATH (apt-get install chromium); the browser check did not run");
    None
}

/// Runs chromium headless on `page` with `mode` (`--dump-dom` or
/// `--screenshot=...`), killing it after a minute; returns stdout.
fn headless(bin: &Path, profile: &Path, page: &Path, mode: &str) -> String {
    let out = profile.join("stdout");
    let mut child = Command::new(bin)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1240,3000",
            "--virtual-time-budget=3000",
            &format!("--user-data-dir={}", profile.join("profile").display()),
            mode,
            &format!("file://{}", page.display()),
        ])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(out).unwrap()
}

fn attr<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let html_tag = &dom[dom.find("<html")?..];
    let html_tag = &html_tag[..html_tag.find('>')?];
    let at = html_tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&html_tag[at..at + html_tag[at..].find('"')?])
}

#[test]
fn the_report_loads_in_chromium_without_errors_and_shows_its_plots() {
    let Some(bin) = chromium() else { return };
    let d = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(format!("{ROOT}/pipelines/sample.yaml")).unwrap();
    let p = pipeline(d.path(), &yaml.replace("data: data/sample", &format!("data: {ROOT}/data/sample")));
    kiln_in(d.path(), &["run", p.to_str().unwrap(), "--quiet"]).ok();
    let page = d.path().join("runs/sample/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let svgs_in_file = html.matches("<svg").count();
    assert!(svgs_in_file >= 6, "DAG, funnel bars and loss curves");

    let dom = headless(&bin, d.path(), &page, "--dump-dom");
    assert_eq!(
        attr(&dom, "data-errors"),
        Some(""),
        "JavaScript errors on the page: {}",
        &dom[..dom.len().min(600)]
    );
    // The load handler ran and counted every plot as the browser parsed it.
    assert_eq!(attr(&dom, "data-svgs"), Some(svgs_in_file.to_string().as_str()));
    assert!(dom.contains("<title>loss</title>") && dom.contains(r#"class="chart""#));
    assert!(dom.contains("<path d=\"M"), "the curves have points");

    let shot = d.path().join("report.png");
    headless(&bin, d.path(), &page, &format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a rendered page, {} bytes",
        png.len()
    );

    // The hook does catch errors: the same page with a broken script reports it.
    let broken = d.path().join("broken.html");
    std::fs::write(&broken, html.replace("</body>", "<script>no_such_function();</script></body>")).unwrap();
    let dom = headless(&bin, d.path(), &broken, "--dump-dom");
    assert!(
        attr(&dom, "data-errors").is_some_and(|e| e.contains("no_such_function")),
        "{:?}",
        attr(&dom, "data-errors")
    );
}
