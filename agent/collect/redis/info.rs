//! The `INFO ALL` reply as redis_exporter turns it into metrics: the field-to-metric tables
//! (names and types as in redis_exporter 1.45), the keyspace, commandstats, errorstats and
//! replica lines, and `redis_instance_info`. Pure functions over the reply text; called by the
//! collector in `mod.rs` once per collection.

use std::collections::HashMap;

use super::super::{Kind, Output};

/// `INFO` fields exported under a name of their own: (field, metric name without `redis_`, kind).
/// The set and the names are redis_exporter's (`metricMapGauges` / `metricMapCounters`).
const FIELDS: &[(&str, &str, Kind)] = &[
    // Server
    ("uptime_in_seconds", "uptime_in_seconds", Kind::Gauge),
    ("process_id", "process_id", Kind::Gauge),
    ("io_threads_active", "io_threads_active", Kind::Gauge),
    // Clients
    ("connected_clients", "connected_clients", Kind::Gauge),
    ("blocked_clients", "blocked_clients", Kind::Gauge),
    ("tracking_clients", "tracking_clients", Kind::Gauge),
    (
        "clients_in_timeout_table",
        "clients_in_timeout_table",
        Kind::Gauge,
    ),
    ("cluster_connections", "cluster_connections", Kind::Gauge),
    (
        "client_longest_output_list",
        "client_longest_output_list",
        Kind::Gauge,
    ),
    (
        "client_biggest_input_buf",
        "client_biggest_input_buf",
        Kind::Gauge,
    ),
    (
        "client_recent_max_output_buffer",
        "client_recent_max_output_buffer_bytes",
        Kind::Gauge,
    ),
    (
        "client_recent_max_input_buffer",
        "client_recent_max_input_buffer_bytes",
        Kind::Gauge,
    ),
    // Memory
    ("allocator_active", "allocator_active_bytes", Kind::Gauge),
    (
        "allocator_allocated",
        "allocator_allocated_bytes",
        Kind::Gauge,
    ),
    (
        "allocator_resident",
        "allocator_resident_bytes",
        Kind::Gauge,
    ),
    ("allocator_frag_ratio", "allocator_frag_ratio", Kind::Gauge),
    ("allocator_frag_bytes", "allocator_frag_bytes", Kind::Gauge),
    ("allocator_rss_ratio", "allocator_rss_ratio", Kind::Gauge),
    ("allocator_rss_bytes", "allocator_rss_bytes", Kind::Gauge),
    ("used_memory", "memory_used_bytes", Kind::Gauge),
    ("used_memory_rss", "memory_used_rss_bytes", Kind::Gauge),
    ("used_memory_peak", "memory_used_peak_bytes", Kind::Gauge),
    ("used_memory_lua", "memory_used_lua_bytes", Kind::Gauge),
    (
        "used_memory_overhead",
        "memory_used_overhead_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_startup",
        "memory_used_startup_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_dataset",
        "memory_used_dataset_bytes",
        Kind::Gauge,
    ),
    (
        "used_memory_scripts",
        "memory_used_scripts_bytes",
        Kind::Gauge,
    ),
    (
        "number_of_cached_scripts",
        "number_of_cached_scripts",
        Kind::Gauge,
    ),
    ("maxmemory", "memory_max_bytes", Kind::Gauge),
    (
        "mem_fragmentation_ratio",
        "mem_fragmentation_ratio",
        Kind::Gauge,
    ),
    (
        "mem_fragmentation_bytes",
        "mem_fragmentation_bytes",
        Kind::Gauge,
    ),
    ("mem_clients_slaves", "mem_clients_slaves", Kind::Gauge),
    ("mem_clients_normal", "mem_clients_normal", Kind::Gauge),
    (
        "expired_stale_perc",
        "expired_stale_percentage",
        Kind::Gauge,
    ),
    (
        "mem_not_counted_for_evict",
        "mem_not_counted_for_eviction_bytes",
        Kind::Gauge,
    ),
    (
        "lazyfree_pending_objects",
        "lazyfree_pending_objects",
        Kind::Gauge,
    ),
    (
        "active_defrag_running",
        "active_defrag_running",
        Kind::Gauge,
    ),
    (
        "migrate_cached_sockets",
        "migrate_cached_sockets_total",
        Kind::Gauge,
    ),
    ("active_defrag_hits", "defrag_hits", Kind::Gauge),
    ("active_defrag_misses", "defrag_misses", Kind::Gauge),
    ("active_defrag_key_hits", "defrag_key_hits", Kind::Gauge),
    ("active_defrag_key_misses", "defrag_key_misses", Kind::Gauge),
    (
        "expired_time_cap_reached_count",
        "expired_time_cap_reached_total",
        Kind::Gauge,
    ),
    // Persistence
    ("loading", "loading_dump_file", Kind::Gauge),
    (
        "rdb_changes_since_last_save",
        "rdb_changes_since_last_save",
        Kind::Gauge,
    ),
    (
        "rdb_bgsave_in_progress",
        "rdb_bgsave_in_progress",
        Kind::Gauge,
    ),
    (
        "rdb_last_save_time",
        "rdb_last_save_timestamp_seconds",
        Kind::Gauge,
    ),
    (
        "rdb_last_bgsave_status",
        "rdb_last_bgsave_status",
        Kind::Gauge,
    ),
    (
        "rdb_last_bgsave_time_sec",
        "rdb_last_bgsave_duration_sec",
        Kind::Gauge,
    ),
    (
        "rdb_current_bgsave_time_sec",
        "rdb_current_bgsave_duration_sec",
        Kind::Gauge,
    ),
    ("rdb_last_cow_size", "rdb_last_cow_size_bytes", Kind::Gauge),
    ("aof_enabled", "aof_enabled", Kind::Gauge),
    (
        "aof_rewrite_in_progress",
        "aof_rewrite_in_progress",
        Kind::Gauge,
    ),
    (
        "aof_rewrite_scheduled",
        "aof_rewrite_scheduled",
        Kind::Gauge,
    ),
    (
        "aof_last_rewrite_time_sec",
        "aof_last_rewrite_duration_sec",
        Kind::Gauge,
    ),
    (
        "aof_current_rewrite_time_sec",
        "aof_current_rewrite_duration_sec",
        Kind::Gauge,
    ),
    ("aof_last_cow_size", "aof_last_cow_size_bytes", Kind::Gauge),
    ("aof_current_size", "aof_current_size_bytes", Kind::Gauge),
    ("aof_base_size", "aof_base_size_bytes", Kind::Gauge),
    ("aof_pending_rewrite", "aof_pending_rewrite", Kind::Gauge),
    ("aof_buffer_length", "aof_buffer_length", Kind::Gauge),
    (
        "aof_rewrite_buffer_length",
        "aof_rewrite_buffer_length",
        Kind::Gauge,
    ),
    (
        "aof_pending_bio_fsync",
        "aof_pending_bio_fsync",
        Kind::Gauge,
    ),
    ("aof_delayed_fsync", "aof_delayed_fsync", Kind::Gauge),
    (
        "aof_last_bgrewrite_status",
        "aof_last_bgrewrite_status",
        Kind::Gauge,
    ),
    (
        "aof_last_write_status",
        "aof_last_write_status",
        Kind::Gauge,
    ),
    (
        "module_fork_in_progress",
        "module_fork_in_progress",
        Kind::Gauge,
    ),
    (
        "module_fork_last_cow_size",
        "module_fork_last_cow_size",
        Kind::Gauge,
    ),
    // Stats
    ("pubsub_channels", "pubsub_channels", Kind::Gauge),
    ("pubsub_patterns", "pubsub_patterns", Kind::Gauge),
    ("latest_fork_usec", "latest_fork_seconds", Kind::Gauge),
    ("tracking_total_keys", "tracking_total_keys", Kind::Gauge),
    ("tracking_total_items", "tracking_total_items", Kind::Gauge),
    (
        "tracking_total_prefixes",
        "tracking_total_prefixes",
        Kind::Gauge,
    ),
    (
        "total_connections_received",
        "connections_received_total",
        Kind::Counter,
    ),
    (
        "total_commands_processed",
        "commands_processed_total",
        Kind::Counter,
    ),
    (
        "rejected_connections",
        "rejected_connections_total",
        Kind::Counter,
    ),
    (
        "total_net_input_bytes",
        "net_input_bytes_total",
        Kind::Counter,
    ),
    (
        "total_net_output_bytes",
        "net_output_bytes_total",
        Kind::Counter,
    ),
    ("expired_keys", "expired_keys_total", Kind::Counter),
    ("evicted_keys", "evicted_keys_total", Kind::Counter),
    ("keyspace_hits", "keyspace_hits_total", Kind::Counter),
    ("keyspace_misses", "keyspace_misses_total", Kind::Counter),
    ("total_error_replies", "total_error_replies", Kind::Counter),
    (
        "unexpected_error_replies",
        "unexpected_error_replies",
        Kind::Counter,
    ),
    (
        "dump_payload_sanitizations",
        "dump_payload_sanitizations",
        Kind::Counter,
    ),
    (
        "total_reads_processed",
        "total_reads_processed",
        Kind::Counter,
    ),
    (
        "total_writes_processed",
        "total_writes_processed",
        Kind::Counter,
    ),
    (
        "io_threaded_reads_processed",
        "io_threaded_reads_processed",
        Kind::Counter,
    ),
    (
        "io_threaded_writes_processed",
        "io_threaded_writes_processed",
        Kind::Counter,
    ),
    // Replication
    ("connected_slaves", "connected_slaves", Kind::Gauge),
    (
        "repl_backlog_size",
        "replication_backlog_bytes",
        Kind::Gauge,
    ),
    ("repl_backlog_active", "repl_backlog_is_active", Kind::Gauge),
    (
        "repl_backlog_first_byte_offset",
        "repl_backlog_first_byte_offset",
        Kind::Gauge,
    ),
    (
        "repl_backlog_histlen",
        "repl_backlog_history_bytes",
        Kind::Gauge,
    ),
    ("master_repl_offset", "master_repl_offset", Kind::Gauge),
    ("second_repl_offset", "second_repl_offset", Kind::Gauge),
    (
        "slave_expires_tracked_keys",
        "slave_expires_tracked_keys",
        Kind::Gauge,
    ),
    ("slave_priority", "slave_priority", Kind::Gauge),
    ("sync_full", "replica_resyncs_full", Kind::Gauge),
    (
        "sync_partial_ok",
        "replica_partial_resync_accepted",
        Kind::Gauge,
    ),
    (
        "sync_partial_err",
        "replica_partial_resync_denied",
        Kind::Gauge,
    ),
    // CPU
    ("used_cpu_sys", "cpu_sys_seconds_total", Kind::Counter),
    ("used_cpu_user", "cpu_user_seconds_total", Kind::Counter),
    (
        "used_cpu_sys_children",
        "cpu_sys_children_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_user_children",
        "cpu_user_children_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_sys_main_thread",
        "cpu_sys_main_thread_seconds_total",
        Kind::Counter,
    ),
    (
        "used_cpu_user_main_thread",
        "cpu_user_main_thread_seconds_total",
        Kind::Counter,
    ),
    // Cluster
    ("cluster_enabled", "cluster_enabled", Kind::Gauge),
];

/// The labels of `redis_instance_info`, in redis_exporter's order.
const INSTANCE_LABELS: &[&str] = &[
    "role",
    "redis_version",
    "redis_build_id",
    "redis_mode",
    "os",
    "maxmemory_policy",
    "tcp_port",
    "run_id",
    "process_id",
];

/// One `INFO` reply, borrowed: every `field:value` line in order, sections dropped.
#[derive(Debug, Default)]
pub struct Info<'a> {
    fields: Vec<(&'a str, &'a str)>,
    by_name: HashMap<&'a str, &'a str>,
}

impl<'a> Info<'a> {
    /// Splits the reply into fields (`\r\n` or `\n` lines; `#` lines and blanks skipped).
    pub fn parse(text: &'a str) -> Self {
        let fields = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .collect::<Vec<_>>();
        let by_name = fields.iter().copied().collect();
        Self { fields, by_name }
    }

    /// The value of `field`, if the reply has it.
    pub fn get(&self, field: &str) -> Option<&'a str> {
        self.by_name.get(field).copied()
    }

    /// The major version from `redis_version` (0 when missing).
    pub fn major_version(&self) -> u32 {
        self.get("redis_version")
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Writes every metric redis_exporter derives from `INFO`; `databases` is the number of
    /// databases to zero-fill `redis_db_keys` / `redis_db_keys_expiring` for.
    pub fn write(&self, databases: u32, now_seconds: f64, out: &mut Output) {
        for (field, name, kind) in FIELDS {
            let Some(raw) = self.get(field) else {
                continue;
            };
            let Some(mut value) = field_value(field, raw) else {
                continue;
            };
            if *field == "latest_fork_usec" {
                value /= 1e6;
            }
            out.family(&format!("redis_{name}"), &format!("{name} metric"), *kind);
            out.sample(&[], value);
        }
        if let Some(uptime) = self
            .get("uptime_in_seconds")
            .and_then(|v| v.parse::<f64>().ok())
        {
            let now = self
                .get("server_time_usec")
                .and_then(|v| v.parse::<f64>().ok())
                .map(|us| us / 1e6)
                .unwrap_or(now_seconds);
            out.family(
                "redis_start_time_seconds",
                "Start time of the Redis instance since unix epoch in seconds.",
                Kind::Gauge,
            );
            out.sample(&[], (now - uptime).round());
        }
        self.write_instance_info(out);
        self.write_keyspace(databases, out);
        self.write_commandstats(out);
        self.write_errorstats(out);
        self.write_replicas(out);
    }

    fn write_instance_info(&self, out: &mut Output) {
        if self.get("redis_version").is_none() {
            return;
        }
        let labels: Vec<(&str, &str)> = INSTANCE_LABELS
            .iter()
            .map(|l| (*l, self.get(l).unwrap_or("")))
            .collect();
        out.family(
            "redis_instance_info",
            "Information about the Redis instance",
            Kind::Gauge,
        );
        out.sample(&labels, 1.0);
    }

    /// `db3:keys=2,expires=0,avg_ttl=0`, zero-filled for db0..db{databases-1}.
    fn write_keyspace(&self, databases: u32, out: &mut Output) {
        let mut dbs: Vec<(u32, Keyspace)> = self
            .fields
            .iter()
            .filter_map(|(k, v)| {
                let n: u32 = k.strip_prefix("db")?.parse().ok()?;
                Some((n, Keyspace::parse(v)?))
            })
            .collect();
        for n in 0..databases {
            if !dbs.iter().any(|(d, _)| *d == n) {
                dbs.push((n, Keyspace::default()));
            }
        }
        dbs.sort_by_key(|(d, _)| *d);
        let names: Vec<String> = dbs.iter().map(|(d, _)| format!("db{d}")).collect();
        out.family("redis_db_keys", "Total number of keys by DB", Kind::Gauge);
        for ((_, ks), name) in dbs.iter().zip(&names) {
            out.sample(&[("db", name)], ks.keys);
        }
        out.family(
            "redis_db_keys_expiring",
            "Total number of expiring keys by DB",
            Kind::Gauge,
        );
        for ((_, ks), name) in dbs.iter().zip(&names) {
            out.sample(&[("db", name)], ks.expires);
        }
        // Like the exporter: the average TTL only for databases INFO lists.
        let mut first = true;
        for ((_, ks), name) in dbs.iter().zip(&names) {
            if let Some(ttl) = ks.avg_ttl_ms {
                if first {
                    out.family(
                        "redis_db_avg_ttl_seconds",
                        "Avg TTL in seconds",
                        Kind::Gauge,
                    );
                    first = false;
                }
                out.sample(&[("db", name)], ttl / 1000.0);
            }
        }
    }

    /// `cmdstat_get:calls=1,usec=2,usec_per_call=2.00,rejected_calls=0,failed_calls=0`.
    fn write_commandstats(&self, out: &mut Output) {
        let stats: Vec<(&str, CommandStat)> = self
            .fields
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("cmdstat_")?, CommandStat::parse(v)?)))
            .collect();
        if stats.is_empty() {
            return;
        }
        out.family(
            "redis_commands_total",
            "Total number of calls per command",
            Kind::Counter,
        );
        for (cmd, s) in &stats {
            out.sample(&[("cmd", cmd)], s.calls);
        }
        out.family(
            "redis_commands_duration_seconds_total",
            "Total amount of time in seconds spent per command",
            Kind::Counter,
        );
        for (cmd, s) in &stats {
            out.sample(&[("cmd", cmd)], s.usec / 1e6);
        }
        if stats.iter().any(|(_, s)| s.rejected.is_some()) {
            out.family(
                "redis_commands_rejected_calls_total",
                "Total number of errors within command execution per command",
                Kind::Counter,
            );
            for (cmd, s) in &stats {
                out.sample(&[("cmd", cmd)], s.rejected.unwrap_or(0.0));
            }
            out.family(
                "redis_commands_failed_calls_total",
                "Total number of errors prior command execution per command",
                Kind::Counter,
            );
            for (cmd, s) in &stats {
                out.sample(&[("cmd", cmd)], s.failed.unwrap_or(0.0));
            }
        }
    }

    /// `errorstat_ERR:count=3`.
    fn write_errorstats(&self, out: &mut Output) {
        let mut first = true;
        for (k, v) in &self.fields {
            let Some(err) = k.strip_prefix("errorstat_") else {
                continue;
            };
            let Some(count) = v
                .strip_prefix("count=")
                .and_then(|c| c.split(',').next())
                .and_then(|c| c.parse::<f64>().ok())
            else {
                continue;
            };
            if first {
                out.family(
                    "redis_errors_total",
                    "Total number of errors per error type",
                    Kind::Counter,
                );
                first = false;
            }
            out.sample(&[("err", err)], count);
        }
    }

    /// `slave0:ip=10.0.0.2,port=6380,state=online,offset=123,lag=0` on a primary.
    fn write_replicas(&self, out: &mut Output) {
        let replicas: Vec<Vec<(&str, &str)>> = self
            .fields
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.split(',').filter_map(|kv| kv.split_once('=')).collect())
            .collect();
        let get = |r: &[(&'a str, &'a str)], key: &str| {
            r.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        };
        for (metric, help, field) in [
            (
                "redis_connected_slave_offset_bytes",
                "Offset of connected slave",
                "offset",
            ),
            (
                "redis_connected_slave_lag_seconds",
                "Lag of connected slave",
                "lag",
            ),
        ] {
            let mut first = true;
            for r in &replicas {
                let Some(value) = get(r, field).and_then(|v| v.parse::<f64>().ok()) else {
                    continue;
                };
                if first {
                    out.family(metric, help, Kind::Gauge);
                    first = false;
                }
                out.sample(
                    &[
                        ("slave_ip", get(r, "ip").unwrap_or("")),
                        ("slave_port", get(r, "port").unwrap_or("")),
                        ("slave_state", get(r, "state").unwrap_or("")),
                    ],
                    value,
                );
            }
        }
    }
}

/// A field's numeric value; `ok`/`err` statuses become 1/0 as in the exporter.
fn field_value(field: &str, raw: &str) -> Option<f64> {
    if field.ends_with("_status") {
        return Some(if raw == "ok" { 1.0 } else { 0.0 });
    }
    raw.trim_end_matches('%').parse().ok()
}

#[derive(Debug, Default, PartialEq)]
struct Keyspace {
    keys: f64,
    expires: f64,
    avg_ttl_ms: Option<f64>,
}

impl Keyspace {
    fn parse(text: &str) -> Option<Self> {
        let mut ks = Keyspace::default();
        let mut saw_keys = false;
        for (k, v) in text.split(',').filter_map(|kv| kv.split_once('=')) {
            let v: f64 = v.parse().ok()?;
            match k {
                "keys" => {
                    ks.keys = v;
                    saw_keys = true;
                }
                "expires" => ks.expires = v,
                "avg_ttl" => ks.avg_ttl_ms = Some(v),
                _ => {}
            }
        }
        saw_keys.then_some(ks)
    }
}

#[derive(Debug, Default, PartialEq)]
struct CommandStat {
    calls: f64,
    usec: f64,
    rejected: Option<f64>,
    failed: Option<f64>,
}

impl CommandStat {
    fn parse(text: &str) -> Option<Self> {
        let mut s = CommandStat::default();
        let mut saw_calls = false;
        for (k, v) in text.split(',').filter_map(|kv| kv.split_once('=')) {
            match k {
                "calls" => {
                    s.calls = v.parse().ok()?;
                    saw_calls = true;
                }
                "usec" => s.usec = v.parse().ok()?,
                "rejected_calls" => s.rejected = v.parse().ok(),
                "failed_calls" => s.failed = v.parse().ok(),
                _ => {}
            }
        }
        saw_calls.then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Server\r\nredis_version:7.0.15\r\nredis_build_id:ae4d\r\nredis_mode:standalone\r\nos:Linux x86_64\r\nprocess_id:42\r\nrun_id:abc\r\ntcp_port:6379\r\nserver_time_usec:1000000000000000\r\nuptime_in_seconds:100\r\n\r\n# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:1.50\r\n\r\n# Persistence\r\nrdb_last_bgsave_status:err\r\naof_last_write_status:ok\r\n\r\n# Stats\r\nkeyspace_hits:7\r\nlatest_fork_usec:1500\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=10.0.0.2,port=6380,state=online,offset=123,lag=1\r\n\r\n# CPU\r\nused_cpu_sys:0.5\r\n\r\n# Commandstats\r\ncmdstat_get:calls=3,usec=20,usec_per_call=6.67,rejected_calls=1,failed_calls=2\r\ncmdstat_client|setname:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\r\n# Errorstats\r\nerrorstat_ERR:count=4\r\nerrorstat_WRONGTYPE:count=1\r\n\r\n# Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=3000\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";

    /// (name, type, labels, value) of every sample.
    type Row = (String, String, Vec<(String, String)>, f64);

    fn collect(databases: u32) -> Vec<Row> {
        let mut out = Output::default();
        Info::parse(SAMPLE).write(databases, 0.0, &mut out);
        out.families()
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(move |(s, v)| {
                    let labels = s
                        .labels
                        .iter()
                        .filter(|(k, _)| *k != "__name__")
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    (f.name.clone(), f.kind.as_str().to_string(), labels, *v)
                })
            })
            .collect()
    }

    fn value(all: &[Row], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        all.iter()
            .find(|(n, _, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, _, v)| *v)
    }

    #[test]
    fn fields_map_to_exporter_names_and_units() {
        let all = collect(16);
        assert_eq!(value(&all, "redis_memory_used_bytes", &[]), Some(1024.0));
        assert_eq!(value(&all, "redis_mem_fragmentation_ratio", &[]), Some(1.5));
        assert_eq!(value(&all, "redis_keyspace_hits_total", &[]), Some(7.0));
        assert_eq!(value(&all, "redis_latest_fork_seconds", &[]), Some(0.0015));
        assert_eq!(value(&all, "redis_rdb_last_bgsave_status", &[]), Some(0.0));
        assert_eq!(value(&all, "redis_aof_last_write_status", &[]), Some(1.0));
        assert_eq!(value(&all, "redis_cpu_sys_seconds_total", &[]), Some(0.5));
        assert_eq!(
            value(&all, "redis_start_time_seconds", &[]),
            Some(999_999_900.0)
        );
        // Human-readable duplicates are not exported.
        assert!(all.iter().all(|(n, ..)| !n.contains("human")));
        let kind = |name: &str| {
            all.iter()
                .find(|(n, ..)| n == name)
                .map(|(_, k, ..)| k.clone())
        };
        assert_eq!(
            kind("redis_keyspace_hits_total").as_deref(),
            Some("counter")
        );
        assert_eq!(kind("redis_memory_used_bytes").as_deref(), Some("gauge"));
    }

    #[test]
    fn keyspace_is_zero_filled() {
        let all = collect(16);
        assert_eq!(value(&all, "redis_db_keys", &[("db", "db0")]), Some(5.0));
        assert_eq!(value(&all, "redis_db_keys", &[("db", "db3")]), Some(1.0));
        assert_eq!(value(&all, "redis_db_keys", &[("db", "db15")]), Some(0.0));
        assert_eq!(value(&all, "redis_db_keys", &[("db", "db16")]), None);
        assert_eq!(
            value(&all, "redis_db_keys_expiring", &[("db", "db0")]),
            Some(2.0)
        );
        assert_eq!(
            value(&all, "redis_db_avg_ttl_seconds", &[("db", "db0")]),
            Some(3.0)
        );
        assert_eq!(
            value(&all, "redis_db_avg_ttl_seconds", &[("db", "db1")]),
            None
        );
        let few = collect(2);
        // A database INFO lists is reported even beyond the configured count.
        assert_eq!(value(&few, "redis_db_keys", &[("db", "db3")]), Some(1.0));
        assert_eq!(value(&few, "redis_db_keys", &[("db", "db2")]), None);
    }

    #[test]
    fn commandstats_errorstats_replicas_and_info() {
        let all = collect(16);
        assert_eq!(
            value(&all, "redis_commands_total", &[("cmd", "get")]),
            Some(3.0)
        );
        assert_eq!(
            value(&all, "redis_commands_total", &[("cmd", "client|setname")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &all,
                "redis_commands_duration_seconds_total",
                &[("cmd", "get")]
            ),
            Some(20e-6)
        );
        assert_eq!(
            value(
                &all,
                "redis_commands_rejected_calls_total",
                &[("cmd", "get")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&all, "redis_commands_failed_calls_total", &[("cmd", "get")]),
            Some(2.0)
        );
        assert_eq!(
            value(&all, "redis_errors_total", &[("err", "ERR")]),
            Some(4.0)
        );
        assert_eq!(
            value(&all, "redis_errors_total", &[("err", "WRONGTYPE")]),
            Some(1.0)
        );
        assert_eq!(
            value(
                &all,
                "redis_connected_slave_offset_bytes",
                &[("slave_ip", "10.0.0.2"), ("slave_state", "online")]
            ),
            Some(123.0)
        );
        assert_eq!(
            value(
                &all,
                "redis_connected_slave_lag_seconds",
                &[("slave_port", "6380")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &all,
                "redis_instance_info",
                &[
                    ("role", "master"),
                    ("redis_version", "7.0.15"),
                    ("maxmemory_policy", "noeviction"),
                    ("tcp_port", "6379"),
                    ("process_id", "42")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(Info::parse(SAMPLE).major_version(), 7);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let mut out = Output::default();
        let info = Info::parse(
            "garbage\nused_memory:notanumber\ncmdstat_x:calls=oops\ndb0:keys=x\nconnected_clients:3\n",
        );
        info.write(1, 0.0, &mut out);
        let names: Vec<&str> = out.families().iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"redis_connected_clients"), "{names:?}");
        assert!(!names.contains(&"redis_memory_used_bytes"), "{names:?}");
        assert!(!names.contains(&"redis_commands_total"), "{names:?}");
        assert_eq!(info.major_version(), 0);
    }
}
