//! Fuzzing of everything that reads user text, as property tests run by
//! `cargo test` (and so in CI): the cron parser and time zones, durations, the
//! backup-name template, and the run accounting of `due`. Inputs are arbitrary
//! strings and instants; the properties are "never panics" and "what comes out
//! obeys the limits the rest of the operator relies on". Retention planning has
//! its own properties in `retention.rs`, the next-run search in `schedule.rs`.
//!
//! `PROPTEST_CASES=100000 cargo test --lib fuzz_tests` runs a longer campaign.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use crate::duration::{format_duration, parse_duration};
use crate::naming::{MAX_NAME_LEN, NameContext, render_backup_name};
use crate::schedule::{Schedule, due, jitter_offset};

/// Cron-shaped text: fields of digits and cron punctuation, sometimes junk.
fn cron_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (1u8..70).prop_map(|n| format!("*/{n}")),
        (0u8..70).prop_map(|n| n.to_string()),
        (0u8..40, 0u8..70).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u8..40, 0u8..70, 1u8..9).prop_map(|(a, b, c)| format!("{a}-{b}/{c}")),
        (0u8..60, 0u8..60).prop_map(|(a, b)| format!("{a},{b}")),
    ]
}

fn cron_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(cron_field(), 5).prop_map(|f| f.join(" ")),
        1 => "[0-9*/,L#?-]{1,6}( [0-9*/,L#?-]{1,6}){4}",
        1 => "[0-9*/,-]{0,4}( [0-9A-Za-z*/,-]{0,5}){0,7}",
        1 => ".{0,40}",
    ]
}

fn zone_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("UTC".to_owned()),
        Just("Europe/Berlin".to_owned()),
        Just("America/St_Johns".to_owned()),
        Just("Australia/Lord_Howe".to_owned()),
        "[A-Za-z_/+-]{0,30}",
    ]
}

proptest! {
    #[test]
    fn the_cron_parser_never_panics_and_what_it_accepts_fires(text in cron_text(), zone in zone_text(), secs in -62_000_000_000i64..250_000_000_000) {
        if let Ok(schedule) = Schedule::parse(&text, &zone) {
            let after = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
            if let Some(next) = schedule.next_after(after) {
                prop_assert!(next > after);
            }
        }
    }

    #[test]
    fn due_never_panics_whatever_the_instants(
        text in cron_text(),
        pending in -62_000_000_000i64..253_000_000_000,
        now in -62_000_000_000i64..253_000_000_000,
        jitter in any::<u64>(),
        deadline in proptest::option::of(any::<u64>()),
    ) {
        let Ok(schedule) = Schedule::parse(&text, "Europe/Berlin") else { return Ok(()) };
        let (Ok(pending), Ok(now)) = (Timestamp::from_second(pending), Timestamp::from_second(now)) else {
            return Ok(());
        };
        let offset = jitter_offset("uid", Duration::from_secs(jitter));
        let d = due(&schedule, offset, pending, now, deadline.map(Duration::from_secs));
        if let Some(run) = d.run {
            prop_assert!(run >= pending);
        }
    }

    #[test]
    fn durations_never_panic_and_round_trip(text in "[0-9]{0,25}[smhdw]?([0-9]{0,8}[smhdw]){0,4}|.{0,20}") {
        if let Ok(duration) = parse_duration(&text) {
            let formatted = format_duration(duration);
            prop_assert_eq!(parse_duration(&formatted).ok(), Some(duration), "{} -> {}", text, formatted);
            // Any accepted duration can be added to any instant without a panic.
            let _ = Timestamp::MAX.checked_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX));
        }
    }

    #[test]
    fn backup_names_never_panic_and_always_fit_a_tag(
        template in "([a-z{}:%-]|\\{(schedule|namespace|target|time:[%A-Za-z0-9:T-]{0,12})\\}){0,40}|.{0,60}",
        schedule in "[a-z0-9-]{1,63}",
        target in "(fs|fsvol)-[0-9a-f]{17}",
        secs in -62_000_000_000i64..253_000_000_000,
    ) {
        let time = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
        let context = NameContext { schedule: &schedule, namespace: "storage", target: &target, time };
        if let Ok(name) = render_backup_name(&template, &context) {
            prop_assert!(name.chars().count() <= MAX_NAME_LEN);
        }
    }
}
