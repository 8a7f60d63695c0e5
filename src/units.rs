//! Parsing of the human units on the command line: byte sizes (`256K`, `4M`, `1Mi`),
//! durations in seconds (`0.5`), percentages and rates. Pure functions, used as
//! clap value parsers.

use std::time::Duration;

/// Parses a byte count with an optional binary suffix.
///
/// `K`, `M`, `G` and their `Ki`, `Mi`, `Gi` spellings (any case) all mean powers of
/// 1024, because the numbers users compare them with (`net.core.rmem_max = 4194304`)
/// are powers of two: `--recv-buf 4M` should ask for exactly that limit. Decimal
/// `KB`/`MB` are refused rather than guessed.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size '{text}': expected bytes with an optional K, M or G suffix (powers of 1024), e.g. 4096, 256K, 4M, 1Mi"
        )
    };
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(invalid());
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "ki" => 10,
        "m" | "mi" => 20,
        "g" | "gi" => 30,
        _ => return Err(invalid()),
    };
    let value: u64 = digits.parse().map_err(|_| invalid())?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size '{text}' is too large"))
}

/// The largest value `setsockopt(SO_RCVBUF/SO_SNDBUF)` takes: the option is a C `int`.
pub const MAX_BUFFER_SIZE: u64 = i32::MAX as u64;

/// Parses a socket buffer size: a [`parse_size`] that is at least 1 and fits the
/// kernel's `int` (a larger value would silently wrap inside `setsockopt`).
pub fn parse_buffer_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if size == 0 {
        return Err(format!("buffer size '{text}' must be at least 1 byte"));
    }
    if size > MAX_BUFFER_SIZE {
        return Err(format!(
            "buffer size '{text}' ({size} bytes) is too large: the kernel takes at most {MAX_BUFFER_SIZE} bytes"
        ));
    }
    usize::try_from(size).map_err(|_| format!("buffer size '{text}' does not fit this platform"))
}

/// Parses a non-negative number of seconds, fractions allowed (`0.25`).
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid number of seconds '{text}': expected e.g. 1, 0.5 or 2.5"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "invalid number of seconds '{text}': must be 0 or more"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}' seconds is too long"))
}

/// Parses a strictly positive number of seconds (a timeout of 0 would mean "forever"
/// to the kernel, which is never what a user typing 0 wants).
pub fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let d = parse_seconds(text)?;
    if d.is_zero() {
        return Err(format!("'{text}' seconds: must be more than 0"));
    }
    Ok(d)
}

/// Parses a percentage from 0 to 100 (`--max-loss`); a trailing `%` is allowed.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "invalid percentage '{text}': expected 0 to 100, e.g. 0, 0.1 or 1"
        )),
    }
}

/// Parses a rate in probes per second (`--rate`): more than 0, at most 10⁸.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(pps) if pps.is_finite() && pps > 0.0 && pps <= 1e8 => Ok(pps),
        _ => Err(format!(
            "invalid rate '{text}': expected probes per second, more than 0 (e.g. 1000 or 0.5)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("256Ki"), Ok(262144));
        assert_eq!(parse_size("4M"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_size("1Mi"), Ok(1 << 20));
        assert_eq!(parse_size("1mi"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn junk_sizes_are_refused_with_the_accepted_forms() {
        for junk in ["", "K", "12Q", "4MB", "1.5M", "-1", "4 M", "0x10", "M4"] {
            let err = parse_size(junk).expect_err(junk);
            assert!(err.contains("e.g. 4096, 256K, 4M"), "{junk}: {err}");
        }
        assert!(parse_size("99999999999999999999").is_err());
        assert!(
            parse_size("17179869184G")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn buffer_sizes_must_fit_a_c_int() {
        assert_eq!(parse_buffer_size("2047M"), Ok(2047 << 20));
        assert!(
            parse_buffer_size("2G")
                .unwrap_err()
                .contains("at most 2147483647")
        );
        assert!(parse_buffer_size("0").is_err());
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_negatives() {
        assert_eq!(parse_seconds("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("1e30").is_err());
        assert!(parse_seconds("abc").is_err());
        assert!(parse_positive_seconds("0").is_err());
        assert_eq!(
            parse_positive_seconds("0.001"),
            Ok(Duration::from_millis(1))
        );
    }

    #[test]
    fn percentages_from_0_to_100_with_an_optional_sign() {
        assert_eq!(parse_percent("0"), Ok(0.0));
        assert_eq!(parse_percent("0.1"), Ok(0.1));
        assert_eq!(parse_percent(" 1% "), Ok(1.0));
        assert_eq!(parse_percent("100"), Ok(100.0));
        for junk in ["", "%", "-1", "100.5", "NaN", "inf", "one"] {
            let err = parse_percent(junk).expect_err(junk);
            assert!(err.contains("expected 0 to 100"), "{junk}: {err}");
        }
    }

    #[test]
    fn rates_are_positive_and_bounded() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert_eq!(parse_rate("1e8"), Ok(1e8));
        for junk in ["", "0", "-5", "1e9", "inf", "NaN", "fast"] {
            let err = parse_rate(junk).expect_err(junk);
            assert!(err.contains("expected probes per second"), "{junk}: {err}");
        }
    }
}
