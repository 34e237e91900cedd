//! The lifecycle headers of an API answer: `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and a
//! `Link` to the successor (`rel="successor-version"`).

use crate::config::prompts::{ApiStatus, ApiVersion};
use switchboard_types::calendar::{civil_from_days, DAY_MS};

/// The header values an answer of `version` carries (`None`: no such header).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleHeaders {
    /// `@<unix seconds>` of `deprecated_at`; `@0` when the version is deprecated without a
    /// date (RFC 9745 has no "deprecated, date unknown" form: `@0` reads as "already").
    pub deprecation: Option<String>,
    /// HTTP-date of `sunset`.
    pub sunset: Option<String>,
    /// `</apis/{successor}>; rel="successor-version"`.
    pub link: Option<String>,
}

pub fn headers(version: &ApiVersion) -> LifecycleHeaders {
    let deprecated = version.status == ApiStatus::Deprecated;
    LifecycleHeaders {
        deprecation: deprecated.then(|| format!("@{}", version.deprecated_at.unwrap_or(0))),
        sunset: version.sunset.map(http_date),
        link: version
            .successor
            .as_ref()
            .map(|next| format!("</apis/{next}>; rel=\"successor-version\"")),
    }
}

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day_secs = DAY_MS / 1000;
    let days = unix_secs.div_euclid(day_secs);
    let secs = unix_secs.rem_euclid(day_secs);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(month.saturating_sub(1))
        .unwrap_or(0)
        .min(11)];
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_798_675_200), "Thu, 31 Dec 2026 00:00:00 GMT");
    }
}
