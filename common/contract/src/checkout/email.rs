//! The customer's email address, checked strictly: it ends up in SMTP
//! headers and envelopes.

use super::{MAX_EMAIL_LEN, json::Json};
use crate::problem::FieldError;

pub(super) fn email(
    value: Option<&Json>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None | Some(Json::Null) => errors.push(FieldError::new(field, "is required")),
        Some(Json::String(s)) => match check_email(s) {
            Ok(()) => return Some(s.clone()),
            Err(message) => errors.push(FieldError::new(field, message)),
        },
        Some(_) => errors.push(FieldError::new(field, "must be a string")),
    }
    None
}

/// A deliberately strict address check: a dot-atom local part and a DNS domain
/// with at least two labels. Quoted local parts, IP literals, comments and any
/// control character are refused, because the address ends up in SMTP headers
/// and envelopes.
pub fn check_email(address: &str) -> Result<(), &'static str> {
    if address.len() > MAX_EMAIL_LEN {
        return Err("must be at most 254 characters");
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("must be an email address like name@example.com");
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    // RFC 2047 encoded-words (`=?utf-8?q?victim=40target.com?=`) are not
    // addresses, but some mail clients decode them in `To:`.
    if local.contains("=?") {
        return Err("must not contain an encoded word (=?...?=)");
    }
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err("must be an email address like name@example.com")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked_strictly() {
        for good in [
            "test@example.com",
            "a.b+decline@shop.example.co",
            "x_y@sub-domain.io",
        ] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "a@b.com\r\nBcc: x@evil.com",
            "a@b.com\nBcc: x@evil.com",
            "plain",
            "a@b",
            "a@localhost",
            "user@[127.0.0.1]",
            "\"quoted local\"@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@-x.com",
            "a@example.c0m",
            "a b@example.com",
            "a\0@example.com",
            "=?utf-8?q?victim=40target.com?=@example.com",
            "=?utf-8?b?dmljdGlt?=@example.com",
            long.as_str(),
        ] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
