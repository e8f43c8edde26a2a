//! Durations as users write them in specs and flags: `90s`, `10m`, `6h`, `7d`, `2w`, `1h30m`.
//!
//! Deliberately small: whole units only, no months or years (their length varies, and a
//! retention of "1 month" would silently mean 28 to 31 days). The CRD schema enforces
//! [`DURATION_PATTERN`]; [`parse_duration`] is the same grammar plus overflow checks.

use std::fmt;
use std::time::Duration;

/// The grammar of a duration, enforced by the apiserver through the CRD schema.
pub const DURATION_PATTERN: &str = r"^([0-9]+(s|m|h|d|w))+$";

/// Why a duration was refused; the text is meant for a person fixing a spec or a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    MissingUnit(String),
    MissingNumber(String),
    UnknownUnit(char),
    TooLarge(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty duration; write e.g. 30s, 10m, 6h, 7d or 2w"),
            Self::MissingUnit(text) => {
                write!(f, "\"{text}\" has a number without a unit (s, m, h, d, w)")
            }
            Self::MissingNumber(text) => {
                write!(f, "\"{text}\" has a unit without a number before it")
            }
            Self::UnknownUnit(unit) => write!(f, "unknown unit '{unit}'; use s, m, h, d or w"),
            Self::TooLarge(text) => write!(f, "\"{text}\" is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parses `1h30m`-style durations (units `s m h d w`, each part a whole number).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let too_large = || DurationError::TooLarge(text.to_owned());
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for ch in text.chars() {
        if let Some(digit) = ch.to_digit(10) {
            let value = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)));
            number = Some(value.ok_or_else(too_large)?);
            continue;
        }
        let seconds = UNITS
            .iter()
            .find(|(unit, _)| *unit == ch)
            .map(|(_, s)| *s)
            .ok_or(DurationError::UnknownUnit(ch))?;
        let count = number
            .take()
            .ok_or_else(|| DurationError::MissingNumber(text.to_owned()))?;
        let part = count.checked_mul(seconds).ok_or_else(too_large)?;
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    if number.is_some() {
        return Err(DurationError::MissingUnit(text.to_owned()));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest text that [`parse_duration`] reads back as `duration` (whole seconds).
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_secs();
    if rest == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, seconds) in UNITS {
        if rest >= seconds {
            text.push_str(&(rest / seconds).to_string());
            text.push(unit);
            rest %= seconds;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        let table = [
            ("0s", 0),
            ("90s", 90),
            ("10m", 600),
            ("6h", 21_600),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1h30m", 5_400),
            ("1d12h", 129_600),
            ("1m1m", 120),
        ];
        for (text, seconds) in table {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("h"),
            Err(DurationError::MissingNumber(_))
        ));
        assert_eq!(parse_duration("1y"), Err(DurationError::UnknownUnit('y')));
        assert_eq!(parse_duration("-1h"), Err(DurationError::UnknownUnit('-')));
        assert_eq!(parse_duration("1.5h"), Err(DurationError::UnknownUnit('.')));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("9999999999999999w"),
            Err(DurationError::TooLarge(_))
        ));
    }

    #[test]
    fn formats_round_trip() {
        for seconds in [
            0, 1, 59, 60, 61, 3_599, 3_600, 5_400, 86_400, 90_061, 604_800, 1_209_661,
        ] {
            let text = format_duration(Duration::from_secs(seconds));
            assert_eq!(
                parse_duration(&text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_mins(90)), "1h30m");
        assert_eq!(format_duration(Duration::from_hours(168)), "1w");
    }
}
