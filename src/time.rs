//! Time as the product sees it: unix seconds from a clock that tests can move forward.
//!
//! In `sim` mode the app and its embedded simulator share one clock, so moving the
//! simulator's clock (a test control) moves the app's view of token lifetimes with it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time plus an offset that only ever grows.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_seconds: Arc<AtomicI64>,
}

impl Clock {
    /// The real clock; `advance` is still available but only tests and the simulator use it.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Unix time in seconds, as this clock sees it.
    pub fn now(&self) -> i64 {
        real_now() + self.offset_seconds.load(Ordering::Relaxed)
    }

    /// Unix time in milliseconds, as this clock sees it (for decisions that whole seconds
    /// would round the wrong way).
    pub fn now_millis(&self) -> i64 {
        real_now_millis() + self.offset_seconds.load(Ordering::Relaxed) * 1000
    }

    /// Moves the clock forward; negative amounts are ignored (time does not go back).
    pub fn advance(&self, seconds: i64) {
        if seconds > 0 {
            self.offset_seconds.fetch_add(seconds, Ordering::Relaxed);
        }
    }

    /// How far this clock is ahead of the real one.
    pub fn offset(&self) -> i64 {
        self.offset_seconds.load(Ordering::Relaxed)
    }
}

/// Real unix time in seconds, for things that must not follow a moved clock (leases).
pub fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Real unix time in milliseconds.
pub fn real_now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC, e.g. `2026-11-25T22:05:07Z`.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// For people: `25 Nov 2026, 22:05 UTC`.
pub fn human_datetime(unix_seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix_seconds) {
        Ok(t) => format!(
            "{} {} {}, {:02}:{:02} UTC",
            t.day(),
            MONTHS[t.month() as usize - 1],
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => String::new(),
    }
}

/// Parses a timestamp as Airwallex writes them: RFC 3339, or with an offset without a
/// colon (`2025-07-24T07:16:00+0000`). Unix seconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(parsed) = time::OffsetDateTime::parse(text, rfc3339) {
        return Some(parsed.unix_timestamp());
    }
    let sign_at = text.len().checked_sub(5)?;
    if !text.is_char_boundary(sign_at) {
        return None;
    }
    let (head, offset) = text.split_at(sign_at);
    let colonless = offset.starts_with(['+', '-']) && offset[1..].bytes().all(|b| b.is_ascii_digit());
    if !colonless {
        return None;
    }
    let fixed = format!("{head}{}:{}", &offset[..3], &offset[3..]);
    time::OffsetDateTime::parse(&fixed, rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// For people: `2 Mar 2024`, from an RFC 3339 timestamp (as Airwallex sends them).
/// Text that is not a timestamp is returned as it came.
pub fn human_date(rfc3339_text: &str) -> String {
    match parse_timestamp(rfc3339_text).and_then(|unix| time::OffsetDateTime::from_unix_timestamp(unix).ok()) {
        Some(t) => format!("{} {} {}", t.day(), MONTHS[t.month() as usize - 1], t.year()),
        None => rfc3339_text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward_and_never_back() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(3600);
        assert!(clock.now() >= before + 3600);
        clock.advance(-10_000);
        assert!(clock.now() >= before + 3600);
        assert_eq!(clock.offset(), 3600);
    }

    #[test]
    fn clones_share_their_offset() {
        let clock = Clock::system();
        let other = clock.clone();
        other.advance(60);
        assert_eq!(clock.offset(), 60);
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human_datetime(1_764_108_307), "25 Nov 2025, 22:05 UTC");
        assert_eq!(human_date("2024-03-02T10:11:12Z"), "2 Mar 2024");
        assert_eq!(human_date("2024-03-02T10:11:12+0000"), "2 Mar 2024");
        assert_eq!(human_date("soon"), "soon");
    }

    #[test]
    fn airwallex_timestamps_parse_in_both_forms() {
        assert_eq!(parse_timestamp("2025-07-24T07:16:00+0000"), Some(1_753_341_360));
        assert_eq!(parse_timestamp("2025-07-24T07:16:00Z"), Some(1_753_341_360));
        assert_eq!(parse_timestamp("2025-07-24T09:16:00+0200"), Some(1_753_341_360));
        assert_eq!(parse_timestamp("2025-07-24T07:16:00.500+00:00"), Some(1_753_341_360));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_108_307), "2025-11-25T22:05:07Z");
    }
}
