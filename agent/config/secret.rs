//! Secrets referenced from the config as `<key>_env` (an environment variable) or `<key>_file` (a
//! file whose content, trimmed of one trailing newline, is the secret). The value is read at load
//! and reload; [`Secret`] never prints its content.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that is known not to be sensitive enough to refuse (e.g. a URL without a
    /// password), so that it is handled like any other secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Resolves `<key>_env` / `<key>_file`. `key` names the pair in messages (e.g. `password`).
/// Relative files are resolved against `base_dir`. Ok(None) when neither is set.
pub fn resolve(
    key: &str,
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<Secret>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!("set either {key}_env or {key}_file, not both")),
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
            Ok(_) => Err(format!(
                "environment variable {var} (from {key}_env) is empty; set it"
            )),
            Err(_) => Err(format!(
                "environment variable {var} (from {key}_env) is not set; export it before starting vigil"
            )),
        },
        (None, Some(path)) => {
            let full: PathBuf = if path.is_relative() {
                base_dir.join(path)
            } else {
                path.to_path_buf()
            };
            match std::fs::read_to_string(&full) {
                Ok(v) => {
                    let v = v.strip_suffix('\n').unwrap_or(&v);
                    let v = v.strip_suffix('\r').unwrap_or(v);
                    if v.is_empty() {
                        Err(format!("{} (from {key}_file) is empty", full.display()))
                    } else {
                        Ok(Some(Secret(v.to_string())))
                    }
                }
                Err(e) => Err(format!(
                    "cannot read {} (from {key}_file): {e}; check the path and its permissions",
                    full.display()
                )),
            }
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_and_redaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let s = resolve("password", None, Some(Path::new("pw")), dir.path())
            .expect("ok")
            .expect("some");
        assert_eq!(s.expose(), "s3cret");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let e = resolve("password", Some("VIGIL_SURELY_UNSET_VAR"), None, dir.path())
            .expect_err("should fail");
        assert!(
            e.contains("VIGIL_SURELY_UNSET_VAR (from password_env) is not set"),
            "{e}"
        );
        let e = resolve("password", None, Some(Path::new("missing")), dir.path())
            .expect_err("should fail");
        assert!(e.contains("missing (from password_file)"), "{e}");
        assert!(
            resolve("token", Some("A"), Some(Path::new("b")), dir.path())
                .expect_err("should fail")
                .contains("not both")
        );
        assert_eq!(resolve("token", None, None, dir.path()), Ok(None));
    }
}
