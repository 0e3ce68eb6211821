//! What every store does alike once it has read counts: the minute arithmetic of the
//! rollup and the grouping of `/stats`.

use std::collections::{BTreeMap, HashMap};

use eye_core::Timestamp;

use crate::{GroupBy, StatsQuery, StatsRow};

pub(crate) const MINUTE_MICROS: i64 = 60_000_000;

/// One count before grouping: (minute or event time, category, name, app id, count).
pub(crate) type Tally = (i64, String, String, i64, i64);

/// The range of `query` split into the whole minutes the rollup answers and the
/// partial minutes at its edges that the events themselves answer:
/// `(from, first_whole, end_whole, to)`.
pub(crate) fn split_range(query: &StatsQuery) -> (i64, i64, i64, i64) {
    let from = query.from.map(Timestamp::as_micros).unwrap_or(i64::MIN);
    let to = query.to.map(Timestamp::as_micros).unwrap_or(i64::MAX);
    (from, ceil_minute(from), floor_minute(to), to)
}

/// Groups tallies by the query's keys and bucket.
pub(crate) fn group(
    query: &StatsQuery,
    tallies: &[Tally],
    app_names: &HashMap<i64, String>,
) -> Vec<StatsRow> {
    let bucket = query.bucket.map(|b| b.micros());
    let by = |key: GroupBy| query.group_by.contains(&key);
    let mut groups: BTreeMap<StatsRow, i64> = BTreeMap::new();
    for (at, category, name, app_id, count) in tallies {
        let key = StatsRow {
            bucket: bucket.map(|b| Timestamp::from_micros(at.div_euclid(b) * b)),
            category: by(GroupBy::Category).then(|| category.clone()),
            name: by(GroupBy::Name).then(|| name.clone()),
            app: by(GroupBy::App).then(|| {
                app_names
                    .get(app_id)
                    .cloned()
                    .unwrap_or_else(|| app_id.to_string())
            }),
            count: 0,
        };
        *groups.entry(key).or_default() += count;
    }
    groups
        .into_iter()
        .map(|(mut row, count)| {
            row.count = count;
            row
        })
        .collect()
}

pub(crate) fn floor_minute(micros: i64) -> i64 {
    if micros == i64::MAX || micros == i64::MIN {
        return micros;
    }
    micros.div_euclid(MINUTE_MICROS) * MINUTE_MICROS
}

pub(crate) fn ceil_minute(micros: i64) -> i64 {
    let floor = floor_minute(micros);
    if floor == micros {
        micros
    } else {
        floor.saturating_add(MINUTE_MICROS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_toward_the_right_side_including_before_1970() {
        assert_eq!(floor_minute(61_000_000), 60_000_000);
        assert_eq!(ceil_minute(61_000_000), 120_000_000);
        assert_eq!(ceil_minute(60_000_000), 60_000_000);
        assert_eq!(floor_minute(-1), -60_000_000);
        assert_eq!(ceil_minute(-1), 0);
        assert_eq!(floor_minute(i64::MAX), i64::MAX);
        assert_eq!(ceil_minute(i64::MIN), i64::MIN);
    }
}
