//! Kubernetes `resource.Quantity`: parsing and the canonical string form, as apimachinery's
//! `pkg/api/resource` writes it. The external metrics API sends every value as a Quantity
//! (`1.5` -> `"1500m"`, `1000` -> `"1k"`, `0.0005` -> `"500u"`); api.rs formats with
//! [`Quantity::from_f64`] and [`Quantity::canonical`].
//!
//! A quantity is `sign * mantissa * 10^exponent` (an exact decimal) plus the format it was
//! written in. Like apimachinery, values finer than 1n are rounded up (away from zero) to the
//! next nano, BinarySI values are capped at 2^63-1, and the canonical form uses the largest
//! suffix that keeps the mantissa an integer.

use std::fmt;

/// How a quantity is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `n u m "" k M G T P E`.
    DecimalSI,
    /// `Ki Mi Gi Ti Pi Ei`.
    BinarySI,
    /// `1e3`, `12E-6`.
    DecimalExponent,
}

/// An exact decimal quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exponent: i32,
    /// The format it was written in.
    pub format: Format,
}

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The grammar was not followed.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Format,
    /// More digits than this implementation keeps exactly.
    #[error("quantity has too many digits")]
    TooLong,
    /// NaN or an infinity.
    #[error("NaN and infinities are not quantities")]
    NotFinite,
}

const MAX_DIGITS: usize = 36;
const MAX_INT64: u128 = i64::MAX as u128;

impl Quantity {
    /// Zero in DecimalSI.
    pub const ZERO: Quantity = Quantity {
        negative: false,
        mantissa: 0,
        exponent: 0,
        format: Format::DecimalSI,
    };

    /// The exact decimal of `v`'s shortest round-trip representation, in DecimalSI. NaN and
    /// infinities are refused: the HPA cannot parse them.
    pub fn from_f64(v: f64) -> Result<Self, QuantityError> {
        if !v.is_finite() {
            return Err(QuantityError::NotFinite);
        }
        if v == 0.0 {
            return Ok(Self::ZERO);
        }
        // `{:e}` is the shortest representation that round-trips: "1.5e0", "5e-4".
        let text = format!("{v:e}");
        let mut q = parse_number(&text, Format::DecimalSI)?;
        q.format = Format::DecimalSI;
        Ok(q.round_up_to_nano())
    }

    /// Parses a quantity string (`1500m`, `1.5Gi`, `12e6`, `-0.5`).
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let (number, suffix) = split_suffix(text)?;
        let (format, base2_pow, dec_exp) = match suffix {
            "" => (Format::DecimalSI, 0, 0),
            "n" => (Format::DecimalSI, 0, -9),
            "u" => (Format::DecimalSI, 0, -6),
            "m" => (Format::DecimalSI, 0, -3),
            "k" => (Format::DecimalSI, 0, 3),
            "M" => (Format::DecimalSI, 0, 6),
            "G" => (Format::DecimalSI, 0, 9),
            "T" => (Format::DecimalSI, 0, 12),
            "P" => (Format::DecimalSI, 0, 15),
            "E" => (Format::DecimalSI, 0, 18),
            "Ki" => (Format::BinarySI, 10, 0),
            "Mi" => (Format::BinarySI, 20, 0),
            "Gi" => (Format::BinarySI, 30, 0),
            "Ti" => (Format::BinarySI, 40, 0),
            "Pi" => (Format::BinarySI, 50, 0),
            "Ei" => (Format::BinarySI, 60, 0),
            s if s.starts_with(['e', 'E']) => {
                let e = &s[1..];
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(QuantityError::Format);
                }
                let exp: i32 = e.parse().map_err(|_| QuantityError::Format)?;
                (Format::DecimalExponent, 0, exp)
            }
            _ => return Err(QuantityError::Format),
        };
        let mut q = parse_number(number, format)?;
        q.exponent = q
            .exponent
            .checked_add(dec_exp)
            .ok_or(QuantityError::TooLong)?;
        if base2_pow > 0 {
            // Exact: multiply by 2^p as an integer, keeping the decimal exponent.
            q.mantissa = q
                .mantissa
                .checked_mul(1u128 << base2_pow)
                .ok_or(QuantityError::TooLong)?;
            q.normalize();
        }
        q = q.round_up_to_nano();
        if q.format == Format::BinarySI && q.exceeds(MAX_INT64) {
            q.mantissa = MAX_INT64;
            q.exponent = 0;
        }
        Ok(q)
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// The value as an f64 (nearest).
    pub fn to_f64(&self) -> f64 {
        let v: f64 = format!("{}e{}", self.mantissa, self.exponent)
            .parse()
            .unwrap_or(0.0);
        if self.negative { -v } else { v }
    }

    /// The canonical string, as `Quantity.String()` in apimachinery.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".into();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            // Below 1024 or not an integer: DecimalSI, which shows the value without rounding.
            if !self.exceeds(1023) || self.exponent < 0 {
                format = Format::DecimalSI;
            }
        }
        let sign = if self.negative { "-" } else { "" };
        if format == Format::BinarySI {
            if let Some(mut int) = 10u128
                .checked_pow(self.exponent.unsigned_abs())
                .and_then(|p| self.mantissa.checked_mul(p))
            {
                let mut pow = 0;
                while int % 1024 == 0 && pow < 6 {
                    int /= 1024;
                    pow += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][pow];
                return format!("{sign}{int}{suffix}");
            }
            format = Format::DecimalSI;
        }
        // Strip trailing zeros, then lower the exponent to a multiple of 3.
        let (mut m, mut e) = (self.mantissa, self.exponent);
        while m % 10 == 0 {
            m /= 10;
            e += 1;
        }
        let r = e.rem_euclid(3);
        match m.checked_mul(10u128.pow(r.unsigned_abs())) {
            Some(v) => {
                m = v;
                e -= r;
            }
            None => {
                // Too wide to shift: keep the exact exponent form.
                return format!("{sign}{m}e{e}");
            }
        }
        let suffix = match (format, e) {
            (_, 0) => String::new(),
            (Format::DecimalSI, -9) => "n".into(),
            (Format::DecimalSI, -6) => "u".into(),
            (Format::DecimalSI, -3) => "m".into(),
            (Format::DecimalSI, 3) => "k".into(),
            (Format::DecimalSI, 6) => "M".into(),
            (Format::DecimalSI, 9) => "G".into(),
            (Format::DecimalSI, 12) => "T".into(),
            (Format::DecimalSI, 15) => "P".into(),
            (Format::DecimalSI, 18) => "E".into(),
            (_, e) => format!("e{e}"),
        };
        format!("{sign}{m}{suffix}")
    }

    /// Whether |value| > `limit` (an integer).
    fn exceeds(&self, limit: u128) -> bool {
        if self.exponent >= 0 {
            match 10u128
                .checked_pow(self.exponent.unsigned_abs())
                .and_then(|p| self.mantissa.checked_mul(p))
            {
                Some(v) => v > limit,
                None => true,
            }
        } else {
            match 10u128.checked_pow(self.exponent.unsigned_abs()) {
                // mantissa / 10^-e > limit  <=>  mantissa > limit * 10^-e
                Some(p) => match limit.checked_mul(p) {
                    Some(l) => self.mantissa > l,
                    None => false,
                },
                None => false,
            }
        }
    }

    /// Removes trailing zeros from the mantissa.
    fn normalize(&mut self) {
        if self.mantissa == 0 {
            self.exponent = 0;
            self.negative = false;
            return;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
    }

    /// Rounds |value| up to a multiple of 1n (apimachinery gives at least 1n to any non-zero
    /// request, however small).
    fn round_up_to_nano(mut self) -> Self {
        if self.mantissa != 0 && self.exponent < -9 {
            let shift = (-9 - self.exponent).unsigned_abs();
            match 10u128.checked_pow(shift) {
                Some(p) => self.mantissa = self.mantissa.div_ceil(p),
                None => self.mantissa = 1,
            }
            self.exponent = -9;
            self.normalize();
        }
        self
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Splits `[+-]?[0-9.]+` from the suffix. Whitespace is refused, as in apimachinery.
fn split_suffix(text: &str) -> Result<(&str, &str), QuantityError> {
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    let (number, suffix) = text.split_at(i);
    let digits = number.trim_start_matches(['+', '-']);
    if !digits.bytes().any(|b| b.is_ascii_digit()) || digits.matches('.').count() > 1 {
        return Err(QuantityError::Format);
    }
    Ok((number, suffix))
}

/// `[+-]?digits[.digits]` or `{:e}` output (`1.5e-3`) to an exact decimal.
fn parse_number(text: &str, format: Format) -> Result<Quantity, QuantityError> {
    let (num, exp) = match text.find(['e', 'E']) {
        Some(i) => (
            &text[..i],
            text[i + 1..]
                .parse::<i32>()
                .map_err(|_| QuantityError::Format)?,
        ),
        None => (text, 0),
    };
    let negative = num.starts_with('-');
    let num = num.trim_start_matches(['+', '-']);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let kept = digits.trim_end_matches('0');
    let trailing = digits.len() - kept.len();
    if kept.len() > MAX_DIGITS {
        return Err(QuantityError::TooLong);
    }
    let mantissa: u128 = if kept.is_empty() {
        0
    } else {
        kept.parse().map_err(|_| QuantityError::Format)?
    };
    let frac_len = i32::try_from(frac.len()).map_err(|_| QuantityError::TooLong)?;
    let trailing = i32::try_from(trailing).map_err(|_| QuantityError::TooLong)?;
    let mut q = Quantity {
        negative: negative && mantissa != 0,
        mantissa,
        exponent: exp - frac_len + trailing,
        format,
    };
    q.normalize();
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// apimachinery's TestQuantityParse (pkg/api/resource/quantity_test.go): input, the
    /// canonical string of the parsed value (what `String()` prints).
    #[test]
    fn parse_table_from_apimachinery() {
        let table = [
            ("0", "0"),
            ("0n", "0"),
            ("0u", "0"),
            ("0m", "0"),
            ("0Ki", "0"),
            ("0k", "0"),
            ("0Mi", "0"),
            ("0M", "0"),
            ("0Gi", "0"),
            ("0T", "0"),
            ("1", "1"),
            ("1Ki", "1Ki"),
            ("8Ki", "8Ki"),
            ("7Mi", "7Mi"),
            ("6Gi", "6Gi"),
            ("5Ti", "5Ti"),
            ("4Pi", "4Pi"),
            ("3Ei", "3Ei"),
            ("10Ti", "10Ti"),
            ("100Ti", "100Ti"),
            ("5n", "5n"),
            ("4u", "4u"),
            ("3m", "3m"),
            ("9", "9"),
            ("8k", "8k"),
            ("50k", "50k"),
            ("7M", "7M"),
            ("6G", "6G"),
            ("5T", "5T"),
            ("40T", "40T"),
            ("300T", "300T"),
            ("2P", "2P"),
            ("1E", "1E"),
            ("1E-3", "1e-3"),
            ("1e3", "1e3"),
            ("1E6", "1e6"),
            ("1e9", "1e9"),
            ("1E12", "1e12"),
            ("1e15", "1e15"),
            ("1E18", "1e18"),
            ("1e14", "100e12"),
            ("1e13", "10e12"),
            ("100.035k", "100035"),
            ("0.001", "1m"),
            ("0.0005k", "500m"),
            ("0.005", "5m"),
            ("0.05", "50m"),
            ("0.5", "500m"),
            ("0.00050k", "500m"),
            ("0.00500", "5m"),
            ("0.05000", "50m"),
            ("0.50000", "500m"),
            ("0.5e0", "500e-3"),
            ("0.5e-1", "50e-3"),
            ("0.5e-2", "5e-3"),
            ("10.035M", "10035k"),
            ("1.2e3", "1200"),
            ("1.3E+6", "1300e3"),
            ("1.40e9", "1400e6"),
            ("1.53E12", "1530e9"),
            ("1.6e15", "1600e12"),
            ("1.7E18", "1700e15"),
            ("9.01", "9010m"),
            ("8.1k", "8100"),
            ("7.123456M", "7123456"),
            ("6.987654321G", "6987654321"),
            ("5.444T", "5444G"),
            ("40.1T", "40100G"),
            ("300.2T", "300200G"),
            ("2.5P", "2500T"),
            ("1.01E", "1010P"),
            // Things that saturate or round.
            ("3.001n", "4n"),
            ("1.1E-9", "2e-9"),
            ("0.0000000001", "1n"),
            ("0.0000000005", "1n"),
            ("0.00000000050", "1n"),
            ("0.5e-9", "1e-9"),
            ("0.9n", "1n"),
            ("0.00000012345", "124n"),
            ("0.00000012354", "124n"),
            ("9Ei", "9223372036854775807"),
            ("9223372036854775807Ki", "9223372036854775807"),
            ("12E", "12E"),
            // Fractional binary.
            ("100.035Ki", "102435840m"),
            ("0.5Mi", "512Ki"),
            ("0.05Gi", "53687091200m"),
            ("0.025Ti", "27487790694400m"),
            // Written by trolls.
            ("0.000000000001Ki", "2n"),
            (".001", "1m"),
            (".0001k", "100m"),
            ("1.", "1"),
            ("1.G", "1G"),
        ];
        for (input, want) in table {
            let q = Quantity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(q.canonical(), want, "{input}");
            // The negative of everything, and an explicit +.
            let neg = Quantity::parse(&format!("-{input}")).expect("negative");
            let want_neg = if want == "0" {
                "0".to_string()
            } else {
                format!("-{want}")
            };
            assert_eq!(neg.canonical(), want_neg, "-{input}");
            let pos = Quantity::parse(&format!("+{input}")).expect("plus");
            assert_eq!(pos.canonical(), want, "+{input}");
        }
    }

    #[test]
    fn invalid_from_apimachinery() {
        for bad in [
            "", "1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-",
            " 1", "1 ", ".", "-.", "1e", "1Kii",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    /// apimachinery's TestQuantityString and TestQuantityParseEmit: canonical forms, and
    /// alternate spellings that canonicalize to them.
    #[test]
    fn canonical_strings_from_apimachinery() {
        let table = [
            ("1Gi", "1024Mi"),
            ("300Mi", "307200Ki"),
            ("6Ki", ""),
            ("1001Gi", "1025024Mi"),
            ("1Ti", "1024Gi"),
            ("1G", "1000M"),
            ("1G", "0.001T"),
            ("1m", "1000u"),
            ("80m", ""),
            ("1080m", "1.08"),
            ("1080m", "1080000000n"),
            ("300M", ""),
            ("1T", ""),
            ("1E", ""),
            ("1234567M", ""),
            ("3k", ""),
            ("1025", ""),
            ("0", "00"),
            ("1e9", ".001e12"),
            ("1e-3", "0.001e0"),
            ("1e-9", "1000e-12"),
            ("80e-3", ""),
            ("300e6", ""),
            ("1e12", ""),
            ("1n", ""),
            ("80n", ""),
            ("1080n", ""),
            ("1u", ""),
            ("80u", ""),
            ("1080u", ""),
            ("1Gi", "1Gi"),
            ("1Gi", "1024Mi"),
            ("1G", "1000M"),
            ("1024m", ".001Ki"),
            ("1024u", ".000001Ki"),
            ("1024n", ".000000001Ki"),
        ];
        for (canonical, alternate) in table {
            let q = Quantity::parse(canonical).expect(canonical);
            assert_eq!(q.canonical(), canonical, "{canonical} round trip");
            if !alternate.is_empty() {
                let a = Quantity::parse(alternate).expect(alternate);
                assert_eq!(a.canonical(), canonical, "{alternate}");
            }
        }
    }

    /// DecimalSI has no suffix beyond E: larger values use exponent notation, never dropping
    /// the magnitude.
    #[test]
    fn huge_and_tiny_values() {
        for (v, want) in [
            (1e21, "1e21"),
            (5e21, "5e21"),
            (1e24, "1e24"),
            (1e18, "1E"),
            (1.5e300, "1500e297"),
            (f64::MAX, "179769313486231570e291"),
            (1e-9, "1n"),
            (1e-10, "1n"),
            (1e-300, "1n"),
            (-1e-300, "-1n"),
            (f64::MIN_POSITIVE, "1n"),
            (1.5, "1500m"),
            (1000.0, "1k"),
            (0.0005, "500u"),
            (0.1, "100m"),
            (1234000.0, "1234k"),
            (42.0, "42"),
            (-2.5, "-2500m"),
            (0.0, "0"),
            (-0.0, "0"),
            (123456.789, "123456789m"),
        ] {
            let q = Quantity::from_f64(v).expect("finite");
            assert_eq!(q.canonical(), want, "{v:e}");
            // What the HPA parses back is the same number.
            let back = Quantity::parse(&q.canonical()).expect("reparse");
            assert_eq!(back.canonical(), want, "reparse {want}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(Quantity::from_f64(v), Err(QuantityError::NotFinite));
        }
    }

    #[test]
    fn to_f64_round_trips() {
        for v in [1.5, 0.0005, 1e21, -3.25, 7.0] {
            let q = Quantity::from_f64(v).expect("finite");
            assert_eq!(q.to_f64(), v);
        }
    }
}
