//! Fuzz target: loading a configuration file (`Config::from_yaml`: YAML syntax, schema,
//! validation) from arbitrary UTF-8 text. Errors are expected; panics are bugs.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vigil::config::Config::from_yaml(text, "fuzz.yaml", Path::new("."));
    }
});
