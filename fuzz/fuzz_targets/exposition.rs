//! Fuzz target: the exposition parser in both formats and both modes (iterating every entry
//! and every label, as the scrape loop and `vigil check metrics` do), `check`, and format
//! detection, on arbitrary bytes. Any panic is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::scrape::exposition::{
    Entry, Format, Mode, Parser, check, detect_format, format_from_content_type,
};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Text, Format::OpenMetrics] {
        for mode in [Mode::Scrape, Mode::Strict] {
            for entry in Parser::new(data, format, mode).flatten() {
                match entry {
                    Entry::Sample(s) => {
                        for (name, value) in s.labels.iter() {
                            assert!(!name.is_empty());
                            std::hint::black_box(value);
                        }
                        std::hint::black_box(s.labels.get("le"));
                        std::hint::black_box(s.to_owned_sample());
                        if let Some(ex) = s.exemplar {
                            std::hint::black_box(ex.labels.iter().count());
                        }
                    }
                    other => {
                        std::hint::black_box(other);
                    }
                }
            }
        }
        // Strict mode's error list must be sorted by position, as `check` promises.
        let errors = check(data, format);
        assert!(
            errors
                .windows(2)
                .all(|w| (w[0].line, w[0].col) <= (w[1].line, w[1].col))
        );
    }
    std::hint::black_box(detect_format(data));
    if let Ok(text) = std::str::from_utf8(data) {
        std::hint::black_box(format_from_content_type(text));
    }
});
