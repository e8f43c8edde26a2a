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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
