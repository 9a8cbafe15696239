//! What each integration received recently: counts per status over the last hour and day and
//! the time of the latest event, for the operations view (`GET .../integrations`).
//!
//! There is no index on arrival time (every index costs the write path): events are appended in
//! arrival order, give or take one commit group, so the first event of the window is found by
//! bisection on `seq` and only the window's rows are scanned.

use chrono::{DateTime, Utc};

/// Events of one integration with one status in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The integration.
    pub integration_id: String,
    /// The normalized status (`delivered`, `bounced`, ...).
    pub status: String,
    /// Received since the start of the last hour.
    pub last_hour: u64,
    /// Received since the start of the last day.
    pub last_day: u64,
    /// The latest arrival among them.
    pub last_received_at: DateTime<Utc>,
    /// Repeats of these events received again (provider retries, replays) in the day.
    pub duplicates: u64,
}

/// The window asked for: everything received from `day` to `end`, with `hour` (later)
/// splitting out the most recent part.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// The start of the day window.
    pub day: DateTime<Utc>,
    /// The start of the hour window.
    pub hour: DateTime<Utc>,
    /// The end of both.
    pub end: DateTime<Utc>,
}

impl Window {
    /// The day and hour before `end`.
    pub fn ending(end: DateTime<Utc>) -> Window {
        Window {
            day: end - chrono::Duration::days(1),
            hour: end - chrono::Duration::hours(1),
            end,
        }
    }
}

/// Finds the smallest `seq` in `lo..=hi` whose first stored event at or after it arrived at or
/// after the window's start (`hi` when none did). `first_at(s)` is the first event at or after
/// `s`: its `seq` and whether it is in the window.
pub(crate) fn bisect<E>(
    mut lo: i64,
    mut hi: i64,
    mut first_at: impl FnMut(i64) -> Result<Option<(i64, bool)>, E>,
) -> Result<i64, E> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match first_at(mid)? {
            Some((seq, false)) if seq < hi => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::bisect;

    #[test]
    fn bisection_finds_the_first_event_in_the_window() {
        // seqs with gaps; the window starts at the event with seq 40.
        let seqs = [1, 2, 5, 9, 17, 30, 40, 41, 60, 61, 90];
        let first_at = |s: i64| -> Result<Option<(i64, bool)>, ()> {
            Ok(seqs.iter().find(|&&q| q >= s).map(|&q| (q, q >= 40)))
        };
        assert_eq!(bisect(1, 91, first_at), Ok(31));
        // Nothing in the window: the end.
        let none = |s: i64| -> Result<Option<(i64, bool)>, ()> {
            Ok(seqs.iter().find(|&&q| q >= s).map(|&q| (q, false)))
        };
        assert_eq!(bisect(1, 91, none), Ok(91));
        // Everything in the window: the start.
        let all = |s: i64| -> Result<Option<(i64, bool)>, ()> {
            Ok(seqs.iter().find(|&&q| q >= s).map(|&q| (q, true)))
        };
        assert_eq!(bisect(1, 91, all), Ok(1));
    }
}
