//! How long data is kept: `forever`, or a whole number of seconds, minutes, hours, days
//! or weeks (`90d`, `12h`, `30s`, `2w`). Age is counted from the time an event was
//! received, so an import of old events is kept for the whole period.

use std::fmt;
use std::str::FromStr;

/// The longest retention that is not `forever`: a hundred years.
pub const MAX_SECONDS: u64 = 100 * 365 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Never deleted by age.
    #[default]
    Forever,
    /// Deleted once older than this many seconds.
    Seconds(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "a retention is `forever` or a whole number with a unit: s, m, h, d or w (`90d`); not {0:?}"
    )]
    Malformed(String),
    #[error("a retention of {0:?} is not at least one second")]
    TooShort(String),
    #[error("a retention of {0:?} is longer than 100 years; use `forever`")]
    TooLong(String),
}

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

impl Retention {
    /// The age past which data goes, in microseconds; `None` for `forever`.
    pub fn micros(self) -> Option<i64> {
        match self {
            Retention::Forever => None,
            Retention::Seconds(seconds) => Some(seconds as i64 * 1_000_000),
        }
    }

    /// The oldest reception time kept at `now` (microseconds): data received before it
    /// is expired. `None` for `forever`.
    pub fn cutoff(self, now: i64) -> Option<i64> {
        self.micros().map(|age| now.saturating_sub(age))
    }
}

impl FromStr for Retention {
    type Err = RetentionError;

    fn from_str(text: &str) -> Result<Self, RetentionError> {
        let trimmed = text.trim();
        if trimmed == "forever" {
            return Ok(Retention::Forever);
        }
        let malformed = || RetentionError::Malformed(text.to_owned());
        let unit = trimmed.chars().last().ok_or_else(malformed)?;
        let (_, per_unit) = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(malformed)?;
        let number = &trimmed[..trimmed.len() - 1];
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let count: u64 = number
            .parse()
            .map_err(|_| RetentionError::TooLong(text.to_owned()))?;
        let seconds = count
            .checked_mul(*per_unit)
            .ok_or_else(|| RetentionError::TooLong(text.to_owned()))?;
        if seconds == 0 {
            return Err(RetentionError::TooShort(text.to_owned()));
        }
        if seconds > MAX_SECONDS {
            return Err(RetentionError::TooLong(text.to_owned()));
        }
        Ok(Retention::Seconds(seconds))
    }
}

impl fmt::Display for Retention {
    /// The largest unit that divides it: `90d`, `36h`, `45s`; or `forever`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Retention::Forever => f.write_str("forever"),
            Retention::Seconds(seconds) => {
                let (unit, per_unit) = UNITS
                    .iter()
                    .find(|(_, per_unit)| seconds % per_unit == 0)
                    .expect("seconds divide every count");
                write!(f, "{}{unit}", seconds / per_unit)
            }
        }
    }
}

impl serde::Serialize for Retention {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Retention {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<Retention, &str>) {
        let parsed = text.parse::<Retention>();
        match expect {
            Ok(retention) => assert_eq!(parsed, Ok(retention), "{text:?}"),
            Err(word) => {
                let error = parsed.expect_err(text).to_string();
                assert!(error.contains(word), "{text:?}: {error}");
            }
        }
    }

    #[test]
    fn every_unit_parses_to_seconds() {
        check("90d", Ok(Retention::Seconds(90 * 86_400)));
        check("2w", Ok(Retention::Seconds(14 * 86_400)));
        check("12h", Ok(Retention::Seconds(12 * 3_600)));
        check("30m", Ok(Retention::Seconds(1_800)));
        check("1s", Ok(Retention::Seconds(1)));
        check(" 7d ", Ok(Retention::Seconds(7 * 86_400)));
        check("forever", Ok(Retention::Forever));
    }

    #[test]
    fn unknown_units_negative_zero_and_absurd_values_are_refused() {
        check("90", Err("with a unit"));
        check("90y", Err("with a unit"));
        check("d", Err("with a unit"));
        check("-5d", Err("with a unit"));
        check("1.5d", Err("with a unit"));
        check("", Err("with a unit"));
        check("0s", Err("at least one second"));
        check("36501d", Err("longer than 100 years"));
        check("99999999999999999999d", Err("longer than 100 years"));
    }

    #[test]
    fn it_prints_in_the_largest_unit_that_divides_it() {
        for (text, shown) in [
            ("14d", "2w"),
            ("36h", "36h"),
            ("120m", "2h"),
            ("90s", "90s"),
        ] {
            assert_eq!(text.parse::<Retention>().unwrap().to_string(), shown);
        }
        assert_eq!(Retention::Forever.to_string(), "forever");
    }

    #[test]
    fn the_cutoff_is_now_minus_the_age() {
        let week = "7d".parse::<Retention>().unwrap();
        assert_eq!(week.cutoff(10 * 86_400_000_000), Some(3 * 86_400_000_000));
        assert_eq!(Retention::Forever.cutoff(5), None);
    }
}
