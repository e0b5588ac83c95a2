//! `collectors[] type: postgres` configuration: the connection URL (from a secret), TLS and the
//! optional per-table statistics. Loaded by `collect::CollectorConfig`; checked by
//! [`PostgresConfig::validate`]; turned into connect options by [`PostgresConfig::connect_options`].

use std::path::{Path, PathBuf};
use std::str::FromStr;

use regex::Regex;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::config::Problem;
use crate::config::secret::{self, Secret};

/// `collectors[] type: postgres`: the keys of this collector besides the common ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Environment variable holding the connection URL
    /// (`postgres://user:password@host:port/database?sslmode=...`).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the connection URL (one line). Relative to the config file's directory.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// TLS to the server; overrides `sslmode`/`sslrootcert`/... given in the URL.
    #[serde(default)]
    pub tls: Option<PostgresTls>,
    /// Collect `pg_stat_user_tables_*` for every table of every database the user may connect
    /// to (one connection and one query per database and collection). Default false.
    #[serde(default)]
    pub per_table_stats: bool,
    /// Which databases `per_table_stats` visits (regular expressions on the name, anchored).
    #[serde(default)]
    pub databases: DatabaseFilter,
    /// Collect `pg_settings_*` (the exporter's default; its `--disable-settings-metrics`
    /// is `settings: false`). Default true.
    #[serde(default = "default_true")]
    pub settings: bool,
}

fn default_true() -> bool {
    true
}

/// `tls:` of a postgres collector.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTls {
    /// `disable`, `allow`, `prefer` (libpq's default), `require`, `verify-ca` or `verify-full`.
    #[serde(default)]
    pub mode: Option<TlsMode>,
    /// CA certificate (PEM) to verify the server with; without it the webpki roots are used.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM), with `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS if the server offers it, else plain.
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, verifying the certificate chain.
    VerifyCa,
    /// TLS, verifying the chain and the host name.
    VerifyFull,
}

impl From<TlsMode> for PgSslMode {
    fn from(m: TlsMode) -> Self {
        match m {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Allow => PgSslMode::Allow,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// `databases:` of a postgres collector.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFilter {
    /// Only databases whose whole name matches (default: all that accept connections).
    #[serde(default)]
    pub include: Option<String>,
    /// Skip databases whose whole name matches (applied after `include`).
    #[serde(default)]
    pub exclude: Option<String>,
}

/// Compiled [`DatabaseFilter`].
#[derive(Debug, Clone, Default)]
pub struct DatabaseMatcher {
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl DatabaseMatcher {
    /// Whether `per_table_stats` visits database `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(name))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(name))
    }
}

fn anchored(re: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{re})$"))
}

impl DatabaseFilter {
    /// Compiles the regular expressions (checked by `validate`).
    pub fn compile(&self) -> Result<DatabaseMatcher, String> {
        let one = |key: &str, re: &Option<String>| {
            re.as_deref()
                .map(anchored)
                .transpose()
                .map_err(|e| format!("databases.{key}: {e}"))
        };
        Ok(DatabaseMatcher {
            include: one("include", &self.include)?,
            exclude: one("exclude", &self.exclude)?,
        })
    }
}

fn full(base_dir: &Path, f: &Path) -> PathBuf {
    if f.is_relative() {
        base_dir.join(f)
    } else {
        f.to_path_buf()
    }
}

impl PostgresConfig {
    /// Semantic checks; `path` is e.g. `collectors[2]`.
    pub fn validate(&self, path: &str, base_dir: &Path, out: &mut Vec<Problem>) {
        let mut bad = |key: &str, message: String| out.push(Problem::at(path, key, message));
        match self.url(base_dir) {
            Ok(url) => {
                if let Err(e) = parse_url(&url) {
                    let key = if self.url_env.is_some() {
                        "url_env"
                    } else {
                        "url_file"
                    };
                    bad(key, e);
                }
            }
            Err((key, e)) => bad(key, e),
        }
        if let Some(tls) = &self.tls {
            let mut found = Vec::new();
            crate::config::check_tls_files(
                "tls",
                tls.ca_file.as_deref(),
                tls.cert_file.as_deref(),
                tls.key_file.as_deref(),
                base_dir,
                &mut found,
            );
            for pr in found {
                bad(&pr.path, pr.message);
            }
            if tls.mode == Some(TlsMode::Disable)
                && (tls.ca_file.is_some() || tls.cert_file.is_some())
            {
                bad(
                    "tls.mode",
                    "disable turns TLS off but certificate files are set; use require, verify-ca or verify-full, or remove the files".into(),
                );
            }
        }
        for (key, re) in [
            ("include", &self.databases.include),
            ("exclude", &self.databases.exclude),
        ] {
            if let Some(re) = re {
                if let Err(e) = anchored(re) {
                    let first = e.to_string();
                    let first = first.lines().last().unwrap_or_default().trim().to_string();
                    bad(
                        &format!("databases.{key}"),
                        format!(
                            "regex {re:?} does not compile: {}",
                            first.trim_start_matches("error: ")
                        ),
                    );
                }
            }
        }
        if !self.per_table_stats
            && (self.databases.include.is_some() || self.databases.exclude.is_some())
        {
            bad(
                "databases",
                "only applies to per_table_stats; set per_table_stats: true or remove databases"
                    .into(),
            );
        }
    }

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let fix = |f: &mut Option<PathBuf>| {
            if let Some(p) = f {
                *p = full(base_dir, p);
            }
        };
        fix(&mut self.url_file);
        if let Some(tls) = &mut self.tls {
            fix(&mut tls.ca_file);
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
        }
    }

    /// The URL from `url_env`/`url_file`; on error the key to blame and the message.
    fn url(&self, base_dir: &Path) -> Result<Secret, (&'static str, String)> {
        let key = if self.url_env.is_some() {
            "url_env"
        } else {
            "url_file"
        };
        match secret::resolve(
            "url",
            self.url_env.as_deref(),
            self.url_file.as_deref(),
            base_dir,
        ) {
            Ok(Some(url)) => Ok(url),
            Ok(None) => Err((
                "",
                "missing url_env or url_file; set one to where the postgres://user:password@host:port/database URL is".into(),
            )),
            Err(e) => Err((key, e)),
        }
    }

    /// Connect options for the configured database (URL + `tls`), and the URL without its
    /// password for messages.
    pub fn connect_options(&self) -> Result<(PgConnectOptions, String), String> {
        let url = self.url(Path::new(".")).map_err(|(_, e)| e)?;
        let mut opts = parse_url(&url)?;
        if let Some(tls) = &self.tls {
            if let Some(m) = tls.mode {
                opts = opts.ssl_mode(m.into());
            }
            if let Some(f) = &tls.ca_file {
                opts = opts.ssl_root_cert(f);
            }
            if let Some(f) = &tls.cert_file {
                opts = opts.ssl_client_cert(f);
            }
            if let Some(f) = &tls.key_file {
                opts = opts.ssl_client_key(f);
            }
        }
        Ok((opts, redact(url.expose())))
    }
}

/// Parses a `postgres://` URL without ever putting it in an error message.
fn parse_url(url: &Secret) -> Result<PgConnectOptions, String> {
    let text = url.expose();
    if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        return Err(
            "the URL must start with postgres:// (e.g. postgres://user:password@host:5432/postgres)"
                .into(),
        );
    }
    PgConnectOptions::from_str(text).map_err(|e| {
        // sqlx's parse errors quote the option name, never the password; still, keep only
        // its first line and leave the URL out.
        format!(
            "the URL {} does not parse: {}",
            redact(text),
            e.to_string().lines().next().unwrap_or_default()
        )
    })
}

/// `url` with the password replaced by `***` (for logs and errors).
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "***".into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            // Query parameters may carry a password too (`?password=`): drop them all.
            let path_end = rest[authority_end..]
                .find('?')
                .map_or(rest.len(), |q| authority_end + q);
            format!(
                "{}{masked}@{}{}",
                &url[..scheme_end + 3],
                &authority[at + 1..],
                &rest[authority_end..path_end]
            )
        }
        None => {
            let path_end = rest.find('?').unwrap_or(rest.len());
            format!("{}{}", &url[..scheme_end + 3], &rest[..path_end])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:p%40ss@h:5432/db?sslmode=require&password=x"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h:1/db?password=x"), "postgres://h:1/db");
        assert_eq!(redact("no scheme"), "***");
    }

    #[test]
    fn database_filter() {
        let m = DatabaseFilter {
            include: Some("app.*|vigil".into()),
            exclude: Some("app_old".into()),
        }
        .compile()
        .expect("compiles");
        assert!(m.matches("vigil"));
        assert!(m.matches("app1"));
        assert!(!m.matches("app_old"));
        assert!(!m.matches("myvigil"));
        assert!(DatabaseMatcher::default().matches("anything"));
    }

    #[test]
    fn url_is_never_in_parse_errors() {
        let e = parse_url(&Secret::new("mysql://u:hunter2@h/db".into())).expect_err("bad");
        assert!(!e.contains("hunter2"), "{e}");
        let e =
            parse_url(&Secret::new("postgres://u:hunter2@h:notaport/db".into())).expect_err("bad");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
