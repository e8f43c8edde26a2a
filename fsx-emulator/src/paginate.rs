//! `MaxResults` / `NextToken` pagination in "unspecified order".
//!
//! FSx documents that the order of items within and across pages is
//! unspecified. Clients that assume creation order (or any order) are buggy,
//! so the emulator deliberately orders by a salted hash of the item id: the
//! order is unrelated to creation, yet fixed for the emulator's lifetime, so
//! one pagination sequence returns every item exactly once. The `NextToken`
//! is an opaque cursor (the last item's position) bound to the request's
//! parameters; a token from a different listing is rejected.

use crate::error::ApiError;
use crate::hash::{from_hex, hash64, to_hex};

/// FSx's internal per-page maximum for the describe operations.
pub(crate) const INTERNAL_MAX_PAGE: usize = 100;

/// One page of results.
#[derive(Debug)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) next_token: Option<String>,
}

/// Selects the page of `items` (keyed by id) after `next_token`.
///
/// `scope` must describe the listing (operation and normalized filters): a
/// token is only accepted by a request with the same scope.
pub(crate) fn paginate<T>(
    items: Vec<(String, T)>,
    salt: u64,
    scope: &str,
    max_results: Option<i32>,
    next_token: Option<&str>,
) -> Result<Page<T>, ApiError> {
    let fingerprint = hash64(salt, scope.as_bytes());
    let mut keyed: Vec<(u64, String, T)> = items
        .into_iter()
        .map(|(id, item)| (hash64(salt, id.as_bytes()), id, item))
        .collect();
    keyed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));

    let start = match next_token {
        None => 0,
        Some(token) => {
            let (token_fp, key, id) = decode(token).ok_or_else(invalid_token)?;
            if token_fp != fingerprint {
                return Err(invalid_token());
            }
            keyed.partition_point(|(k, i, _)| (*k, i.as_str()) <= (key, id.as_str()))
        }
    };
    let page_size = max_results
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(INTERNAL_MAX_PAGE)
        .clamp(1, INTERNAL_MAX_PAGE);

    let remaining = keyed.len().saturating_sub(start);
    let take = remaining.min(page_size);
    let has_more = remaining > take;
    let page: Vec<(u64, String, T)> = keyed.into_iter().skip(start).take(take).collect();
    let next_token = if has_more {
        page.last().map(|(k, id, _)| encode(fingerprint, *k, id))
    } else {
        None
    };
    Ok(Page {
        items: page.into_iter().map(|(_, _, item)| item).collect(),
        next_token,
    })
}

fn invalid_token() -> ApiError {
    ApiError::bad_request("The NextToken value is invalid for this request.")
}

fn encode(fingerprint: u64, key: u64, id: &str) -> String {
    format!("{fingerprint:016x}{key:016x}{}", to_hex(id.as_bytes()))
}

fn decode(token: &str) -> Option<(u64, u64, String)> {
    if token.len() < 32 || !token.is_ascii() {
        return None;
    }
    let fingerprint = u64::from_str_radix(&token[..16], 16).ok()?;
    let key = u64::from_str_radix(&token[16..32], 16).ok()?;
    let id = String::from_utf8(from_hex(&token[32..])?).ok()?;
    Some((fingerprint, key, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("id-{i:03}"), format!("id-{i:03}")))
            .collect()
    }

    #[test]
    fn every_item_exactly_once_in_non_creation_order() {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = paginate(ids(9), 42, "scope", Some(2), token.as_deref()).unwrap();
            pages += 1;
            assert!(page.items.len() <= 2);
            seen.extend(page.items);
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(pages, 5);
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ids(9).into_iter().map(|(i, _)| i).collect::<Vec<_>>()
        );
        assert_ne!(seen, sorted, "order must not be creation order");
    }

    #[test]
    fn tokens_are_bound_to_scope_and_well_formed() {
        let page = paginate(ids(5), 1, "a", Some(1), None).unwrap();
        let token = page.next_token.unwrap();
        assert!(paginate(ids(5), 1, "b", Some(1), Some(&token)).is_err());
        assert!(paginate(ids(5), 1, "a", Some(1), Some("garbage")).is_err());
        assert!(paginate(ids(5), 1, "a", Some(1), Some("é".repeat(20).as_str())).is_err());
        assert!(paginate(ids(5), 1, "a", Some(1), Some(&token)).is_ok());
    }

    #[test]
    fn default_page_is_capped() {
        let page = paginate(ids(150), 3, "s", None, None).unwrap();
        assert_eq!(page.items.len(), INTERNAL_MAX_PAGE);
        assert!(page.next_token.is_some());
    }
}
