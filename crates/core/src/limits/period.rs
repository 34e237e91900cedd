//! Budget periods on the UTC calendar: where the current one started, where it ends, and a
//! short id that names it in counter keys (dates from `switchboard_types::calendar`).

use super::rules::Period;

pub use switchboard_types::calendar::rfc3339;
use switchboard_types::calendar::{civil_from_days, days_from_civil, DAY_MS};

/// The current period of a budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub start_ms: i64,
    /// `None` for `total`.
    pub end_ms: Option<i64>,
    /// Names the period in counter keys: `2026-11-24`, `w2026-11-23`, `2026-11`, `total`.
    pub id: String,
}

/// The period of `period` that contains `now_ms`.
pub fn bounds(period: Period, now_ms: i64) -> Bounds {
    let today = now_ms.div_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(today);
    match period {
        Period::Day => Bounds {
            start_ms: today * DAY_MS,
            end_ms: Some((today + 1) * DAY_MS),
            id: format!("{year:04}-{month:02}-{day:02}"),
        },
        Period::Week => {
            // 1970-01-01 was a Thursday: Monday-based weekday is (days + 3) mod 7.
            let monday = today - (today + 3).rem_euclid(7);
            let (y, m, d) = civil_from_days(monday);
            Bounds {
                start_ms: monday * DAY_MS,
                end_ms: Some((monday + 7) * DAY_MS),
                id: format!("w{y:04}-{m:02}-{d:02}"),
            }
        }
        Period::Month => {
            let first = days_from_civil(year, month, 1);
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            Bounds {
                start_ms: first * DAY_MS,
                end_ms: Some(days_from_civil(ny, nm, 1) * DAY_MS),
                id: format!("{year:04}-{month:02}"),
            }
        }
        Period::Total => Bounds {
            start_ms: 0,
            end_ms: None,
            id: "total".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-24T08:14:15Z is a Tuesday.
    const NOW: i64 = 1_795_508_055_000;

    #[test]
    fn calendar_periods_in_utc() {
        assert_eq!(rfc3339(NOW), "2026-11-24T08:14:15Z");
        let day = bounds(Period::Day, NOW);
        assert_eq!(day.id, "2026-11-24");
        assert_eq!(rfc3339(day.start_ms), "2026-11-24T00:00:00Z");
        assert_eq!(rfc3339(day.end_ms.unwrap()), "2026-11-25T00:00:00Z");
        let week = bounds(Period::Week, NOW);
        assert_eq!(week.id, "w2026-11-23");
        assert_eq!(rfc3339(week.end_ms.unwrap()), "2026-11-30T00:00:00Z");
        let month = bounds(Period::Month, NOW);
        assert_eq!(month.id, "2026-11");
        assert_eq!(rfc3339(month.start_ms), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(month.end_ms.unwrap()), "2026-12-01T00:00:00Z");
        let total = bounds(Period::Total, NOW);
        assert_eq!((total.start_ms, total.end_ms), (0, None));
    }

    #[test]
    fn december_and_leap_years_roll_over() {
        let dec = days_from_civil(2026, 12, 31) * DAY_MS + 1;
        assert_eq!(
            rfc3339(bounds(Period::Month, dec).end_ms.unwrap()),
            "2027-01-01T00:00:00Z"
        );
        let feb = days_from_civil(2028, 2, 10) * DAY_MS;
        assert_eq!(
            rfc3339(bounds(Period::Month, feb).end_ms.unwrap()),
            "2028-03-01T00:00:00Z"
        );
        // A week that spans two months starts on its Monday.
        let sun = days_from_civil(2026, 11, 1) * DAY_MS;
        assert_eq!(bounds(Period::Week, sun).id, "w2026-10-26");
    }
}
