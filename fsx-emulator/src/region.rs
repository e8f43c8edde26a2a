//! AWS Regions, partitions and the `SigV4` credential scope.
//!
//! The emulator keeps separate state per Region and picks the Region the way
//! a real endpoint effectively does: from the Region the client signed for.
//! The scope also names the access key (which decides the account, see
//! [`crate::identity`]) and the service (`fsx` or `sts`). Signatures
//! themselves are not verified; only the scope is parsed.

/// Whether `region` has the shape of an AWS Region name: two letters, an
/// optional `-gov`, a direction word and a number (`us-east-1`,
/// `us-gov-west-1`, `cn-northwest-1`).
pub fn is_valid_region(region: &str) -> bool {
    let mut parts = region.split('-');
    let (Some(country), Some(mut word)) = (parts.next(), parts.next()) else {
        return false;
    };
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    if word == "gov" {
        let Some(next) = parts.next() else {
            return false;
        };
        word = next;
    }
    let (Some(number), None) = (parts.next(), parts.next()) else {
        return false;
    };
    !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_lowercase())
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The partition a Region belongs to; cross-Region copies must stay inside
/// one partition.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Why the `Authorization` header could not give a Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeError {
    /// No `Authorization` header at all.
    Missing,
    /// The header is not a `SigV4` header with a five-part credential scope.
    Malformed(String),
    /// The scope names something that is not an AWS Region.
    InvalidRegion(String),
}

/// The credential scope of a `SigV4` `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialScope {
    pub(crate) access_key: String,
    pub(crate) region: String,
    pub(crate) service: String,
}

/// The service a `SigV4` `Authorization` header is scoped to, if it has the
/// shape of one (used to route a request before anything else is checked).
pub(crate) fn scoped_service(header: Option<&str>) -> Option<&str> {
    let credential = header?
        .split(',')
        .find_map(|part| part.trim().split_once("Credential=").map(|(_, c)| c))?;
    credential.split('/').nth(3)
}

/// Extracts the credential scope from a `SigV4` `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/20261125/us-west-2/fsx/aws4_request, ...`.
pub(crate) fn scope_from_authorization(
    header: Option<&str>,
) -> Result<CredentialScope, ScopeError> {
    let header = header.ok_or(ScopeError::Missing)?.trim();
    let rest = header.strip_prefix("AWS4-HMAC-SHA256").ok_or_else(|| {
        ScopeError::Malformed(
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm.".into(),
        )
    })?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))
        .ok_or_else(|| {
            ScopeError::Malformed("Authorization header requires 'Credential' parameter.".into())
        })?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = scope.as_slice() else {
        return Err(ScopeError::Malformed(format!(
            "Credential should be scoped to a valid Region, not '{credential}'."
        )));
    };
    if key.is_empty() || date.len() != 8 || service.is_empty() || *terminator != "aws4_request" {
        return Err(ScopeError::Malformed(format!(
            "Credential should be scoped correctly: '{credential}'."
        )));
    }
    if !is_valid_region(region) {
        return Err(ScopeError::InvalidRegion((*region).to_owned()));
    }
    Ok(CredentialScope {
        access_key: (*key).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_shapes() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-northwest-1",
            "ap-southeast-10",
            "il-central-1",
        ] {
            assert!(is_valid_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-x",
            "use-east-1",
            "us-east-1-2",
            "us-gov-1",
            "us--1",
            "us-east-123",
            "mars",
        ] {
            assert!(!is_valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn partitions() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-east-1"), "aws-us-gov");
    }

    fn region_from_authorization(header: Option<&str>) -> Result<String, ScopeError> {
        scope_from_authorization(header).map(|scope| scope.region)
    }

    #[test]
    fn scope_parsing() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20261125/us-west-2/fsx/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(
            scope_from_authorization(Some(h)),
            Ok(CredentialScope {
                access_key: "AKID".into(),
                region: "us-west-2".into(),
                service: "fsx".into(),
            })
        );
        assert_eq!(scoped_service(Some(h)), Some("fsx"));
        assert_eq!(scoped_service(Some("Bearer x")), None);
        assert_eq!(scoped_service(None), None);
        assert_eq!(region_from_authorization(None), Err(ScopeError::Missing));
        assert!(matches!(
            region_from_authorization(Some("Bearer x")),
            Err(ScopeError::Malformed(_))
        ));
        assert!(matches!(
            region_from_authorization(Some(
                "AWS4-HMAC-SHA256 Credential=A/20261125/fsx/aws4_request"
            )),
            Err(ScopeError::Malformed(_))
        ));
        assert_eq!(
            region_from_authorization(Some(
                "AWS4-HMAC-SHA256 Credential=A/20261125/moon-1/fsx/aws4_request"
            )),
            Err(ScopeError::InvalidRegion("moon-1".into()))
        );
    }
}
