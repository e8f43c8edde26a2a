//! Input validation against the FSx model's constraints.
//!
//! AWS front ends reject constraint violations (missing required members,
//! patterns, lengths, ranges) before the service logic runs, with a
//! `ValidationException` whose message lists every violation. The emulator
//! reproduces that, so a malformed request never reaches the state and never
//! panics.

use crate::error::ApiError;
use crate::types::Tag;

pub(crate) const BACKUP_ID_PATTERN: &str = "^(backup-[0-9a-f]{8,})$";
pub(crate) const FILE_SYSTEM_ID_PATTERN: &str = "^(fs-[0-9a-f]{8,})$";
pub(crate) const VOLUME_ID_PATTERN: &str = "^(fsvol-[0-9a-f]{17,})$";
pub(crate) const TOKEN_PATTERN: &str = "[A-za-z0-9_.-]{0,63}$";
pub(crate) const TAG_PATTERN: &str = "^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$";

/// Maximum number of tags on one resource and in one request.
pub(crate) const MAX_TAGS: usize = 50;

fn hex_suffix(id: &str, prefix: &str, min_digits: usize, max_len: usize) -> bool {
    id.len() <= max_len
        && id.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() >= min_digits && rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// `backup-` followed by at least 8 lowercase hex digits, at most 128 chars.
pub(crate) fn is_backup_id(id: &str) -> bool {
    hex_suffix(id, "backup-", 8, 128)
}

/// `fs-` followed by at least 8 lowercase hex digits, at most 21 chars.
pub(crate) fn is_file_system_id(id: &str) -> bool {
    hex_suffix(id, "fs-", 8, 21)
}

/// `fsvol-` followed by exactly 17 lowercase hex digits (the model fixes the
/// length at 23).
pub(crate) fn is_volume_id(id: &str) -> bool {
    id.len() == 23 && hex_suffix(id, "fsvol-", 17, 23)
}

/// 1 to 63 characters of `[A-za-z0-9_.-]` (the model's range `A-z` includes
/// the six ASCII punctuation characters between `Z` and `a`).
pub(crate) fn is_client_request_token(token: &str) -> bool {
    (1..=63).contains(&token.len())
        && token
            .bytes()
            .all(|b| matches!(b, b'A'..=b'z' | b'0'..=b'9' | b'.' | b'-'))
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// The first problem with a list of tags, worded for a `BadRequest` or a
/// control-API error: length and character constraints, reserved `aws:`
/// prefix, duplicate keys, more than 50 tags.
pub(crate) fn tag_problems(tags: &[Tag]) -> Option<String> {
    if tags.len() > MAX_TAGS {
        return Some(format!(
            "A resource can have at most {MAX_TAGS} tags; {} were given.",
            tags.len()
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.key.is_empty() || tag.key.chars().count() > 128 || !tag.key.chars().all(is_tag_char)
        {
            return Some(format!(
                "Tag key '{}' is not valid: it must be 1 to 128 characters matching {TAG_PATTERN}.",
                tag.key
            ));
        }
        if tag.value.chars().count() > 256 || !tag.value.chars().all(is_tag_char) {
            return Some(format!(
                "Tag value for key '{}' is not valid: it must be at most 256 characters matching {TAG_PATTERN}.",
                tag.key
            ));
        }
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Some(format!(
                "Tag key '{}' uses the reserved prefix 'aws:'.",
                tag.key
            ));
        }
        if tags[..i].iter().any(|t| t.key == tag.key) {
            return Some(format!("Duplicate tag key '{}'.", tag.key));
        }
    }
    None
}

/// Accumulates model-constraint violations in AWS's message format.
#[derive(Debug, Default)]
pub(crate) struct Violations {
    problems: Vec<String>,
}

impl Violations {
    fn push(&mut self, value: Option<&str>, member: &str, constraint: &str) {
        let value = value.map_or_else(|| "null".to_owned(), |v| format!("'{v}'"));
        self.problems.push(format!(
            "Value {value} at '{member}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A required member must be present.
    pub(crate) fn required<T: ?Sized>(&mut self, value: Option<&T>, member: &str) {
        if value.is_none() {
            self.push(None, member, "Member must not be null");
        }
    }

    /// A string member must match its pattern.
    pub(crate) fn pattern(
        &mut self,
        value: Option<&str>,
        member: &str,
        ok: fn(&str) -> bool,
        pattern: &str,
    ) {
        if let Some(v) = value
            && !ok(v)
        {
            self.push(
                Some(v),
                member,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }

    /// A string member must have a length within `min..=max` characters.
    pub(crate) fn length(&mut self, value: Option<&str>, member: &str, min: usize, max: usize) {
        if let Some(v) = value {
            let n = v.chars().count();
            if n < min {
                self.push(
                    Some(v),
                    member,
                    &format!("Member must have length greater than or equal to {min}"),
                );
            } else if n > max {
                self.push(
                    Some(v),
                    member,
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
        }
    }

    /// A list member must have between `min` and `max` elements.
    pub(crate) fn list_len<T>(
        &mut self,
        value: Option<&[T]>,
        member: &str,
        min: usize,
        max: usize,
    ) {
        if let Some(v) = value {
            if v.len() < min {
                self.push(
                    Some(&format!("[{} items]", v.len())),
                    member,
                    &format!("Member must have length greater than or equal to {min}"),
                );
            } else if v.len() > max {
                self.push(
                    Some(&format!("[{} items]", v.len())),
                    member,
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
        }
    }

    /// A violation described by `constraint` (`Member must ...`).
    pub(crate) fn constraint(&mut self, value: Option<&str>, member: &str, constraint: &str) {
        self.push(value, member, constraint);
    }

    /// A number member must lie within `min..=max`.
    pub(crate) fn range(&mut self, value: Option<i64>, member: &str, min: i64, max: i64) {
        if let Some(v) = value {
            if v < min {
                self.push(
                    Some(&v.to_string()),
                    member,
                    &format!("Member must have value greater than or equal to {min}"),
                );
            } else if v > max {
                self.push(
                    Some(&v.to_string()),
                    member,
                    &format!("Member must have value less than or equal to {max}"),
                );
            }
        }
    }

    /// `MaxResults` must be at least 1.
    pub(crate) fn max_results(&mut self, value: Option<i32>) {
        if let Some(v) = value
            && v < 1
        {
            self.push(
                Some(&v.to_string()),
                "maxResults",
                "Member must have value greater than or equal to 1",
            );
        }
    }

    /// A member must be one of the enumeration's values.
    pub(crate) fn one_of(&mut self, value: Option<&str>, member: &str, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.push(
                Some(v),
                member,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// Required `Key`/`Value` members of each tag in a list.
    pub(crate) fn tags(&mut self, tags: Option<&[TagInput]>, member: &str) {
        for (i, tag) in tags.unwrap_or_default().iter().enumerate() {
            let n = i + 1;
            self.required(tag.key.as_ref(), &format!("{member}.{n}.member.key"));
            self.required(tag.value.as_ref(), &format!("{member}.{n}.member.value"));
        }
    }

    /// `Ok` when nothing was violated, otherwise the `ValidationException`.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.problems.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!(
                "1 validation error detected: {}",
                self.problems[0]
            ))),
            n => Err(ApiError::validation(format!(
                "{n} validation errors detected: {}",
                self.problems.join("; ")
            ))),
        }
    }
}

/// A tag as it arrives on the wire, before required members are checked.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct TagInput {
    #[serde(rename = "Key")]
    pub(crate) key: Option<String>,
    #[serde(rename = "Value")]
    pub(crate) value: Option<String>,
}

/// Converts validated wire tags (see [`Violations::tags`]) into tags.
pub(crate) fn into_tags(tags: Option<Vec<TagInput>>) -> Vec<Tag> {
    tags.unwrap_or_default()
        .into_iter()
        .filter_map(|t| Some(Tag::new(t.key?, t.value?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_patterns() {
        assert!(is_backup_id("backup-0123456789abcdef0"));
        assert!(is_backup_id("backup-01234567"));
        assert!(!is_backup_id("backup-0123456"));
        assert!(!is_backup_id("backup-0123456789ABCDEF0"));
        assert!(!is_backup_id("fs-0123456789abcdef0"));
        assert!(is_file_system_id("fs-0123456789abcdef0"));
        assert!(!is_file_system_id("fs-0123456789abcdef0123"));
        assert!(is_volume_id("fsvol-0123456789abcdef0"));
        assert!(!is_volume_id("fsvol-0123456789abcdef"));
    }

    #[test]
    fn tokens() {
        assert!(is_client_request_token("abc-DEF_1.2"));
        assert!(!is_client_request_token(""));
        assert!(!is_client_request_token(&"a".repeat(64)));
        assert!(!is_client_request_token("a b"));
    }

    #[test]
    fn tag_rules() {
        assert_eq!(tag_problems(&[Tag::new("Name", "x y")]), None);
        assert!(tag_problems(&[Tag::new("", "x")]).is_some());
        assert!(tag_problems(&[Tag::new("aws:x", "x")]).is_some());
        assert!(tag_problems(&[Tag::new("a", "1"), Tag::new("a", "2")]).is_some());
        assert!(tag_problems(&[Tag::new("a", "bad\u{0007}")]).is_some());
        let many: Vec<Tag> = (0..51).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert!(tag_problems(&many).is_some());
    }

    #[test]
    fn violation_messages() {
        let mut v = Violations::default();
        v.required::<String>(None, "backupId");
        let err = v.finish().unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert_eq!(
            err.message,
            "1 validation error detected: Value null at 'backupId' failed to satisfy constraint: Member must not be null"
        );
        let mut v = Violations::default();
        v.pattern(Some("x"), "backupId", is_backup_id, BACKUP_ID_PATTERN);
        v.max_results(Some(0));
        assert!(
            v.finish()
                .unwrap_err()
                .message
                .starts_with("2 validation errors detected: ")
        );
    }
}
