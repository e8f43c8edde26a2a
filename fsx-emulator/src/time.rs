//! Wall-clock helpers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Epoch seconds with millisecond precision, the way FSx reports timestamps
/// (`CreationTime: 1764064800.123`). Times before the epoch map to 0.
pub(crate) fn epoch_seconds(t: SystemTime) -> f64 {
    let millis = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    // Millisecond counts stay far below 2^53 for any realistic date, so the
    // conversion is exact.
    #[allow(
        clippy::cast_precision_loss,
        reason = "epoch milliseconds fit in f64's 53-bit mantissa until year 287396"
    )]
    let millis = millis as f64;
    millis / 1000.0
}

/// `2026-11-25T12:00:00Z`: ISO 8601 in UTC to the second, the way STS
/// writes `Expiration`. Times before the epoch map to the epoch.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm,
    // restricted to dates after the epoch).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_764_064_801);
        assert_eq!(iso8601(t), "2025-11-25T10:00:01Z");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(iso8601(leap), "2024-02-29T12:34:56Z");
        let end = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(iso8601(end), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn rounds_to_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_micros(1_764_064_800_123_456);
        assert!((epoch_seconds(t) - 1_764_064_800.123).abs() < 1e-6);
    }

    #[test]
    fn before_epoch_is_zero() {
        let t = UNIX_EPOCH - Duration::from_secs(5);
        assert!(epoch_seconds(t).abs() < f64::EPSILON);
    }
}
