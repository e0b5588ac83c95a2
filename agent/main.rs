//! The `vigil` command: parses the CLI, sets up logging, loads the configuration and hands over
//! to the daemon or a checker. Exit codes: 0 success, 64 invalid configuration, 1 runtime failure.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil::config::ConfigSource;

/// The static musl build (the container image) allocates with mimalloc: musl's allocator costs
/// about 30% more CPU per scraped sample than glibc's (docs/deploy.md). glibc builds keep theirs.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Work with SLOs.
    Slo {
        #[command(subcommand)]
        what: SloCommand,
    },
    /// Generate Grafana dashboards from the SLOs and collectors, or push them to Grafana.
    Dashboards {
        #[command(subcommand)]
        what: DashboardsCommand,
    },
    /// Probe a running agent's /healthz (the container HEALTHCHECK: the image has no shell or
    /// curl). Exits 0 when healthy, 1 when not.
    Healthcheck {
        /// The URL to probe.
        #[arg(long, default_value = vigil::healthcheck::DEFAULT_URL)]
        url: String,
        /// Give up after this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Run unit tests.
    Test {
        #[command(subcommand)]
        what: TestCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SloCommand {
    /// Print every SLO of a running agent as a table, worst budget first (reads its
    /// /api/v1/slos).
    Status {
        /// Configuration whose agent.listen locates the agent (default: ./vigil.yaml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The agent's URL instead (e.g. http://127.0.0.1:9799).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DashboardsCommand {
    /// Write the dashboards (SLO overview and detail, collectors, agent) as JSON files.
    Generate {
        /// Configuration whose SLOs and collectors are drawn (default: ./vigil.yaml, else the
        /// embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Output directory.
        #[arg(long, value_name = "DIR", default_value = "dashboards")]
        out: PathBuf,
    },
    /// Push the dashboards to the Grafana configured under `grafana:`.
    Push {
        /// Configuration (default: ./vigil.yaml, else the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
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
        Command::Slo {
            what: SloCommand::Status { config, url },
        } => slo_status(config, url),
        Command::Dashboards { what } => dashboards(what),
        Command::Healthcheck { url, timeout } => match vigil::healthcheck::probe(&url, timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vigil healthcheck: {e}");
                ExitCode::FAILURE
            }
        },
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

fn dashboards(what: DashboardsCommand) -> ExitCode {
    let config_path = match &what {
        DashboardsCommand::Generate { config, .. } | DashboardsCommand::Push { config } => {
            config.clone()
        }
    };
    let config = match ConfigSource::resolve(config_path).load() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = match what {
        DashboardsCommand::Generate { out, .. } => vigil::dashboards::cli_generate(&config, &out),
        DashboardsCommand::Push { .. } => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(vigil::dashboards::cli_push(&config)),
            Err(err) => Err(format!("cannot start the async runtime: {err}")),
        },
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("vigil: {err}");
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

fn slo_status(config: Option<PathBuf>, url: Option<String>) -> ExitCode {
    let base = match url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => match ConfigSource::resolve(config).load() {
            Ok(cfg) => {
                let addr = cfg.listen_addr();
                let host = if addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    addr.ip().to_string()
                };
                format!("http://{host}:{}", addr.port())
            }
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let fetch = async {
        let resp = reqwest::Client::new()
            .get(format!("{base}/api/v1/slos"))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await?;
        resp.json::<serde_json::Value>().await
    };
    let body = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(fetch))
    {
        Ok(Ok(v)) => v,
        Ok(Err(err)) => {
            eprintln!(
                "vigil: cannot read {base}/api/v1/slos: {err}; is the agent running (vigil run)?"
            );
            return ExitCode::FAILURE;
        }
        Err(err) => {
            eprintln!("vigil: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", render_slo_table(&body));
    ExitCode::SUCCESS
}

/// The table of `vigil slo status`, worst budget first.
fn render_slo_table(body: &serde_json::Value) -> String {
    let pct = |v: Option<f64>| {
        v.map(|x| format!("{:.3}%", x * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let num = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let mut rows: Vec<(f64, Vec<String>)> = Vec::new();
    for slo in body["data"].as_array().into_iter().flatten() {
        let name = slo["id"].as_str().unwrap_or_default().to_string();
        let window = slo["window"].as_str().unwrap_or_default().to_string();
        let state = slo["condition"].as_str().unwrap_or_default().to_string();
        let objective = pct(slo["objective"].as_f64());
        let instances = slo["instances"].as_array().cloned().unwrap_or_default();
        if instances.is_empty() {
            let dash = || "-".to_string();
            rows.push((
                f64::INFINITY,
                vec![
                    name.clone(),
                    dash(),
                    objective.clone(),
                    window.clone(),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    state.clone(),
                ],
            ));
        }
        for inst in instances {
            let win = |w: &str| {
                inst["windows"]
                    .as_array()
                    .and_then(|ws| ws.iter().find(|x| x["window"] == w).cloned())
            };
            let group: Vec<String> = inst["group"]
                .as_object()
                .map(|g| {
                    g.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let budget = inst["error_budget_remaining"].as_f64().unwrap_or(1.0);
            rows.push((
                budget,
                vec![
                    name.clone(),
                    if group.is_empty() {
                        "-".into()
                    } else {
                        group.join(",")
                    },
                    objective.clone(),
                    window.clone(),
                    pct(win(&window).and_then(|w| w["sli"].as_f64())),
                    pct(Some(budget)),
                    num(win("1h").and_then(|w| w["burn_rate"].as_f64())),
                    num(win("6h").and_then(|w| w["burn_rate"].as_f64())),
                    state.clone(),
                ],
            ));
        }
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let header: Vec<String> = [
        "SLO",
        "GROUP",
        "OBJECTIVE",
        "WINDOW",
        "SLI",
        "BUDGET LEFT",
        "BURN 1h",
        "BURN 6h",
        "STATE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header)
        .chain(rows.iter().map(|r| &r.1))
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| all.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in all {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
