//! The agent's own metrics in the Prometheus text format 0.0.4: a small writer that every
//! component renders into, plus build info and process metrics (read from /proc, with the names
//! of the Prometheus client libraries).

use std::fmt::Write as _;

/// Content type of the text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that contributes series to `/metrics`.
pub trait MetricsSource: Send + Sync {
    /// Appends this component's families.
    fn write_metrics(&self, w: &mut MetricsWriter);
}

/// Accumulates an exposition. Families are written with [`MetricsWriter::family`] before their
/// samples; values are formatted as Prometheus does (`+Inf`, `NaN`, integers without `.0`).
#[derive(Debug, Default)]
pub struct MetricsWriter {
    out: String,
}

impl MetricsWriter {
    /// An empty exposition.
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(8 * 1024),
        }
    }

    /// Writes `# HELP` and `# TYPE` for a family.
    pub fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// Writes one sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        format_value(value, &mut self.out);
        self.out.push('\n');
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes `\`, `"` and newline in a label value (the exposition renderer's escaping).
pub fn escape_label_value(v: &str, out: &mut String) {
    crate::scrape::exposition::render::escape_label_value(out, v);
}

/// Formats a sample value the way Prometheus' text format does.
pub fn format_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Writes `vigil_build_info`.
pub fn write_build_info(w: &mut MetricsWriter) {
    w.family(
        "vigil_build_info",
        "A metric with a constant '1' value labeled by version, revision and rustc version.",
        "gauge",
    );
    w.sample(
        "vigil_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("revision", env!("VIGIL_GIT_REVISION")),
            ("rustversion", env!("VIGIL_RUSTC_VERSION")),
        ],
        1.0,
    );
}

/// Linux USER_HZ, fixed at 100 on every architecture Linux exports to user space.
const USER_HZ: f64 = 100.0;

/// Process metrics as read from /proc/self.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// Soft limit of open file descriptors.
    pub max_fds: f64,
    /// Start time since the Unix epoch in seconds.
    pub start_time_seconds: f64,
    /// OS threads.
    pub threads: f64,
}

impl ProcessStats {
    /// Reads /proc/self; None where /proc is not available.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state), so field N is f[N - 3].
        let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<f64>().ok());
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })?;
        let rss_kb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("VmRSS:")
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                })
            });
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Max open files")
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse::<f64>().ok())
                })
            });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as f64)
            .ok();
        Some(Self {
            cpu_seconds: (num(14)? + num(15)?) / USER_HZ,
            resident_bytes: rss_kb.unwrap_or(0.0) * 1024.0,
            virtual_bytes: num(23)?,
            open_fds: open_fds.unwrap_or(0.0),
            max_fds: max_fds.unwrap_or(0.0),
            start_time_seconds: boot_time + num(22)? / USER_HZ,
            threads: num(20)?,
        })
    }

    /// Writes the `process_*` families.
    pub fn write_metrics(&self, w: &mut MetricsWriter) {
        let rows: [(&str, &str, &str, f64); 7] = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                self.cpu_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                self.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                "gauge",
                self.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                "gauge",
                self.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                "gauge",
                self.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                self.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                "gauge",
                self.threads,
            ),
        ];
        for (name, help, kind, value) in rows {
            w.family(name, help, kind);
            w.sample(name, &[], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_escapes() {
        let mut w = MetricsWriter::new();
        w.family("x", "a \\ b\nc", "gauge");
        w.sample("x", &[("l", "q\"\\\n")], 3.0);
        w.sample("x", &[], 0.25);
        w.sample("x", &[], f64::INFINITY);
        w.sample("x", &[], f64::NEG_INFINITY);
        w.sample("x", &[], f64::NAN);
        w.sample("x", &[], 1e20);
        assert_eq!(
            w.finish(),
            "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{l=\"q\\\"\\\\\\n\"} 3\nx 0.25\nx +Inf\nx -Inf\nx NaN\nx 100000000000000000000\n"
        );
    }

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read().expect("/proc is mounted on Linux");
        assert!(s.resident_bytes > 1e6, "{s:?}");
        assert!(s.open_fds >= 3.0 && s.max_fds >= s.open_fds, "{s:?}");
        assert!(s.threads >= 1.0);
        let now = crate::config::reload::now_seconds();
        assert!(
            s.start_time_seconds > now - 3600.0 && s.start_time_seconds <= now + 1.0,
            "{s:?}"
        );
    }
}
