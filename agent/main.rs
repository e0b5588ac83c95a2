//! The `vigil` command: parses the CLI, sets up logging, loads the configuration and hands over
//! to the daemon or a checker. Exit codes: 0 success, 64 invalid configuration, 1 runtime failure.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil::config::ConfigSource;

/// Exit code for an invalid configuration (EX_USAGE, as promtool and amtool use).
const EXIT_CONFIG: u8 = 64;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("VIGIL_GIT_REVISION"),
    ", rustc ",
    env!("VIGIL_RUSTC_VERSION"),
    ")"
);

/// Vigil scrapes metrics, evaluates SLOs with error budgets and burn rates, and alerts.
#[derive(Debug, Parser)]
#[command(name = "vigil", version = LONG_VERSION, about, long_about = None)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent: serve /metrics, /healthz, /readyz, run the demo service and the
    /// evaluation loop. SIGHUP or a change of the config file reloads; SIGTERM stops.
    Run {
        /// Configuration file. Default: ./vigil.yaml if present, else the embedded default.
        #[arg(long, visible_alias = "config.file", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check files for problems without running anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Run unit tests.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Unit-test SLO specs: feed input series (promtool notation) to the engine and check the
    /// SLI, burn rates and budget at given times. Exits 0 when every test passes, 1 when not.
    Rules {
        /// Test files (`rules/*.test.yaml`).
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Validate configuration files and print every problem. Exits 0 when all are valid, 64 when
    /// not.
    Config {
        /// Files to check (default: vigil.yaml).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Check a metrics exposition strictly against the Prometheus text format 0.0.4 or
    /// OpenMetrics 1.0 (like `promtool check metrics`). Prints `line:col: problem` lines; exits 0
    /// when valid, 1 when not.
    Metrics {
        /// Format of the input; `auto` detects it from the content.
        #[arg(long, value_enum, default_value_t = MetricsFormat::Auto)]
        format: MetricsFormat,
        /// File to check; `-` or nothing reads standard input.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MetricsFormat {
    /// Detect from the content.
    Auto,
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.
    Openmetrics,
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            what: CheckCommand::Config { files },
        } => check_config(files),
        Command::Check {
            what: CheckCommand::Metrics { format, file },
        } => check_metrics(format, file),
        Command::Test {
            what: TestCommand::Rules { files },
        } => test_rules(files),
        Command::Run { config } => {
            init_logging(&cli.log_level, cli.log_format);
            run(ConfigSource::resolve(config))
        }
    }
}

fn run(source: ConfigSource) -> ExitCode {
    let config = match source.load() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("{err}");
            eprintln!(
                "vigil: the configuration is invalid; fix the problems above and start again"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing::info!(config = %source.display_name(), version = LONG_VERSION, "starting vigil");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("vigil: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(vigil::daemon::run(source, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err = anyhow::Error::from(err);
            eprintln!("vigil: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(files: Vec<PathBuf>) -> ExitCode {
    let files = if files.is_empty() {
        vec![PathBuf::from("vigil.yaml")]
    } else {
        files
    };
    let mut failed = 0;
    for file in files {
        let source = ConfigSource::File(file);
        match source.load() {
            Ok(_) => println!(
                "{}: SUCCESS: the configuration is valid",
                source.display_name()
            ),
            Err(err) => {
                failed += 1;
                eprintln!("{err}");
                let n = err.count();
                eprintln!(
                    "{}: FAILED: {n} problem{}",
                    source.display_name(),
                    if n == 1 { "" } else { "s" }
                );
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CONFIG)
    }
}

fn check_metrics(format: MetricsFormat, file: Option<PathBuf>) -> ExitCode {
    use std::io::Read;
    use vigil::scrape::exposition::{self, Format};
    let (name, body) = match file.as_deref() {
        None => ("<stdin>".to_string(), {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).map(|_| b)
        }),
        Some(p) if p.as_os_str() == "-" => ("<stdin>".to_string(), {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b).map(|_| b)
        }),
        Some(p) => (p.display().to_string(), std::fs::read(p)),
    };
    let body = match body {
        Ok(b) => b,
        Err(err) => {
            eprintln!("{name}: cannot read: {err}");
            return ExitCode::FAILURE;
        }
    };
    let format = match format {
        MetricsFormat::Auto => exposition::detect_format(&body),
        MetricsFormat::Text => Format::Text,
        MetricsFormat::Openmetrics => Format::OpenMetrics,
    };
    let problems = exposition::check(&body, format);
    for p in &problems {
        eprintln!("{p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn test_rules(files: Vec<PathBuf>) -> ExitCode {
    let mut failed = false;
    for file in files {
        println!("Unit Testing: {}", file.display());
        match vigil::slo::testing::run_file(&file) {
            Ok(failures) if failures.is_empty() => println!("  SUCCESS"),
            Ok(failures) => {
                failed = true;
                println!("  FAILED:");
                for f in failures {
                    println!("    {f}");
                }
            }
            Err(e) => {
                failed = true;
                println!("  FAILED:\n    {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
