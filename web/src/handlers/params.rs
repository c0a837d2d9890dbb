//! Query parameter parsing shared by the read routes: every error names its parameter.

use crate::ApiError;

/// Default and largest page size.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.trim().parse::<u32>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request(
            format!("limit must be a number from 1 to {MAX_LIMIT}"),
            Some("limit".into()),
        )),
    }
}

/// `30d`, `12h`, `90m` or a bare number of days.
pub fn parse_window(raw: &str, field: &str) -> Result<time::Duration, ApiError> {
    let raw = raw.trim();
    let bad = || {
        ApiError::bad_request(
            format!("{field} must look like 30d, 12h or 90m (at most 3650d)"),
            Some(field.to_owned()),
        )
    };
    let (number, unit) = match raw.char_indices().last() {
        Some((index, unit)) if unit.is_ascii_alphabetic() => (&raw[..index], unit),
        _ => (raw, 'd'),
    };
    let value: i64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        'd' => time::Duration::days(value),
        'h' => time::Duration::hours(value),
        'm' => time::Duration::minutes(value),
        _ => return Err(bad()),
    };
    if value < 0 || duration > time::Duration::days(3650) {
        return Err(bad());
    }
    Ok(duration)
}
