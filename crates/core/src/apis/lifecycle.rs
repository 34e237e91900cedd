//! The lifecycle headers of an API answer: `Deprecation` (RFC 9745), `Sunset` (RFC 8594) and a
//! `Link` to the successor (`rel="successor-version"`).

use crate::config::prompts::{ApiStatus, ApiVersion};

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

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (dates before 1970 are clamped
/// to it: config dates are validated from 1970 on).
pub fn http_date(unix_secs: i64) -> String {
    let secs = u64::try_from(unix_secs).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
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
