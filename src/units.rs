//! Parsing of the human units on the command line: byte sizes (`256K`, `4M`, `1Mi`),
//! durations in seconds (`0.5`), percentages and rates. Pure functions, used as
//! clap value parsers; and [`count`], a number with its noun, for both binaries' reports.

use std::time::Duration;

/// `n` and its noun, singular for exactly one: `1 probe`, `0 probes`,
/// `2 probes`. Every count a report prints next to a noun goes through here.
pub fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Parses a byte count with an optional binary suffix.
///
/// `K`, `M`, `G` and their `Ki`, `Mi`, `Gi` spellings (any case) all mean powers of
/// 1024, because the numbers users compare them with (`net.core.rmem_max = 4194304`)
/// are powers of two: `--recv-buf 4M` should ask for exactly that limit. Decimal
/// `KB`/`MB` are refused rather than guessed.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
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
pub(crate) const MAX_BUFFER_SIZE: u64 = i32::MAX as u64;

/// Parses a socket buffer size: a [`parse_size`] that is at least 1 and fits the
/// kernel's `int` (a larger value would silently wrap inside `setsockopt`).
pub(crate) fn parse_buffer_size(text: &str) -> Result<usize, String> {
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

/// How a number of seconds was wrong, in one style for every option that takes
/// seconds: clap prints it after `invalid value 'X' for '--opt <SECS>': `, so
/// the text says only what was expected (the value is already quoted).
fn expected_seconds(what: &str) -> String {
    format!("expected {what} such as 0.5 or 2")
}

/// The longest duration any option takes: a day. Longer is a typo (`-t 1e30`),
/// not a wish, and far below where `Duration` overflows.
pub(crate) const MAX_SECONDS: f64 = 86_400.0;

/// Parses seconds, fractions allowed, at least `min` (0 included when `min` is
/// 0), at most [`MAX_SECONDS`]; `what` names the accepted values in the error.
fn parse_seconds_at_least(text: &str, min: f64, what: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= min && secs <= MAX_SECONDS => {
            // Not negative, not NaN: try_from cannot fail; a 0 only when min is 0.
            Duration::try_from_secs_f64(secs).map_err(|_| expected_seconds(what))
        }
        Ok(secs) if secs.is_finite() && secs > MAX_SECONDS => Err(format!(
            "{} (at most {MAX_SECONDS} = one day)",
            expected_seconds(what)
        )),
        _ => Err(expected_seconds(what)),
    }
}

/// Parses a non-negative number of seconds, fractions allowed (`0.25`, `0`).
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    parse_seconds_at_least(text, 0.0, "0 or a positive number of seconds")
}

/// Parses a strictly positive number of seconds (a timeout of 0 would mean "forever"
/// to the kernel, which is never what a user typing 0 wants).
pub(crate) fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let d = parse_seconds_at_least(text, 0.0, "a positive number of seconds")?;
    if d.is_zero() {
        return Err(expected_seconds("a positive number of seconds"));
    }
    Ok(d)
}

/// The shortest `--stats-interval`: ten lines a second is already more than a
/// log reader follows; shorter ones flood the log (1e-9 gave 20,000 lines in 2 s).
pub(crate) const MIN_STATS_INTERVAL: f64 = 0.1;

/// Parses `--stats-interval`: seconds, at least [`MIN_STATS_INTERVAL`].
pub(crate) fn parse_stats_interval(text: &str) -> Result<Duration, String> {
    parse_seconds_at_least(
        text,
        MIN_STATS_INTERVAL,
        &format!("a number of seconds of at least {MIN_STATS_INTERVAL}"),
    )
}

/// Parses a percentage from 0 to 100 (`--max-loss`); a trailing `%` is allowed.
pub(crate) fn parse_percent(text: &str) -> Result<f64, String> {
    match text.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("expected 0 to 100 (percent), e.g. 0, 0.1 or 1".to_owned()),
    }
}

/// The highest `--rate`, probes/s: 10⁸, far beyond what one host sends (about
/// 10⁷ at the very best), so a larger value is a typo.
pub(crate) const MAX_RATE: f64 = 1e8;

/// Parses a rate in probes per second (`--rate`): more than 0, at most [`MAX_RATE`].
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(pps) if pps.is_finite() && pps > 0.0 && pps <= MAX_RATE => Ok(pps),
        _ => Err(format!(
            "expected probes per second, more than 0 and at most {MAX_RATE:.0} (e.g. 1000 or 0.5)"
        )),
    }
}

/// Parses a positive duration as Prometheus writes one or as seconds:
/// `500ms`, `1s`, `1.5s`, `2m`, `250us`, or a bare number of seconds (`0.5`);
/// at most [`MAX_SECONDS`]. The fleet prober's `__param_interval` and
/// `__param_timeout` labels, so one file serves both it and Prometheus.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = [
        ("ms", 1e-3),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("s", 1.0),
        ("m", 60.0),
    ]
    .iter()
    .find_map(|&(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))
    .unwrap_or((text, 1.0));
    let expected = || format!("expected a duration such as 500ms, 1s, 2m or 0.5, not {text:?}");
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 && number.starts_with(|c: char| c.is_ascii_digit()) => {
            let secs = n * scale;
            if secs > MAX_SECONDS {
                return Err(format!("{text:?} is longer than {MAX_SECONDS} s (one day)"));
            }
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(expected)
        }
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_prometheus_writes_them_or_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("1s"), Ok(ms(1000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0.25"), Ok(ms(250)));
        for junk in [
            "", "s", "0", "0s", "-1s", "1h", "1 s s", "nan", "inf", "1e30", "+1s", ".5s",
        ] {
            assert!(parse_duration(junk).is_err(), "{junk}");
        }
    }

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
    fn every_bad_number_of_seconds_gets_the_same_message() {
        let expected = "expected a positive number of seconds such as 0.5 or 2";
        for junk in [
            "-1", "nan", "NaN", "inf", "-inf", "0", "0.0", "-0", "abc", "",
        ] {
            assert_eq!(parse_positive_seconds(junk), Err(expected.into()), "{junk}");
        }
        let zero_ok = "expected 0 or a positive number of seconds such as 0.5 or 2";
        for junk in ["-1", "nan", "inf", "abc"] {
            assert_eq!(parse_seconds(junk), Err(zero_ok.into()), "{junk}");
        }
        let too_long = parse_positive_seconds("1e30").unwrap_err();
        assert!(
            too_long.starts_with(expected) && too_long.contains("one day"),
            "{too_long}"
        );
    }

    #[test]
    fn stats_intervals_have_a_floor_of_a_tenth_of_a_second() {
        assert_eq!(parse_stats_interval("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_stats_interval("2"), Ok(Duration::from_secs(2)));
        for junk in ["1e-9", "0.05", "0", "-1", "nan", "inf"] {
            let err = parse_stats_interval(junk).expect_err(junk);
            assert!(err.contains("at least 0.1"), "{junk}: {err}");
        }
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
            assert!(err.contains("at most 100000000"), "{junk}: {err}");
        }
    }
}
