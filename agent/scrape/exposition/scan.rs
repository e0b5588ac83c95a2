//! Byte-level scanning helpers for the exposition parser: word-at-a-time byte search, the
//! metric/label name character tables, number and timestamp parsing and escape handling.
//!
//! Everything here works on borrowed bytes, never allocates on the common path and never
//! panics on any input: indexing goes through `get`, arithmetic is checked. The parser in
//! `mod.rs` and the strict validator in `strict.rs` are the only callers.

use std::borrow::Cow;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Non-zero iff some byte of `v` is zero; the lowest set bit marks the first zero byte
/// (false positives only ever appear above a true zero byte, so the lowest one is exact).
#[inline(always)]
fn zero_byte_mask(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

#[inline(always)]
fn load8(chunk: &[u8]) -> u64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(chunk);
    u64::from_le_bytes(arr)
}

/// Position of the first `needle` in `hay`, scanning eight bytes at a time.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(needle));
    let mut base = 0usize;
    // Sixteen bytes per step: one branch for two words keeps long lines cheap.
    let mut pairs = hay.chunks_exact(16);
    for pair in &mut pairs {
        let (a, b) = pair.split_at(8);
        let ma = zero_byte_mask(load8(a) ^ rep);
        let mb = zero_byte_mask(load8(b) ^ rep);
        if ma | mb != 0 {
            let off = if ma != 0 {
                ma.trailing_zeros()
            } else {
                64 + mb.trailing_zeros()
            };
            return Some(base + (off / 8) as usize);
        }
        base += 16;
    }
    let mut chunks = pairs.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        let m = zero_byte_mask(load8(chunk) ^ rep);
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == needle)
        .map(|p| base + p)
}

/// `hay.starts_with(prefix)`, eight bytes at a time. The standard one calls libc's `memcmp`,
/// and musl's (the static build in the container image) compares byte by byte: on the parser's
/// per-sample hint check that was about 15% of the scrape loop's CPU (docs/deploy.md).
#[inline]
pub(crate) fn starts_with(hay: &[u8], prefix: &[u8]) -> bool {
    let Some(head) = hay.get(..prefix.len()) else {
        return false;
    };
    let Some(tail_at) = prefix.len().checked_sub(8) else {
        return head.iter().zip(prefix).all(|(a, b)| a == b);
    };
    let mut words = head.chunks_exact(8).zip(prefix.chunks_exact(8));
    if !words.all(|(a, b)| load8(a) == load8(b)) {
        return false;
    }
    // The last eight bytes (overlapping the words above) cover a remainder shorter than eight.
    match (head.get(tail_at..), prefix.get(tail_at..)) {
        (Some(a), Some(b)) => load8(a) == load8(b),
        _ => false,
    }
}

/// Position of the first byte of `hay` equal to `a` or `b`, eight bytes at a time.
#[inline]
pub(crate) fn find_either(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    let ra = LO.wrapping_mul(u64::from(a));
    let rb = LO.wrapping_mul(u64::from(b));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let v = load8(chunk);
        let m = zero_byte_mask(v ^ ra) | zero_byte_mask(v ^ rb);
        if m != 0 {
            // Either mask may carry a false positive above a true match of the *other*
            // byte, so confirm with a short byte scan from the lowest candidate.
            let start = (m.trailing_zeros() / 8) as usize;
            if let Some(p) = chunk
                .get(start..)
                .and_then(|rest| rest.iter().position(|&c| c == a || c == b))
            {
                return Some(base + start + p);
            }
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == a || c == b)
        .map(|p| base + p)
}

const M_START: u8 = 1;
const M_CONT: u8 = 2;
const L_START: u8 = 4;
const L_CONT: u8 = 8;
const BLANK: u8 = 16;

const fn build_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let c = i as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut f = 0u8;
        if alpha || c == b':' {
            f |= M_START | M_CONT;
        }
        if digit {
            f |= M_CONT | L_CONT;
        }
        if alpha {
            f |= L_START | L_CONT;
        }
        if c == b' ' || c == b'\t' {
            f |= BLANK;
        }
        t[i] = f;
        i += 1;
    }
    t
}

static TABLE: [u8; 256] = build_table();

/// Whether `c` is a space or a tab (the text format's token separators).
#[inline(always)]
pub(crate) fn is_blank(c: u8) -> bool {
    TABLE[c as usize] & BLANK != 0
}

/// Whether `c` may start a label name (`[a-zA-Z_]`).
#[inline(always)]
pub(crate) fn is_label_start(c: u8) -> bool {
    TABLE[c as usize] & L_START != 0
}

/// Per-byte mask (high bit of each byte) of the bytes of `v` within `lo..=hi`, for bytes
/// below 0x80 (the sums below then never carry into the next byte).
#[inline(always)]
fn in_range(v: u64, lo: u8, hi: u8) -> u64 {
    let ge = v.wrapping_add(LO.wrapping_mul(u64::from(0x80 - lo)));
    let gt = v.wrapping_add(LO.wrapping_mul(u64::from(0x7f - hi)));
    ge & !gt & HI
}

/// Per-byte mask of the bytes of `v` equal to `c`, exact for every byte.
#[inline(always)]
fn eq_mask(v: u64, c: u8) -> u64 {
    let x = v ^ LO.wrapping_mul(u64::from(c));
    // High bit set iff the byte is non-zero, with no borrow between bytes.
    let nonzero = ((x & !HI).wrapping_add(!HI)) | x;
    !nonzero & HI
}

/// Index of the first byte from `j` that is not a name character: `[a-zA-Z0-9_]`, plus `:`
/// when `colon`. Classifies eight bytes per step.
#[inline]
fn scan_name_chars(b: &[u8], mut j: usize, colon: bool) -> usize {
    let (digits_hi, flag) = if colon {
        (b':', M_CONT)
    } else {
        (b'9', L_CONT)
    };
    if let Some(rest) = b.get(j..) {
        for chunk in rest.chunks_exact(8) {
            let v = load8(chunk);
            let ok = (in_range(v | LO.wrapping_mul(0x20), b'a', b'z')
                | in_range(v, b'0', digits_hi)
                | eq_mask(v, b'_'))
                & !(v & HI);
            let bad = !ok & HI;
            if bad != 0 {
                return j + (bad.trailing_zeros() / 8) as usize;
            }
            j += 8;
        }
    }
    while let Some(&c) = b.get(j) {
        if TABLE[c as usize] & flag == 0 {
            break;
        }
        j += 1;
    }
    j
}

/// End of the metric name starting at `i` (`[a-zA-Z_:][a-zA-Z0-9_:]*`); `i` if none.
#[inline]
pub(crate) fn scan_metric_name(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if TABLE[c as usize] & M_START != 0 => scan_name_chars(b, i + 1, true),
        _ => i,
    }
}

/// End of the label name starting at `i` (`[a-zA-Z_][a-zA-Z0-9_]*`); `i` if none.
#[inline]
pub(crate) fn scan_label_name(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if TABLE[c as usize] & L_START != 0 => scan_name_chars(b, i + 1, false),
        _ => i,
    }
}

/// Whether every byte of `s` is a metric-name character (`[a-zA-Z0-9_:]`), as UNIT values are.
pub(crate) fn all_metric_name_chars(s: &[u8]) -> bool {
    s.iter().all(|&c| TABLE[c as usize] & M_CONT != 0)
}

/// First index at or after `i` that is not a blank.
#[inline]
pub(crate) fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if !is_blank(c) {
            break;
        }
        i += 1;
    }
    i
}

/// End of the token starting at `i`: the first blank or the end of the line.
#[inline]
pub(crate) fn token_end(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if is_blank(c) {
            break;
        }
        i += 1;
    }
    i
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Case-insensitive comparison of ASCII bytes against a lowercase word.
fn eq_ignore_case(s: &[u8], lower: &[u8]) -> bool {
    s.len() == lower.len()
        && s.iter()
            .zip(lower)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
}

/// The pieces of a decimal number as written: sign, integer digits, fraction digits and
/// the explicit exponent. Produced by [`split_decimal`].
struct Decimal<'s> {
    negative: bool,
    int: &'s [u8],
    frac: &'s [u8],
    exp: i64,
}

/// Splits `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`; `None` if `s` is
/// not exactly that. Exponents beyond ±100000 saturate (they over/underflow anyway).
fn split_decimal(s: &[u8]) -> Option<Decimal<'_>> {
    let mut i = 0;
    let mut negative = false;
    match s.first() {
        Some(b'+') => i = 1,
        Some(b'-') => {
            negative = true;
            i = 1;
        }
        _ => {}
    }
    let int_start = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int = s.get(int_start..i)?;
    let mut frac: &[u8] = &[];
    if s.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac = s.get(f..i)?;
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut exp: i64 = 0;
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        let mut eneg = false;
        match s.get(i) {
            Some(b'+') => i += 1,
            Some(b'-') => {
                eneg = true;
                i += 1;
            }
            _ => {}
        }
        let e0 = i;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if exp < 100_000 {
                exp = exp * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        if i == e0 {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != s.len() {
        return None;
    }
    Some(Decimal {
        negative,
        int,
        frac,
        exp,
    })
}

/// Parses a sample value as Prometheus does (Go's `ParseFloat` without hex or underscores):
/// decimal and scientific notation, `[+-]Inf`/`Infinity` and `NaN` in any case. Integers and
/// short decimals take an exact fast path; everything else goes through `str::parse`.
pub(crate) fn parse_float(s: &[u8]) -> Option<f64> {
    // Fast path: plain unsigned integers, by far the most common value.
    if !s.is_empty() && s.len() <= 15 && s.iter().all(u8::is_ascii_digit) {
        let mut m: u64 = 0;
        for &c in s {
            m = m * 10 + u64::from(c - b'0');
        }
        return Some(m as f64);
    }
    let Some(d) = split_decimal(s) else {
        return parse_special(s);
    };
    // Clinger's fast path: an exactly representable mantissa times or divided by an exactly
    // representable power of ten is correctly rounded by a single IEEE operation.
    let digits = d.int.len() + d.frac.len();
    if digits <= 19 {
        let mut m: u64 = 0;
        for &c in d.int.iter().chain(d.frac) {
            m = m * 10 + u64::from(c - b'0');
        }
        let e10 = d.exp - d.frac.len() as i64;
        if m <= (1u64 << 53) && (-22..=22).contains(&e10) {
            let mf = m as f64;
            let v = if e10 >= 0 {
                mf * POW10[e10 as usize]
            } else {
                mf / POW10[(-e10) as usize]
            };
            return Some(if d.negative { -v } else { v });
        }
    }
    std::str::from_utf8(s).ok()?.parse::<f64>().ok()
}

/// `[+-]?(inf|infinity)` and unsigned `nan`, case-insensitively (as Go accepts them).
fn parse_special(s: &[u8]) -> Option<f64> {
    let (neg, rest) = match s.first() {
        Some(b'+') => (false, s.get(1..)?),
        Some(b'-') => (true, s.get(1..)?),
        _ => (false, s),
    };
    if eq_ignore_case(rest, b"inf") || eq_ignore_case(rest, b"infinity") {
        return Some(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if rest.len() == s.len() && eq_ignore_case(s, b"nan") {
        return Some(f64::NAN);
    }
    None
}

/// Why a timestamp did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsError {
    /// Not a number of the required form.
    Syntax,
    /// A number, but outside the `i64` millisecond range.
    Range,
}

/// Text-format timestamp: an integer number of milliseconds (`[+-]?[0-9]+`, `i64` range).
pub(crate) fn parse_int_timestamp(s: &[u8]) -> Result<i64, TsError> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..).unwrap_or_default()),
        Some(b'+') => (false, s.get(1..).unwrap_or_default()),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(TsError::Syntax);
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = i64::from(c - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(TsError::Range)?;
    }
    Ok(v)
}

/// OpenMetrics timestamp: float seconds (no `Inf`/`NaN`), converted to milliseconds by exact
/// decimal arithmetic, truncating toward zero like Go's `int64(ts * 1000)` but without the
/// binary rounding error (`1520879607.789` is exactly `1520879607789`).
pub(crate) fn parse_float_timestamp_ms(s: &[u8]) -> Result<i64, TsError> {
    let d = split_decimal(s).ok_or(TsError::Syntax)?;
    // Digits of the number with the decimal point after `point` digits, shifted by the
    // exponent plus three (seconds to milliseconds).
    let mut digits = d.int.iter().chain(d.frac).copied().peekable();
    let mut point = d.int.len() as i64 + d.exp + 3;
    while digits.peek() == Some(&b'0') {
        digits.next();
        point -= 1;
    }
    if point <= 0 {
        return Ok(0);
    }
    if point > 19 {
        // There is a non-zero digit (else `point` would have dropped to <= 0 above).
        return Err(TsError::Range);
    }
    let mut v: i128 = 0;
    for _ in 0..point {
        let c = digits.next().unwrap_or(b'0');
        v = v * 10 + i128::from(c - b'0');
    }
    if d.negative {
        v = -v;
    }
    i64::try_from(v).map_err(|_| TsError::Range)
}

/// Which escape sequences a string uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// `\\`, `\"` and `\n` (label values everywhere, OpenMetrics HELP).
    Quoted,
    /// `\\` and `\n` only (text-format HELP); `\"` stays as written.
    TextHelp,
}

/// Resolves escapes in `s`; borrows when there is no backslash. Unknown sequences (and a
/// trailing lone backslash) are kept literally, as Prometheus does.
pub(crate) fn unescape(s: &str, kind: Escapes) -> Cow<'_, str> {
    if find_byte(b'\\', s.as_bytes()).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if kind == Escapes::Quoted => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_naive() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        for start in 0..40 {
            for needle in [0u8, 7, 14, 250, 255, b'\n'] {
                let h = &hay[start..];
                assert_eq!(find_byte(needle, h), h.iter().position(|&c| c == needle));
                assert_eq!(
                    find_either(needle, b'"', h),
                    h.iter().position(|&c| c == needle || c == b'"')
                );
            }
        }
        // False-positive prone pattern: 0x01 directly above the needle byte.
        let h = [b'a', b'\\', 0x5d, b'"', 0x01, 0x22, 0, 0, 0];
        assert_eq!(find_either(b'"', b'\\', &h), Some(1));
        assert_eq!(find_byte(b'"', &h), Some(3));
    }

    #[test]
    fn starts_with_matches_std() {
        let hay: Vec<u8> = (0..64u32).map(|i| (i * 13 % 251) as u8).collect();
        for len in 0..hay.len() + 2 {
            for start in 0..4 {
                let h = &hay[start..];
                let prefix: Vec<u8> = hay.iter().copied().cycle().skip(start).take(len).collect();
                assert_eq!(starts_with(h, &prefix), h.starts_with(&prefix), "len {len}");
                // One byte off, at every position of the prefix.
                for at in 0..len {
                    let mut p = prefix.clone();
                    p[at] ^= 0x20;
                    assert_eq!(starts_with(h, &p), h.starts_with(&p), "len {len} at {at}");
                }
            }
        }
        assert!(starts_with(b"abc", b""));
        assert!(!starts_with(b"", b"a"));
    }

    #[test]
    fn floats_match_std() {
        let cases = [
            "0",
            "1",
            "-1",
            "+1",
            "1.5",
            ".5",
            "5.",
            "1e3",
            "1E3",
            "1e-3",
            "-0.0",
            "0.1",
            "0.3",
            "123456789012345678",
            "1.7976931348623157e308",
            "4.9e-324",
            "1e400",
            "1e-400",
            "2.279966416e+09",
            "0.000135819",
            "9007199254740993",
            "12345678901234567890123",
            "0.0000000000000000000000001",
            "5.e3",
            "+.5e-1",
            "00012",
            "1726839813.016397",
        ];
        for c in cases {
            let want: f64 = c.parse().expect("std parses the case");
            let got = parse_float(c.as_bytes()).expect("parses");
            assert_eq!(got.to_bits(), want.to_bits(), "{c}");
        }
        for (c, want) in [
            ("Inf", f64::INFINITY),
            ("+Inf", f64::INFINITY),
            ("-inf", f64::NEG_INFINITY),
            ("+Infinity", f64::INFINITY),
            ("-INFINITY", f64::NEG_INFINITY),
        ] {
            assert_eq!(parse_float(c.as_bytes()), Some(want), "{c}");
        }
        assert!(parse_float(b"NaN").is_some_and(f64::is_nan));
        assert!(parse_float(b"nan").is_some_and(f64::is_nan));
        for bad in [
            "", "+", "-", ".", "e3", "1e", "1e+", "0x10", "0x1p3", "1_000", "+nan", "-NaN", "infi",
            "1.2.3", "1 ", " 1", "1\r", "--1", "in", "nana", "1,5",
        ] {
            assert_eq!(parse_float(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_int_timestamp(b"1395066363000"), Ok(1_395_066_363_000));
        assert_eq!(parse_int_timestamp(b"-3982045"), Ok(-3_982_045));
        assert_eq!(parse_int_timestamp(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_int_timestamp(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_int_timestamp(b"9223372036854775808"),
            Err(TsError::Range)
        );
        assert_eq!(parse_int_timestamp(b"1.5"), Err(TsError::Syntax));
        assert_eq!(parse_int_timestamp(b"-"), Err(TsError::Syntax));
        let ms = |s: &str| parse_float_timestamp_ms(s.as_bytes());
        assert_eq!(ms("1520879607.789"), Ok(1_520_879_607_789));
        assert_eq!(ms("1520879607"), Ok(1_520_879_607_000));
        assert_eq!(ms("1.7268398142239082e+09"), Ok(1_726_839_814_223));
        assert_eq!(ms("123"), Ok(123_000));
        // 1.001 * 1000.0 is 1000.9999999999999 in binary floating point.
        assert_eq!(ms("1.001"), Ok(1001));
        assert_eq!(ms("0.0001"), Ok(0));
        assert_eq!(ms("-1.5"), Ok(-1500));
        assert_eq!(ms("-0.0005"), Ok(0));
        assert_eq!(ms("1e-3"), Ok(1));
        assert_eq!(ms("000000000000000000000001.5"), Ok(1500));
        assert_eq!(ms("9223372036854775.807"), Ok(i64::MAX));
        assert_eq!(ms("9223372036854775.808"), Err(TsError::Range));
        assert_eq!(ms("1e300"), Err(TsError::Range));
        assert_eq!(ms("Inf"), Err(TsError::Syntax));
        assert_eq!(ms("NaN"), Err(TsError::Syntax));
    }

    #[test]
    fn unescaping() {
        assert!(matches!(
            unescape("plain", Escapes::Quoted),
            Cow::Borrowed("plain")
        ));
        assert_eq!(
            unescape(r#"a\\b\"c\nd\te\"#, Escapes::Quoted),
            "a\\b\"c\nd\\te\\"
        );
        assert_eq!(unescape(r#"a\\b\"c\nd"#, Escapes::TextHelp), "a\\b\\\"c\nd");
    }

    #[test]
    fn swar_name_scan_matches_table() {
        for c in 0..=255u8 {
            for pos in 0..12 {
                let mut b = [b'a'; 20];
                b[pos + 1] = c;
                let want_m = if TABLE[c as usize] & M_CONT != 0 {
                    20
                } else {
                    pos + 1
                };
                let want_l = if TABLE[c as usize] & L_CONT != 0 {
                    20
                } else {
                    pos + 1
                };
                assert_eq!(scan_metric_name(&b, 0), want_m, "metric {c:#x} at {pos}");
                assert_eq!(scan_label_name(&b, 0), want_l, "label {c:#x} at {pos}");
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(scan_metric_name(b"foo:bar_1{", 0), 9);
        assert_eq!(scan_metric_name(b"1foo", 0), 0);
        assert_eq!(scan_label_name(b"le=", 0), 2);
        assert_eq!(scan_label_name(b"a:b", 0), 1);
        assert_eq!(scan_metric_name(b":x", 0), 2);
        assert_eq!(scan_label_name(b":x", 0), 0);
        assert!(all_metric_name_chars(b"seconds"));
        assert!(!all_metric_name_chars(b"sec onds"));
    }
}
