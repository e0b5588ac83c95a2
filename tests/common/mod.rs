//! Helpers shared by the integration tests: a running `vigil` process on ephemeral ports, and
//! the test-services environment.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `vigil` binary built for this test run.
pub fn vigil_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Root of the repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `vigil run` child process; killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
    /// `http://127.0.0.1:PORT` of the agent's API.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the demo service, if enabled.
    pub demo_url: Option<String>,
}

impl Daemon {
    /// Starts `vigil run --config <config>` and waits until it logs its listen address.
    pub fn start(config: &Path) -> Daemon {
        Self::start_with_env(config, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables (e.g. a ledger URL).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(vigil_bin())
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut d = Daemon {
            child: Some(child),
            log,
            url: String::new(),
            demo_url: None,
        };
        d.url = d.wait_for_log("listening on http://", Duration::from_secs(60));
        let lines = d.log_lines();
        d.demo_url = lines
            .iter()
            .find_map(|l| url_after(l, "demo service on http://"));
        d
    }

    /// Waits for a log line containing `marker` and returns the URL that follows it.
    pub fn wait_for_log(&mut self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(url) = self.log_lines().iter().find_map(|l| url_after(l, marker)) {
                return url;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "vigil exited ({status}) before logging {marker:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {marker:?} within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the process logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits for the external metrics API's start-up line and returns its URL and the token
    /// file it names (`external metrics API on https://HOST:PORT, token file PATH`).
    pub fn hpa_endpoint(&mut self, timeout: Duration) -> (String, PathBuf) {
        self.wait_for_log("external metrics API on https://", timeout);
        let line = self
            .log_lines()
            .into_iter()
            .find(|l| l.contains("external metrics API on https://"))
            .expect("log line");
        let rest = &line[line.find("https://").expect("https")..];
        let url = rest.split(',').next().expect("url").to_string();
        let token_file = PathBuf::from(
            rest.split("token file ")
                .nth(1)
                .expect("token file in the log line")
                .trim(),
        );
        (url, token_file)
    }

    /// The log as one string, for assertion messages.
    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{name} {pid} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigil did not exit within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET a path on the agent; returns status and body.
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("{}{}", self.url, path))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn url_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '/' && *c != ')')
        .collect();
    Some(format!("http://{addr}"))
}

/// A blocking GET; returns status and body (status 0 if the connection failed).
pub fn http_get(url: &str) -> (u16, String) {
    match reqwest::blocking::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
    {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// A blocking POST with a text body.
pub fn http_post(url: &str, body: &str) -> (u16, String) {
    match reqwest::blocking::Client::new()
        .post(url)
        .body(body.to_string())
        .timeout(Duration::from_secs(10))
        .send()
    {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Polls `f` every 100 ms until it returns Some, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the first sample line of `/metrics` text that starts with `series` (a name or
/// `name{labels}` prefix).
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Writes a config for a daemon on ephemeral ports with its data in `dir`.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("vigil.yaml");
    let text = format!(
        "agent:\n  listen: 127.0.0.1:0\n  data_dir: {}\n  evaluation_interval: 1s\n  shutdown_grace_period: 5s\n{extra}",
        dir.join("data").display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Default state directory of `scripts/test-services.sh`.
const DEFAULT_STATE_DIR: &str = "/tmp/vigil-test-services";

/// The value of a test-service variable (`VIGIL_TEST_PG_URL`, ...): from the environment, else
/// from the env file that `scripts/test-services.sh` writes. Panics with instructions when the
/// service has not been started: under the test command no test passes by skipping.
pub fn service(var: &str, what: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        if !v.is_empty() {
            return v;
        }
    }
    let state = std::env::var("VIGIL_TEST_STATE_DIR").unwrap_or_else(|_| DEFAULT_STATE_DIR.into());
    let env_file = Path::new(&state).join("env");
    if let Ok(text) = std::fs::read_to_string(&env_file) {
        for line in text.lines() {
            let line = line.trim_start_matches("export ").trim();
            if let Some(v) = line.strip_prefix(var).and_then(|r| r.strip_prefix('=')) {
                return v.trim_matches(['"', '\'']).to_string();
            }
        }
    }
    panic!(
        "{what} is needed by this test but {var} is not set and {} does not define it. \
         Start the test services with `scripts/test-services.sh` (or run everything with `scripts/test.sh`).",
        env_file.display()
    );
}
