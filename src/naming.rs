//! Deterministic names: idempotency tokens (so a retried or re-executed
//! reconcile can never create a second backup for the same slot) and the
//! rendered `Name` tag.

use jiff::Timestamp;

/// FSx's limit on `ClientRequestToken`.
pub const MAX_TOKEN_LEN: usize = 63;
/// FSx's limit on a tag value, and so on the rendered `Name`.
pub const MAX_NAME_LEN: usize = 256;
/// The `backupName` used when the spec has none.
pub const DEFAULT_BACKUP_NAME: &str = "{schedule}-{target}-{time:%Y%m%dT%H%MZ}";

/// FNV-1a, 64 bits: stable across Rust releases and platforms (unlike std's
/// `DefaultHasher`), so tokens and jitter survive an operator upgrade.
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // A separator that cannot occur in the parts keeps ("ab","c") and ("a","bc") apart.
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// Token of the scheduled backup of `target` at `slot` by the object `uid`:
/// `fbs-<hash of uid and target>-<slot in UTC to the minute>`, 35 characters.
pub fn scheduled_backup_token(uid: &str, target: &str, slot: Timestamp) -> String {
    format!(
        "fbs-{:016x}-{}",
        stable_hash(&[uid, target]),
        slot.strftime("%Y%m%dT%H%MZ")
    )
}

/// Token of the manual (`run-now`) backup of `target` for `nonce`, first seen at
/// `requested`: retries of one request are the same call with the same tags; a
/// nonce applied again later (a GitOps revert a → b → a) is a new request.
pub fn run_now_token(uid: &str, target: &str, nonce: &str, requested: Timestamp) -> String {
    let at = requested.as_second().to_string();
    format!(
        "fbn-{:016x}{:016x}",
        stable_hash(&[uid, target, nonce, &at]),
        stable_hash(&[&at, nonce, target, uid])
    )
}

/// Token of the copy of `source_backup_id` by the copy object `uid`.
pub fn copy_token(uid: &str, source_backup_id: &str) -> String {
    format!("fbc-{:016x}-{source_backup_id}", stable_hash(&[uid]))
        .chars()
        .take(MAX_TOKEN_LEN)
        .collect()
}

/// What a `backupName` template is rendered from.
#[derive(Clone, Copy, Debug)]
pub struct NameContext<'a> {
    pub schedule: &'a str,
    pub namespace: &'a str,
    pub target: &'a str,
    pub time: Timestamp,
}

/// Renders a `backupName` template; errors say what to fix in the template.
pub fn render_backup_name(template: &str, context: &NameContext<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("spec.backupName: `{{` at offset {open} is never closed"))?;
        let placeholder = &after[..close];
        match placeholder {
            "schedule" => out.push_str(context.schedule),
            "namespace" => out.push_str(context.namespace),
            "target" => out.push_str(context.target),
            _ => {
                let Some(format) = placeholder.strip_prefix("time:") else {
                    return Err(format!(
                        "spec.backupName: unknown placeholder `{{{placeholder}}}` (use {{schedule}}, {{namespace}}, {{target}} or {{time:FORMAT}})"
                    ));
                };
                let zoned = context.time.to_zoned(jiff::tz::TimeZone::UTC);
                let rendered = jiff::fmt::strtime::format(format, &zoned)
                    .map_err(|err| format!("spec.backupName: bad time format `{format}`: {err}"))?;
                out.push_str(&rendered);
            }
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err("spec.backupName: `}` without a matching `{`".to_owned());
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err("spec.backupName renders to an empty name".to_owned());
    }
    let length = out.chars().count();
    if length > MAX_NAME_LEN {
        return Err(format!(
            "spec.backupName renders to {length} characters; FSx allows at most {MAX_NAME_LEN} in a tag value"
        ));
    }
    if let Some(bad) = out.chars().find(|c| !is_tag_value_char(*c)) {
        return Err(format!(
            "spec.backupName renders `{bad}`, which FSx does not allow in a tag value (letters, digits, spaces and _ . : / = + - @)"
        ));
    }
    Ok(out)
}

/// FSx tag values: `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`.
pub(crate) fn is_tag_value_char(c: char) -> bool {
    c.is_alphanumeric()
        || c == ' '
        || c.is_whitespace() && !c.is_control()
        || "_.:/=+-@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("valid timestamp")
    }

    fn valid_token(token: &str) -> bool {
        !token.is_empty()
            && token.len() <= MAX_TOKEN_LEN
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    }

    #[test]
    fn tokens_are_pinned() {
        // Pinned literals: a change here means an upgrade would re-create
        // backups for slots already taken. Only change with a migration plan.
        let uid = "0b6f1f0e-4a1c-4d8e-9a57-3f7c2b1d9e10";
        let slot = at("2026-11-25T06:00:00Z");
        assert_eq!(
            scheduled_backup_token(uid, "fs-0123456789abcdef0", slot),
            format!(
                "fbs-{:016x}-20261125T0600Z",
                stable_hash(&[uid, "fs-0123456789abcdef0"])
            )
        );
        assert_eq!(stable_hash(&[""]), 0xaf64_724c_8602_eb6e);
        assert_eq!(stable_hash(&["a"]), stable_hash(&["a"]));
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_eq!(
            scheduled_backup_token(uid, "fs-0123456789abcdef0", slot).len(),
            35
        );
    }

    #[test]
    fn tokens_differ_by_owner_target_slot_and_nonce() {
        let slot = at("2026-11-25T06:00:00Z");
        let base = scheduled_backup_token("uid-1", "fs-1", slot);
        assert_ne!(base, scheduled_backup_token("uid-2", "fs-1", slot));
        assert_ne!(base, scheduled_backup_token("uid-1", "fs-2", slot));
        assert_ne!(
            base,
            scheduled_backup_token("uid-1", "fs-1", at("2026-11-25T12:00:00Z"))
        );
        assert_eq!(
            run_now_token("uid-1", "fs-1", "a", slot),
            run_now_token("uid-1", "fs-1", "a", slot)
        );
        assert_ne!(
            run_now_token("uid-1", "fs-1", "a", slot),
            run_now_token("uid-1", "fs-1", "b", slot)
        );
        assert_ne!(
            run_now_token("uid-1", "fs-1", "a", slot),
            run_now_token("uid-1", "fs-1", "a", at("2026-11-25T06:00:01Z")),
            "a nonce applied again later is a new request"
        );
        assert_ne!(
            copy_token("uid-1", "backup-0123456789abcdef0"),
            copy_token("uid-2", "backup-0123456789abcdef0")
        );
        assert!(valid_token(&copy_token(
            "uid-1",
            "backup-0123456789abcdef01234"
        )));
    }

    proptest! {
        #[test]
        fn tokens_always_fit_fsx_rules(uid in ".{0,80}", target in "[a-z0-9-]{0,30}", nonce in ".{0,300}", secs in 0i64..4_000_000_000) {
            let slot = Timestamp::from_second(secs).expect("in range");
            prop_assert!(valid_token(&scheduled_backup_token(&uid, &target, slot)));
            prop_assert!(valid_token(&run_now_token(&uid, &target, &nonce, slot)));
            let source = format!("backup-{target}");
            prop_assert!(valid_token(&copy_token(&uid, &source)));
        }
    }

    fn context(time: &str) -> NameContext<'static> {
        NameContext {
            schedule: "nightly",
            namespace: "storage",
            target: "fs-0123456789abcdef0",
            time: at(time),
        }
    }

    #[test]
    fn default_name_renders() {
        assert_eq!(
            render_backup_name(DEFAULT_BACKUP_NAME, &context("2026-11-25T06:00:00Z")),
            Ok("nightly-fs-0123456789abcdef0-20261125T0600Z".to_owned())
        );
        assert_eq!(
            render_backup_name(
                "{namespace}/{schedule} {time:%Y-%m-%d}",
                &context("2026-11-25T06:00:00Z")
            ),
            Ok("storage/nightly 2026-11-25".to_owned())
        );
    }

    #[test]
    fn name_limits_are_enforced() {
        let ctx = context("2026-11-25T06:00:00Z");
        let exactly = "n".repeat(MAX_NAME_LEN);
        assert_eq!(
            render_backup_name(&exactly, &ctx).map(|n| n.len()),
            Ok(MAX_NAME_LEN)
        );
        let too_long = format!("{}{{target}}", "n".repeat(MAX_NAME_LEN - 10));
        let err = render_backup_name(&too_long, &ctx).expect_err("266 characters");
        assert!(
            err.contains("266 characters") && err.contains("spec.backupName"),
            "{err}"
        );
        for bad in ["{nope}", "{target", "x}", "{time:%!}", "a#b", ""] {
            let err = render_backup_name(bad, &ctx).expect_err(bad);
            assert!(err.contains("spec.backupName"), "{bad}: {err}");
        }
    }
}
