//! Durations as written in the config: `"10s"`, `"500ms"`, `"2m"`,
//! `"1m30s"`, `"1.5s"`, or an integer number of milliseconds.

use std::time::Duration;

/// The largest duration the crate accepts.
///
/// Every duration here bounds a wait. A larger one is almost certainly a
/// typo, and an enormous one would make `Instant::now() + d` overflow (and
/// panic) in the code that uses it.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

const NANOS_PER_MS: u128 = 1_000_000;

/// Units accepted in a duration string. Order matters: `ms` comes before
/// `m` (and `s`), so that `"5ms"` is not read as minutes followed by `s`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const EXPECTED: &str = "expected a number followed by a unit (ns, us, ms, s, m, h), e.g. \"10s\"";

/// Parses a duration string such as `"10s"`, `"500ms"` or `"1m30s"`.
///
/// The error is a short reason, without the value (the caller names the
/// key and quotes the value).
pub(crate) fn parse_str(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty".to_string());
    }
    if s.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        // Optional fraction.
        let (frac_digits, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(EXPECTED.to_string());
        }
        // Unit.
        let Some(&(unit, scale)) = UNITS.iter().find(|(u, _)| after_num.starts_with(u)) else {
            return Err(if after_num.is_empty() {
                "missing unit (ns, us, ms, s, m, h)".to_string()
            } else {
                EXPECTED.to_string()
            });
        };
        rest = &after_num[unit.len()..];

        let int_value = parse_digits(int_digits)?;
        let mut part = int_value.checked_mul(scale).ok_or_else(too_large)?;
        if !frac_digits.is_empty() {
            // Only the first 18 fractional digits can matter at ns
            // resolution of an hour; the rest are ignored, not overflowed.
            let frac = &frac_digits[..frac_digits.len().min(18)];
            let numerator = parse_digits(frac)?;
            let denominator = 10u128.pow(frac.len() as u32);
            part = part
                .checked_add(numerator.saturating_mul(scale) / denominator)
                .ok_or_else(too_large)?;
        }
        total = total.checked_add(part).ok_or_else(too_large)?;
        if total > MAX_DURATION.as_nanos() {
            return Err(too_large());
        }
    }
    from_nanos(total)
}

/// Interprets an integer as a number of milliseconds.
pub(crate) fn from_millis(ms: i64) -> Result<Duration, String> {
    if ms < 0 {
        return Err("must not be negative".to_string());
    }
    let nanos = (ms as u128)
        .checked_mul(NANOS_PER_MS)
        .ok_or_else(too_large)?;
    from_nanos(nanos)
}

fn from_nanos(total: u128) -> Result<Duration, String> {
    if total == 0 {
        return Err("must be greater than zero".to_string());
    }
    if total > MAX_DURATION.as_nanos() {
        return Err(too_large());
    }
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

fn parse_digits(digits: &str) -> Result<u128, String> {
    if digits.is_empty() {
        return Ok(0);
    }
    let mut v: u128 = 0;
    for b in digits.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    Ok(v)
}

fn too_large() -> String {
    format!("too large (at most {})", format(MAX_DURATION))
}

/// Formats a duration in the config's own syntax, exactly: the largest unit
/// that divides it (`"2m"`, `"30s"`, `"500ms"`, `"1500us"`). The result
/// parses back to the same duration.
pub fn format(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".to_string();
    }
    for (unit, scale) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if n % scale == 0 {
            return format!("{}{unit}", n / scale);
        }
    }
    format!("{n}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_str(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok(" 3s "), Duration::from_secs(3));
        assert_eq!(ok("+3s"), Duration::from_secs(3));
        assert_eq!(ok("0.0000000000000000000000001h1s"), Duration::from_secs(1));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "   ",
            "ten seconds",
            "10",
            "s",
            "10 s",
            "10x",
            "10sec",
            "1.s.",
            "..5s",
            "-1s",
            "1e3ms",
            "10s garbage",
            "\u{0}",
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn zero_is_an_error() {
        assert!(parse_str("0s").unwrap_err().contains("greater than zero"));
        assert!(parse_str("0ms0s").is_err());
        assert!(parse_str("0.0000000001ns").is_err());
        assert!(from_millis(0).is_err());
    }

    #[test]
    fn bounds_are_enforced_without_overflow() {
        assert_eq!(ok("24h"), MAX_DURATION);
        assert!(parse_str("24h1ns").unwrap_err().contains("too large"));
        assert!(parse_str("99999999999999999999999999999999999999999999h").is_err());
        assert!(parse_str(&"9".repeat(10_000)).is_err());
        assert!(parse_str(&"1s".repeat(100_000)).is_err());
        assert!(from_millis(i64::MAX).is_err());
        assert!(from_millis(-1).unwrap_err().contains("negative"));
        assert_eq!(from_millis(1500), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_secs(30),
            Duration::from_secs(120),
            Duration::from_secs(7200),
            Duration::from_millis(1500),
            Duration::from_micros(1500),
            Duration::from_nanos(1501),
        ] {
            assert_eq!(ok(&format(d)), d);
        }
        assert_eq!(format(Duration::from_secs(120)), "2m");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
    }
}
