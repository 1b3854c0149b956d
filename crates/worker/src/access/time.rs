//! The time of day as access log lines write it: the common log format's
//! `[23/Nov/2026:02:52:09 +0000]` and ISO 8601 for JSON, formatted once a
//! second, from the days-since-epoch arithmetic (no time zone database:
//! the log is in UTC).

use std::time::{SystemTime, UNIX_EPOCH};

/// The time as the access log writes it, formatted once per second.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    second: Option<u64>,
    /// `23/Nov/2026:02:52:09 +0000`
    clf: String,
    /// `2026-11-23T02:52:09`
    iso: String,
}

/// One reading of a [`Clock`].
pub(super) struct At<'a> {
    pub clf: &'a str,
    pub iso: &'a str,
    pub millis: u32,
}

impl Clock {
    pub(super) fn at(&mut self, t: SystemTime) -> At<'_> {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(d.as_secs()) {
            self.second = Some(d.as_secs());
            self.clf = clf_time(t);
            self.iso = iso_second(t);
        }
        At {
            clf: &self.clf,
            iso: &self.iso,
            millis: d.subsec_millis(),
        }
    }
}

/// Year, month, day, hour, minute, second (UTC) of a time.
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `23/Nov/2026:02:52:09 +0000`
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil(t);
    format!(
        "{d:02}/{}/{y}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

/// `2026-11-23T02:52:09`
fn iso_second(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_civil() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_402_329);
        assert_eq!(clf_time(t), "23/Nov/2026:02:52:09 +0000");
        assert_eq!(iso_second(t), "2026-11-23T02:52:09");
        // The clock formats a second once, and tells the milliseconds.
        let mut clock = Clock::default();
        let at = clock.at(t + Duration::from_millis(7));
        assert_eq!(at.clf, clf_time(t));
        assert_eq!((at.iso, at.millis), (iso_second(t).as_str(), 7));
        let later = t + Duration::from_millis(1_020);
        let at = clock.at(later);
        assert_eq!((at.clf, at.millis), ("23/Nov/2026:02:52:10 +0000", 20));
    }
}
