//! The `workbench` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use workbench::data;
use workbench::experiment::config::ConfigErrors;
use workbench::results::run::{build_report, run, RunOptions};
use workbench::studies;

/// Research workbench for LLM quantization and speculative-decoding experiments.
#[derive(Parser)]
#[command(name = "workbench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a study from a TOML config; finished units are kept, so a rerun resumes.
    Run {
        /// The config file [default: the embedded copy of experiments/quickstart.toml].
        config: Option<PathBuf>,
        /// Output folder [default: reports/<config stem>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads [default: all cores]. Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// Seed, overriding the config's `seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bar and no summary.
        #[arg(long)]
        quiet: bool,
    },
    /// Rebuild the plots and report.html of an earlier run from its saved tables.
    Report {
        /// The run's output folder.
        dir: PathBuf,
    },
    /// Datasets and checkpoints: list them, or fetch them into the cache.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// List the study kinds and the configs under experiments/.
    List {
        /// Folder of configs.
        #[arg(long, default_value = "experiments")]
        experiments: PathBuf,
    },
}

/// The default config, compiled in.
const EMBEDDED_QUICKSTART: &str = include_str!("../../experiments/quickstart.toml");

#[derive(Subcommand)]
enum DataCommand {
    /// List the datasets of the manifest and whether each is in the cache.
    List,
    /// Fetch datasets (all when none are named) into the cache, verifying sha256.
    Fetch {
        /// Dataset names from `workbench data list`.
        names: Vec<String>,
        /// A folder with the same layout (e.g. ../shared/datasets) to copy from
        /// instead of downloading; works offline.
        #[arg(long)]
        mirror: Option<PathBuf>,
    },
}

/// Fixes candle's CPU thread count once, before any thread starts. Unless
/// `RAYON_NUM_THREADS` is set, candle 0.11 computes it on every CPU matmul by
/// `num_cpus::get_physical()`, which opens and parses /proc/cpuinfo: on the
/// small models of the speculation study that read cost more than the
/// products themselves (38,000 reads and 1.6 s of system time in a 2 s run).
/// The value set is the one candle computes, so nothing else changes (rayon's
/// own default pool also takes it: physical cores instead of logical ones).
fn pin_candle_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // Single-threaded here: nothing reads the environment concurrently.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

fn main() -> ExitCode {
    pin_candle_thread_count();
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            out,
            threads,
            seed,
            quiet,
        } => {
            if threads == Some(0) {
                eprintln!("error: --threads must be at least 1");
                return ExitCode::from(2);
            }
            // Without a config, the quickstart compiled into the binary runs, so the
            // first command works from any folder with no files and no network.
            let (config, config_text) = match config {
                Some(path) => (path, None),
                None => (
                    PathBuf::from("quickstart.toml"),
                    Some(EMBEDDED_QUICKSTART.to_string()),
                ),
            };
            let options = RunOptions {
                config,
                config_text,
                out,
                threads,
                seed,
                quiet,
            };
            match run(&options) {
                Ok(summary) => {
                    if !quiet {
                        println!(
                            "{} units ({} reused) in {:.1} s; report: {}",
                            summary.units,
                            summary.reused,
                            summary.seconds,
                            summary.out.join("report.html").display()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => report_error(&e),
            }
        }
        Command::Report { dir } => match build_report(&dir) {
            Ok(path) => {
                println!("report: {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => report_error(&e),
        },
        Command::Data { command } => match data_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report_error(&e),
        },
        Command::List { experiments } => {
            list(&experiments);
            ExitCode::SUCCESS
        }
    }
}

fn data_command(command: DataCommand) -> anyhow::Result<()> {
    let manifest = data::Manifest::embedded();
    let cache = data::cache_dir();
    match command {
        DataCommand::List => {
            println!(
                "Cache: {} (set {} to move it)",
                cache.display(),
                data::DATA_DIR_ENV
            );
            for d in &manifest.datasets {
                let cached = cache.join(&d.path).is_file();
                println!(
                    "  {:<16} {:>9} bytes  {:<9} {}  [{}]",
                    d.name,
                    d.bytes,
                    if cached { "cached" } else { "not cached" },
                    d.what,
                    d.licence
                );
            }
        }
        DataCommand::Fetch { names, mirror } => {
            let options = data::FetchOptions {
                mirror,
                cache,
                ..data::FetchOptions::default()
            };
            for fetched in data::fetch(&manifest, &names, &options)? {
                println!(
                    "{:<16} {} ({} bytes, sha256 verified): {}",
                    fetched.name,
                    fetched.path.display(),
                    fetched.bytes,
                    fetched.source
                );
            }
        }
    }
    Ok(())
}

fn report_error(e: &anyhow::Error) -> ExitCode {
    if let Some(config) = e.downcast_ref::<ConfigErrors>() {
        for line in &config.0 {
            eprintln!("error: {line}");
        }
        return ExitCode::from(2);
    }
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

fn list(experiments: &Path) {
    println!("Study kinds:");
    for study in studies::all() {
        println!("  {:<12} {}", study.kind(), study.summary());
    }
    let mut configs: Vec<PathBuf> = std::fs::read_dir(experiments)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    configs.sort();
    println!("Configs in {}:", experiments.display());
    if configs.is_empty() {
        println!("  (none)");
    }
    for path in configs {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // The first comment line of a config says what it is for.
        let about = text
            .lines()
            .find_map(|l| l.strip_prefix('#').map(|s| s.trim().to_string()))
            .unwrap_or_default();
        let kind = text
            .lines()
            .find_map(|l| {
                let l = l.trim();
                l.strip_prefix("kind")
                    .and_then(|r| r.trim_start().strip_prefix('='))
                    .map(|r| r.trim().trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "?".into());
        println!("  {:<40} [{kind}] {about}", path.display());
    }
}
