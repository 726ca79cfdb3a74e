//! The `kiln` command line.

use clap::{Parser, Subcommand, ValueEnum};
use kiln::exec::report::Reporter;
use kiln::exec::run::{RunOptions, run, summary_json, summary_table};
use kiln::spec::executor::ExecutorKind;
use kiln::spec::{self, LoadError, Pipeline};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod cli;

/// kiln turns raw web crawl into a chat model: one YAML DAG, cached runs.
#[derive(Parser)]
#[command(name = "kiln", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline (only what is not already built).
    Run {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override a value: `--set nodes.docs.path=x.jsonl`, `--set vars.n=10`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Re-run this node and everything downstream of it.
        #[arg(long, value_name = "NODE")]
        force: Vec<String>,
        /// Run only this node (repeatable); its inputs must be built.
        #[arg(long, value_name = "NODE")]
        only: Vec<String>,
        /// Run this node and what it needs, nothing downstream.
        #[arg(long, value_name = "NODE")]
        until: Option<String>,
        /// Print what would run and why; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// The node for --shard / --merge.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Run shard i of N of --node into a part (e.g. 0/3).
        #[arg(long, value_name = "i/N", requires = "node")]
        shard: Option<String>,
        /// Merge the finished shard parts of --node.
        #[arg(long, requires = "node", conflicts_with = "shard")]
        merge: bool,
        /// Between the two shard rounds of a `dedup` --node: cluster its
        /// finished first-round parts, so that further --shard runs filter.
        #[arg(long, requires = "node", conflicts_with_all = ["shard", "merge"])]
        cluster: bool,
        /// Between the shard rounds of a `minhash` dedup --node: the bucket
        /// job for band group g of G (e.g. 0/4); --cluster then joins them.
        #[arg(long, value_name = "g/G", requires = "node", conflicts_with_all = ["shard", "merge", "cluster"])]
        bands: Option<String>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Where the work runs (default: the pipeline's `executor:`, else inline):
        /// `local` runs shard units as worker processes, `slurm` submits job arrays.
        #[arg(long, value_enum)]
        executor: Option<ExecutorArg>,
        /// `--executor local`: processes at once (default: all cores).
        #[arg(long)]
        workers: Option<u32>,
        /// `--executor slurm`: follow the jobs to the end, printing progress, and
        /// exit non-zero if a node did not finish.
        #[arg(long)]
        wait: bool,
        /// No progress bars or per-node lines.
        #[arg(long, short)]
        quiet: bool,
        /// `json` prints one JSON object per event on stdout.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Check a pipeline file and report every problem in it.
    Validate {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override a value, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Print the DAG.
    Graph {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: GraphFormat,
        /// Override a value, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Show each node as done, stale (and why) or missing.
    Status {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override a value, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Show an artifact: manifest, schema, row count, first rows.
    Inspect {
        /// An artifact directory (`runs/<name>/<node>`) or a Parquet file.
        path: PathBuf,
        /// How many rows to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// Print the whole manifest.json instead.
        #[arg(long)]
        json: bool,
    },
    /// Print the YAML reference (every op, every field).
    Reference,
    /// Generate the sample world: a crawl (WARC) describing an invented world and
    /// SFT / preference / RL / held-out files about it (data/world is `--seed 7`).
    Synth {
        /// Output directory (created if missing; files in it are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Random seed: the same seed writes byte-identical files.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Size factor: 1 makes about 1.9 MB (10 countries, ~870 pages, ~4000 questions).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Write `<workdir>/report.html` from what is built, without running.
    Report {
        /// The pipeline YAML file.
        file: PathBuf,
        /// Override a value, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Continue a prompt with a model, streaming the text as it is generated.
    Sample {
        /// A model directory (config.json, model.safetensors, tokenizer.json),
        /// e.g. runs/<pipeline>/<node>.
        model: PathBuf,
        /// The text to continue; repeat for a batch (printed when all finish).
        #[arg(long, required = true)]
        prompt: Vec<String>,
        /// Most tokens to generate per prompt.
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Softmax temperature; 0 is greedy.
        #[arg(long, default_value_t = 0.8)]
        temperature: f32,
        /// Sample among the k most likely tokens; 0 = no limit.
        #[arg(long, default_value_t = 200)]
        top_k: usize,
        /// Sample among the most likely tokens up to this probability mass; 1 = off.
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Random seed (same seed, same text).
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        /// Weight precision: bf16 streams half the bytes per token.
        #[arg(long, value_enum, default_value = "bf16")]
        precision: PrecisionArg,
        /// Do not start the prompt with the tokenizer's BOS token.
        #[arg(long)]
        no_bos: bool,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Chat with a model in the terminal: lines from stdin, replies streamed
    /// (`/reset`, `/temp X`, `/quit`).
    Chat {
        /// A model directory (config.json, model.safetensors, tokenizer.json
        /// with the chat tokens), e.g. runs/<pipeline>/<sft node>.
        model: PathBuf,
        /// A system message that starts the conversation.
        #[arg(long)]
        system: Option<String>,
        /// Most tokens per reply.
        #[arg(long, default_value_t = 256)]
        max_new_tokens: usize,
        /// Softmax temperature, 0 to 2; 0 is greedy (change it with `/temp X`).
        #[arg(long, alias = "temperature", default_value_t = 0.7)]
        temp: f32,
        /// Sample among the k most likely tokens; 0 = no limit.
        #[arg(long, default_value_t = 200)]
        top_k: usize,
        /// Sample among the most likely tokens up to this probability mass; 1 = off.
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Random seed (same seed, same conversation, same replies).
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        /// Weight precision: bf16 streams half the bytes per token.
        #[arg(long, value_enum, default_value = "bf16")]
        precision: PrecisionArg,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Serve a model over an OpenAI-compatible HTTP API
    /// (`POST /v1/chat/completions`, `GET /v1/models`).
    Serve {
        /// A model directory, as for `chat`.
        model: PathBuf,
        /// Address to listen on (localhost only by default).
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port; 0 picks a free one (the address is printed on stdout's first line).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Largest request body accepted, e.g. 1MiB, 64KiB, 20000 (bytes).
        #[arg(long, default_value = "1MiB")]
        max_body: String,
        /// Requests handled at once (generation itself runs one at a time).
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// Weight precision: bf16 streams half the bytes per token.
        #[arg(long, value_enum, default_value = "bf16")]
        precision: PrecisionArg,
        /// Compute threads for the model (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExecutorArg {
    Inline,
    Local,
    Slurm,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    Bf16,
}

impl From<PrecisionArg> for kiln::backend::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::F32 => kiln::backend::Precision::F32,
            PrecisionArg::Bf16 => kiln::backend::Precision::Bf16,
        }
    }
}

fn load(file: &std::path::Path, sets: &[String]) -> Result<Pipeline, ExitCode> {
    spec::load(file, sets).map_err(|e| {
        match e {
            LoadError::Invalid(errs) => eprintln!("{:?}", miette::Report::new(errs)),
            other => eprintln!("error: {other}"),
        }
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    // Long headlines carry file:line:col; wrapping them would split that up.
    let _ = miette::set_hook(Box::new(|_| Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())));
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) | Err(code) => code,
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, ExitCode> {
    match cli.cmd {
        Cmd::Validate { file, sets } => {
            let p = load(&file, &sets)?;
            println!("{}: ok, {} node(s)", file.display(), p.nodes.len());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Graph { file, format, sets } => {
            let p = load(&file, &sets)?;
            let out = match format {
                GraphFormat::Text => cli::graph_text(&p),
                GraphFormat::Dot => cli::graph_dot(&p),
                GraphFormat::Mermaid => cli::graph_mermaid(&p),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { file, sets } => {
            let p = load(&file, &sets)?;
            print!("{}", cli::status_table(&p));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Inspect { path, rows, json } => match cli::inspect(&path, rows, json) {
            Ok(s) => {
                print!("{s}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(ExitCode::from(2))
            }
        },
        Cmd::Sample {
            model,
            prompt,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            precision,
            no_bos,
            threads,
        } => {
            if let Some(t) = threads {
                let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
            }
            let args = kiln::infer::session::SampleArgs {
                model,
                prompts: prompt,
                max_new_tokens,
                sampling: kiln::infer::SampleConfig {
                    temperature,
                    top_k,
                    top_p,
                    seed,
                },
                precision: match precision {
                    PrecisionArg::F32 => kiln::backend::Precision::F32,
                    PrecisionArg::Bf16 => kiln::backend::Precision::Bf16,
                },
                bos: !no_bos,
            };
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
            match kiln::infer::session::run(&args, &mut out, &mut err) {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Cmd::Synth { out, seed, scale } => match kiln::synth::write(&out, seed, scale) {
            Ok(files) => {
                for (name, bytes) in files {
                    println!("{:>10}  {}", bytes, out.join(name).display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Err(ExitCode::from(2))
            }
        },
        Cmd::Chat {
            model,
            system,
            max_new_tokens,
            temp,
            top_k,
            top_p,
            seed,
            precision,
            threads,
        } => {
            if let Some(t) = threads {
                let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
            }
            if let Err(e) = kiln::infer::repl::parse_temperature(&temp.to_string()) {
                eprintln!("error: --temp: {e}");
                return Err(ExitCode::from(2));
            }
            use std::io::IsTerminal;
            let args = kiln::infer::repl::ChatArgs {
                model,
                system,
                max_new_tokens,
                sampling: kiln::infer::SampleConfig {
                    temperature: temp,
                    top_k,
                    top_p,
                    seed,
                },
                precision: precision.into(),
                interactive: std::io::stdin().is_terminal(),
            };
            let interrupt = Arc::new(kiln::infer::repl::Interrupt::default());
            let i2 = interrupt.clone();
            let _ = ctrlc::set_handler(move || {
                if !i2.on_ctrl_c() {
                    eprintln!();
                    std::process::exit(130);
                }
            });
            let (mut input, mut out, mut err) = (std::io::stdin().lock(), std::io::stdout().lock(), std::io::stderr());
            match kiln::infer::repl::run(&args, &mut input, &mut out, &mut err, &interrupt) {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Cmd::Serve {
            model,
            host,
            port,
            max_body,
            workers,
            precision,
            threads,
        } => {
            if let Some(t) = threads {
                let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
            }
            let max_body = match kiln::serve::parse_size(&max_body) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("error: --max-body: {e}");
                    return Err(ExitCode::from(2));
                }
            };
            let opts = kiln::serve::ServeOptions {
                model,
                host,
                port,
                max_body,
                workers,
                precision: precision.into(),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let s2 = stop.clone();
            let _ = ctrlc::set_handler(move || {
                if s2.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping: ending the current request (Ctrl-C again to quit now)");
            });
            match kiln::serve::run(&opts, &stop) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Cmd::Report { file, sets } => {
            let p = load(&file, &sets)?;
            match kiln::report::write(&p, None) {
                Ok(path) => {
                    println!("{}", path.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(ExitCode::from(2))
                }
            }
        }
        Cmd::Reference => {
            print!("{}", spec::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            file,
            sets,
            force,
            only,
            until,
            dry_run,
            node,
            shard,
            merge,
            cluster,
            bands,
            threads,
            executor,
            workers,
            wait,
            quiet,
            log_format,
        } => {
            let p = load(&file, &sets)?;
            let mut exec = p.executor.clone();
            if let Some(e) = executor {
                exec.kind = match e {
                    ExecutorArg::Inline => ExecutorKind::Inline,
                    ExecutorArg::Local => ExecutorKind::Local,
                    ExecutorArg::Slurm => ExecutorKind::Slurm,
                };
            }
            if let Some(w) = workers {
                exec.workers = Some(w.max(1));
            }
            // A shard or merge unit is one job's work: it always runs here.
            if node.is_some() {
                exec.kind = ExecutorKind::Inline;
            }
            let (shard, bands) = match (
                shard.as_deref().map(|s| cli::parse_shard(s, "--shard")).transpose(),
                bands.as_deref().map(|s| cli::parse_shard(s, "--bands")).transpose(),
            ) {
                (Ok(s), Ok(b)) => (s, b),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    return Err(ExitCode::from(2));
                }
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            // The global pool is the run's thread budget: every node's parallel work shares it.
            let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
            let cancel = Arc::new(AtomicBool::new(false));
            let c2 = cancel.clone();
            let _ = ctrlc::set_handler(move || {
                if c2.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nstopping: finishing nothing half-way (Ctrl-C again to quit now)");
            });
            let json = log_format == LogFormat::Json;
            let rep = Reporter::new(quiet, json);
            let opts = RunOptions {
                force,
                only,
                until,
                dry_run,
                node: node.clone(),
                shard,
                merge,
                cluster,
                bands,
                executor: exec,
                wait,
                file: file.clone(),
                sets: sets.clone(),
            };
            let summary = match run(&p, &opts, &rep, &cancel) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(ExitCode::from(2));
                }
            };
            // The report never changes the run's outcome: a failure to write it is a warning.
            // Shard and merge units leave it to the run that handed them out.
            let submitted = summary
                .nodes
                .iter()
                .any(|n| matches!(n.outcome, kiln::exec::run::Outcome::Submitted(_)));
            if !dry_run && node.is_none() && !submitted {
                match kiln::report::write(&p, Some(&summary)) {
                    Ok(path) => rep.info("report", serde_json::json!({ "path": path }), format!("report: {}", path.display())),
                    Err(e) => rep.warn("report_failed", serde_json::json!({ "error": e }), format!("report: {e}")),
                }
            }
            if json {
                println!("{}", summary_json(&summary));
            } else {
                print!("{}", summary_table(&summary));
            }
            if summary.cancelled() {
                Err(ExitCode::from(130))
            } else if summary.failed() {
                Err(ExitCode::from(1))
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
