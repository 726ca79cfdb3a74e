//! Extraction quality and throughput on trafilatura's benchmark (990 real
//! pages, ../shared/data/extraction/trafilatura): snippet precision/recall/F1
//! (trafilatura's metric, kiln::clean::extract::eval) for each `favor`, then
//! pages/s on 2 rayon threads, bytes in (decoding included) to text out,
//! median of RUNS passes over all pages. benches/extract.sh runs this next to
//! Python trafilatura.
//!
//!   cargo bench --bench extract [-- RUNS]

use kiln::clean::extract::eval::{evaluate, load_evaldata, read_page};
use kiln::clean::extract::{ExtractParams, Favor, decode_html, extract, parse_only};
use rayon::prelude::*;
use std::time::Instant;

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/extraction/trafilatura");
    let items = match load_evaldata(&dir) {
        Ok(items) => items,
        Err(e) => return println!("skipped: {e}"),
    };
    let pages: Vec<Vec<u8>> = items.iter().map(|it| read_page(&dir, it).expect("page")).collect();
    let bytes: usize = pages.iter().map(Vec::len).sum();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("rayon pool");
    println!("kiln extract: {} pages, {bytes} bytes; 2 threads, {runs} runs", pages.len());
    // The ceiling: decoding, stripping and parsing into kiln's tree, no extraction.
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let n: usize = pool.install(|| pages.par_iter().map(|b| parse_only(&decode_html(b))).sum());
            std::hint::black_box(n);
            pages.len() as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    println!("decode + strip + parse only: pages/s(median of {runs})={:.1}", rates[runs / 2]);
    for favor in [Favor::Balanced, Favor::Precision, Favor::Recall] {
        let p = ExtractParams {
            favor,
            ..ExtractParams::default()
        };
        let run = |b: &[u8]| extract(&decode_html(b), &p).ok().map(|e| e.text);
        let (c, _) = pool.install(|| evaluate(&items, &pages, run));
        let mut rates: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let out: usize = pool.install(|| pages.par_iter().map(|b| run(b).map_or(0, |t| t.len())).sum());
                std::hint::black_box(out);
                pages.len() as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "kiln {favor:?}: tp={} fp={} fn={} tn={} precision={:.4} recall={:.4} f1={:.4} pages/s(median of {runs})={:.1} [{}]",
            c.tp,
            c.fp,
            c.fn_,
            c.tn,
            c.precision(),
            c.recall(),
            c.f1(),
            rates[runs / 2],
            rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ")
        );
    }
}
