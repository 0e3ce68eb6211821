//! Event timestamps: microseconds since the Unix epoch, UTC.
//!
//! The wire accepts three forms: `2023-01-01 09:15:27.243860` (no zone means UTC),
//! `2023-01-01 09:15:27.243860Z`, and RFC 3339 (`T` or space, `Z` or a numeric
//! offset). Fractions beyond microseconds are truncated, because microseconds are the
//! precision the store keeps. The parser is hand-written so that every refusal names
//! what is wrong and so that parsing stays allocation-free on the ingest path.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time with microsecond precision, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// In the API a timestamp is an RFC 3339 string in UTC with microseconds.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples(["2023-01-01T09:15:27.243860Z"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timestamp: {0}")]
pub struct TimestampError(pub &'static str);

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_micros() as i64)
    }

    pub fn saturating_add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// Parses one of the accepted wire forms (see the module documentation).
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        let b = input.as_bytes();
        if b.len() < 19 {
            return Err(TimestampError(
                "expected YYYY-MM-DD HH:MM:SS[.ffffff][Z|±HH:MM]",
            ));
        }
        let year = digits(b, 0, 4)?;
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        if !matches!(b[10], b'T' | b't' | b' ') {
            return Err(TimestampError(
                "date and time must be separated by 'T' or a space",
            ));
        }
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        expect(b, 16, b':')?;
        let second = digits(b, 17, 2)?;

        if !(1..=12).contains(&month) {
            return Err(TimestampError("month out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(TimestampError("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError("time of day out of range"));
        }

        let mut pos = 19;
        let mut micros: i64 = 0;
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                if pos - start < 6 {
                    micros = micros * 10 + i64::from(b[pos] - b'0');
                }
                pos += 1;
            }
            let count = pos - start;
            if count == 0 {
                return Err(TimestampError("a '.' must be followed by digits"));
            }
            if count > 9 {
                return Err(TimestampError("at most 9 fractional digits"));
            }
            for _ in count..6 {
                micros *= 10;
            }
        }

        let offset_seconds: i64 = match b.get(pos) {
            None => 0,
            Some(b'Z' | b'z') => {
                pos += 1;
                0
            }
            Some(sign @ (b'+' | b'-')) => {
                let sign = if *sign == b'-' { -1 } else { 1 };
                if b.len() < pos + 6 {
                    return Err(TimestampError("a zone offset must look like +HH:MM"));
                }
                let oh = digits(b, pos + 1, 2)?;
                expect(b, pos + 3, b':')?;
                let om = digits(b, pos + 4, 2)?;
                if oh > 23 || om > 59 {
                    return Err(TimestampError("zone offset out of range"));
                }
                pos += 6;
                sign * (oh * 3600 + om * 60)
            }
            Some(_) => return Err(TimestampError("unexpected characters after the time")),
        };
        if pos != b.len() {
            return Err(TimestampError("unexpected characters after the zone"));
        }

        let days = days_from_civil(year, month, day);
        let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_seconds;
        Ok(Timestamp(seconds * MICROS_PER_SECOND + micros))
    }
}

fn digits(b: &[u8], at: usize, len: usize) -> Result<i64, TimestampError> {
    let slice = b
        .get(at..at + len)
        .ok_or(TimestampError("timestamp is too short"))?;
    let mut value = 0i64;
    for &c in slice {
        if !c.is_ascii_digit() {
            return Err(TimestampError(
                "expected YYYY-MM-DD HH:MM:SS[.ffffff][Z|±HH:MM]",
            ));
        }
        value = value * 10 + i64::from(c - b'0');
    }
    Ok(value)
}

fn expect(b: &[u8], at: usize, c: u8) -> Result<(), TimestampError> {
    if b.get(at) == Some(&c) {
        Ok(())
    } else {
        Err(TimestampError(
            "expected YYYY-MM-DD HH:MM:SS[.ffffff][Z|±HH:MM]",
        ))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 in UTC with exactly six fractional digits: `2023-01-01T09:15:27.243860Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let sod = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Any of the accepted forms (`Timestamp::parse`).
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().as_micros()
    }

    #[test]
    fn accepts_the_three_documented_forms_as_the_same_instant() {
        let expected = 1_672_564_527_243_860;
        assert_eq!(micros("2023-01-01 09:15:27.243860"), expected);
        assert_eq!(micros("2023-01-01 09:15:27.243860Z"), expected);
        assert_eq!(micros("2023-01-01T09:15:27.243860Z"), expected);
        assert_eq!(micros("2023-01-01T10:15:27.243860+01:00"), expected);
        assert_eq!(micros("2023-01-01t09:15:27.243860z"), expected);
    }

    #[test]
    fn fractions_are_scaled_and_truncated_to_microseconds() {
        assert_eq!(micros("1970-01-01T00:00:00Z"), 0);
        assert_eq!(micros("1970-01-01T00:00:00.5Z"), 500_000);
        assert_eq!(micros("1970-01-01T00:00:00.123456789Z"), 123_456);
        assert_eq!(micros("1969-12-31T23:59:59.999999Z"), -1);
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        for bad in [
            "",
            "2023-01-01",
            "2023-13-01 00:00:00",
            "2023-02-29 00:00:00",
            "2023-01-01 24:00:00",
            "2023-01-01 00:60:00",
            "2023-01-01X00:00:00",
            "2023-01-01 00:00:00.",
            "2023-01-01 00:00:00.1234567890",
            "2023-01-01 00:00:00+01",
            "2023-01-01 00:00:00+0100",
            "2023-01-01 00:00:00Zjunk",
            "２023-01-01 00:00:00",
            "2023-01-01 00:00:00 ",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(micros("2024-02-29 00:00:00") % 1_000_000, 0);
    }

    #[test]
    fn display_round_trips_through_parse() {
        for &m in &[
            0i64,
            -1,
            1_672_564_527_243_860,
            951_782_400_000_001,
            253_402_300_799_999_999,
        ] {
            let ts = Timestamp::from_micros(m);
            assert_eq!(Timestamp::parse(&ts.to_string()).unwrap(), ts, "{ts}");
        }
        assert_eq!(
            Timestamp::from_micros(1_672_564_527_243_860).to_string(),
            "2023-01-01T09:15:27.243860Z"
        );
    }

    #[test]
    fn civil_conversion_agrees_on_every_day_of_four_centuries() {
        for days in -146_097..146_097 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d <= days_in_month(y, m));
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: the four-digit years.
    const FIRST: i64 = -62_135_596_800_000_000;
    const LAST: i64 = 253_402_300_799_999_999;

    proptest! {
        #[test]
        fn what_is_displayed_parses_back_to_the_same_instant(micros in FIRST..=LAST) {
            let t = Timestamp(micros);
            prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
        }

        #[test]
        fn an_offset_names_the_same_instant_in_utc(
            micros in FIRST + 86_400_000_000..=LAST - 86_400_000_000,
            east in any::<bool>(),
            hours in 0i64..=23,
            minutes in 0i64..=59,
        ) {
            // Write the instant as local time at the offset, then parse it back.
            let offset = (hours * 60 + minutes) * 60_000_000 * if east { 1 } else { -1 };
            let local = Timestamp(micros + offset).to_string();
            let sign = if east { '+' } else { '-' };
            let text = format!("{}{sign}{hours:02}:{minutes:02}", &local[..local.len() - 1]);
            prop_assert_eq!(Timestamp::parse(&text), Ok(Timestamp(micros)));
        }

        #[test]
        fn any_text_is_parsed_or_refused_without_a_panic(text in "\\PC{0,40}") {
            let _ = Timestamp::parse(&text);
        }

        #[test]
        fn near_misses_of_the_format_are_refused_without_a_panic(
            text in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,9})?(Z|[+-][0-9]{2}:?[0-9]{2})?"
        ) {
            if let Ok(t) = Timestamp::parse(&text) {
                // Whatever is accepted is a real instant that displays and parses again.
                prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
            }
        }
    }
}
