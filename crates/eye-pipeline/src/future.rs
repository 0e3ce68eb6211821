//! The future-timestamp rule: an event may not claim to have happened after it was
//! received (or sent), beyond the clock-skew allowance.

use eye_core::limits::MAX_CLOCK_SKEW_MS;
use eye_core::{IncomingEvent, Refusal};

/// Checks `event` received at `received_at` (microseconds) against the clock-skew
/// allowance. With `sent_at`, the client's own clock is the reference, which makes the
/// check immune to a client clock that is simply wrong, within a day: whatever
/// `sent_at` says, no event is stored more than `MAX_CLOCK_SKEW_MS` after its
/// reception (what PostgreSQL's queries rely on to skip partitions).
pub fn check_not_in_future(
    event: &IncomingEvent,
    received_at: i64,
    allowance_micros: i64,
) -> Result<(), Refusal> {
    let most = MAX_CLOCK_SKEW_MS as i64 * 1_000;
    if event.timestamp > received_at.saturating_add(most) {
        return Err(Refusal::new(
            "future_timestamp",
            format!(
                "`timestamp` is {:.3} s later than the time it was received: more than a day, whatever `sent_at` says",
                (event.timestamp - received_at) as f64 / 1e6,
            ),
            Some("timestamp"),
        ));
    }
    let reference = event.sent_at.unwrap_or(received_at);
    if event.timestamp > reference.saturating_add(allowance_micros) {
        let against = if event.sent_at.is_some() {
            "its `sent_at`"
        } else {
            "the time it was received"
        };
        return Err(Refusal::new(
            "future_timestamp",
            format!(
                "`timestamp` is {:.3} s later than {against} (allowance {:.3} s)",
                (event.timestamp - reference) as f64 / 1e6,
                allowance_micros as f64 / 1e6
            ),
            Some("timestamp"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ts: &str, sent_at: Option<&str>) -> IncomingEvent {
        let mut v = json!({"session_id": "s", "category": "c", "name": "n", "timestamp": ts});
        if let Some(s) = sent_at {
            v["sent_at"] = json!(s);
        }
        IncomingEvent::parse(&serde_json::value::to_raw_value(&v).unwrap()).unwrap()
    }

    const RECEIVED: i64 = 1_672_564_527_000_000; // 2023-01-01T09:15:27Z

    #[test]
    fn the_allowance_is_inclusive_and_measured_against_reception() {
        let allowance = 5_000_000;
        assert!(
            check_not_in_future(&event("2023-01-01T09:15:32Z", None), RECEIVED, allowance).is_ok()
        );
        let err = check_not_in_future(
            &event("2023-01-01T09:15:32.000001Z", None),
            RECEIVED,
            allowance,
        )
        .unwrap_err();
        assert_eq!(err.code, "future_timestamp");
    }

    #[test]
    fn sent_at_makes_the_check_immune_to_client_clock_skew() {
        // The client's clock is an hour ahead; relative to its own clock the event is past.
        let e = event("2023-01-01T10:15:20Z", Some("2023-01-01T10:15:27Z"));
        assert!(check_not_in_future(&e, RECEIVED, 5_000_000).is_ok());
        let e = event("2023-01-01T10:15:40Z", Some("2023-01-01T10:15:27Z"));
        assert!(check_not_in_future(&e, RECEIVED, 5_000_000).is_err());
    }

    #[test]
    fn no_clock_is_believed_more_than_a_day_ahead_of_reception() {
        // Two days ahead, consistently with its own sent_at: refused all the same.
        let e = event("2023-01-03T09:15:20Z", Some("2023-01-03T09:15:27Z"));
        let refusal = check_not_in_future(&e, RECEIVED, 5_000_000).unwrap_err();
        assert_eq!(refusal.code, "future_timestamp");
        assert!(
            refusal.message.contains("more than a day"),
            "{}",
            refusal.message
        );
        let e = event("2023-01-02T09:15:00Z", Some("2023-01-02T09:15:27Z"));
        assert!(check_not_in_future(&e, RECEIVED, 5_000_000).is_ok());
    }
}
