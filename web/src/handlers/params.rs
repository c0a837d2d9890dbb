//! Query parameter parsing shared by the read routes (JSON and HTML): every error names
//! its parameter.

use certfleet_model::Finding;
use certfleet_store::{MtlsState, FINDINGS};
use serde::Serialize;

use crate::ApiError;

/// Default and largest page size.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

/// A page of results. `next_cursor` is null on the last page; pass it back as `cursor`
/// with the same other parameters for the next page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with each item turned into `U` (a store record into its response).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }

    /// A page of at most `limit` items; there may be more when it is full.
    pub fn new(items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = match items.last() {
            Some(last) if items.len() >= limit as usize => Some(key(last)),
            _ => None,
        };
        Page { items, next_cursor }
    }
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message, Some(field.to_owned()))
}

pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(bad(
            "limit",
            format!("limit must be a number from 1 to {MAX_LIMIT}"),
        )),
    }
}

/// A cursor that is a certificate's SHA-256 (certificate lists).
pub fn sha256_cursor(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some(text) if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(text.to_ascii_lowercase()))
        }
        Some(_) => Err(bad("cursor", "cursor is not one this server gave")),
    }
}

/// A cursor that is a row id (endpoint and notification lists).
pub fn id_cursor(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id >= 0 => Ok(Some(id)),
            _ => Err(bad("cursor", "cursor is not one this server gave")),
        },
    }
}

/// `30d`, `12h`, `90m` or a bare number of days.
pub fn parse_window(raw: &str, field: &str) -> Result<time::Duration, ApiError> {
    let raw = raw.trim();
    let error = || {
        bad(
            field,
            format!("{field} must look like 30d, 12h or 90m (at most 3650d)"),
        )
    };
    let (number, unit) = match raw.char_indices().last() {
        Some((index, unit)) if unit.is_ascii_alphabetic() => (&raw[..index], unit),
        _ => (raw, 'd'),
    };
    let value: i64 = number.parse().map_err(|_| error())?;
    let per_day = match unit {
        'd' => 1,
        'h' => 24,
        'm' => 24 * 60,
        _ => return Err(error()),
    };
    // Checked before the Duration is built: `Duration::days` panics on overflow.
    if !(0..=3650 * per_day).contains(&value) {
        return Err(error());
    }
    Ok(match unit {
        'd' => time::Duration::days(value),
        'h' => time::Duration::hours(value),
        _ => time::Duration::minutes(value),
    })
}

pub fn parse_mtls(raw: &str) -> Result<MtlsState, ApiError> {
    match raw.trim() {
        "required" => Ok(MtlsState::Required),
        "optional" => Ok(MtlsState::Optional),
        "none" => Ok(MtlsState::None),
        _ => Err(bad("mtls", "mtls must be required, optional or none")),
    }
}

pub fn parse_finding(raw: &str) -> Result<Finding, ApiError> {
    FINDINGS
        .iter()
        .copied()
        .find(|finding| finding.as_str() == raw.trim())
        .ok_or_else(|| {
            let names: Vec<&str> = FINDINGS.iter().map(|f| f.as_str()).collect();
            bad(
                "finding",
                format!("finding must be one of {}", names.join(", ")),
            )
        })
}

pub fn parse_bool(raw: &str, field: &str) -> Result<bool, ApiError> {
    match raw.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(bad(field, format!("{field} must be true or false"))),
    }
}

/// Empty form fields count as absent (an HTML form sends every input).
pub fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}
