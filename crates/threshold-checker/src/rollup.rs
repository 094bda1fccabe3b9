//! Rollup partials: the hub's hot loop of rollup maintenance (hub/storage/rollups.py).
//!
//! Every reading a hub stores passes through here once, inside the batch's write
//! transaction; this is the per-reading work that was most of a wide batch's cost in Python.
//!
//! # What a partial is
//!
//! One sensor over one bucket: min, max, sum, count, and the first and last reading by
//! `(ts, id)` with their ts, id and value. Two partials of the same bucket merge exactly
//! ([`Partial::merge`]), which is what lets the hub fold a batch into stored buckets by an
//! upsert, and a late reading land in an old bucket like any other.
//!
//! # Invariants
//!
//! * A bucket start is `floor(ts / width) * width`, computed with the same two IEEE-754
//!   operations as both engines' SQL and Python's `math.floor`, so a reading falls in the
//!   same bucket whichever side computes it.
//! * Tier `k > 0` buckets the starts of tier `k - 1` (`floor(start / width_k) * width_k`):
//!   the tiers nest, and a coarser bucket is exactly the merge of the finer ones inside it.
//! * Each tier's output is sorted by `(sensor_id, bucket)`: writers that fold into the same
//!   buckets take their row locks in one order.
//! * Readings are taken as given: the caller passes each stored reading once.

use std::collections::HashMap;

/// A reading as the fold needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub id: i64,
    pub sensor_id: i64,
    pub ts: f64,
    pub value: f64,
}

/// The first or last reading of a bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Edge {
    pub ts: f64,
    pub id: i64,
    pub value: f64,
}

impl Edge {
    /// Whether `self` comes before `other` in `(ts, id)` order.
    #[inline]
    fn before(&self, other: &Edge) -> bool {
        self.ts < other.ts || (self.ts == other.ts && self.id < other.id)
    }
}

/// The aggregate of one sensor over one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Partial {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: i64,
    pub first: Edge,
    pub last: Edge,
}

impl Partial {
    #[inline]
    fn of(r: &Reading) -> Partial {
        let edge = Edge {
            ts: r.ts,
            id: r.id,
            value: r.value,
        };
        Partial {
            min: r.value,
            max: r.value,
            sum: r.value,
            count: 1,
            first: edge,
            last: edge,
        }
    }

    /// Fold `other` (of the same bucket) into `self`: min of mins, sum of sums, the earlier
    /// first and the later last.
    #[inline]
    pub fn merge(&mut self, other: &Partial) {
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
        self.sum += other.sum;
        self.count += other.count;
        if other.first.before(&self.first) {
            self.first = other.first;
        }
        if self.last.before(&other.last) {
            self.last = other.last;
        }
    }
}

/// One tier's partials, sorted by `(sensor_id, bucket start)`.
pub type Tier = Vec<(i64, f64, Partial)>;

/// The start of `ts`'s bucket of `width`.
#[inline]
pub fn bucket_of(ts: f64, width: f64) -> f64 {
    // `+ 0.0` turns a -0.0 into 0.0, so equal starts hash alike.
    (ts / width).floor() * width + 0.0
}

type Key = (i64, u64);

fn sorted(map: HashMap<Key, Partial>) -> Tier {
    let mut out: Tier = map
        .into_iter()
        .map(|((sid, bits), p)| (sid, f64::from_bits(bits), p))
        .collect();
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out
}

/// The partials of `readings` for each width of `widths` (finest first, each a multiple of
/// the one before it); see the module doc for the bucket rule.
pub fn partials(readings: &[Reading], widths: &[f64]) -> Vec<Tier> {
    let Some((&finest, coarser)) = widths.split_first() else {
        return Vec::new();
    };
    let mut map: HashMap<Key, Partial> = HashMap::new();
    // A batch mostly holds runs of one sensor's readings in time order: a run is summed in
    // `run` and meets the map once, when it leaves its bucket or sensor.
    let mut run: Option<(Key, Partial)> = None;
    for r in readings {
        let key = (r.sensor_id, bucket_of(r.ts, finest).to_bits());
        let one = Partial::of(r);
        match &mut run {
            Some((k, p)) if *k == key => p.merge(&one),
            _ => {
                if let Some((k, p)) = run.replace((key, one)) {
                    fold_into(&mut map, k, &p);
                }
            }
        }
    }
    if let Some((k, p)) = run {
        fold_into(&mut map, k, &p);
    }
    let mut tiers = Vec::with_capacity(widths.len());
    let mut finer = sorted(map);
    for &width in coarser {
        let mut map: HashMap<Key, Partial> = HashMap::new();
        for (sid, start, p) in &finer {
            fold_into(&mut map, (*sid, bucket_of(*start, width).to_bits()), p);
        }
        tiers.push(finer);
        finer = sorted(map);
    }
    tiers.push(finer);
    tiers
}

#[inline]
fn fold_into(map: &mut HashMap<Key, Partial>, key: Key, p: &Partial) {
    map.entry(key)
        .and_modify(|have| have.merge(p))
        .or_insert(*p);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: i64, sensor_id: i64, ts: f64, value: f64) -> Reading {
        Reading {
            id,
            sensor_id,
            ts,
            value,
        }
    }

    #[test]
    fn one_bucket_keeps_min_max_sum_count_and_edges() {
        let rows = [r(3, 1, 65.0, 2.0), r(1, 1, 61.0, 5.0), r(2, 1, 119.0, -1.0)];
        let tiers = partials(&rows, &[60.0]);
        assert_eq!(tiers.len(), 1);
        let (sid, start, p) = tiers[0][0];
        assert_eq!((sid, start), (1, 60.0));
        assert_eq!((p.min, p.max, p.sum, p.count), (-1.0, 5.0, 6.0, 3));
        assert_eq!((p.first.id, p.first.value), (1, 5.0));
        assert_eq!((p.last.id, p.last.value), (2, -1.0));
    }

    #[test]
    fn equal_ts_order_by_id() {
        let rows = [r(9, 1, 10.0, 1.0), r(4, 1, 10.0, 2.0), r(7, 1, 10.0, 3.0)];
        let p = partials(&rows, &[60.0])[0][0].2;
        assert_eq!(p.first.id, 4);
        assert_eq!(p.last.id, 9);
    }

    #[test]
    fn interleaved_sensors_and_coarser_tiers_merge_exactly() {
        // Three sensors at 1 Hz for two whole hours, interleaved as a gateway sends them.
        let mut rows = Vec::new();
        let mut id = 0;
        for second in 0..7200 {
            for sid in 1..=3 {
                id += 1;
                rows.push(r(
                    id,
                    sid,
                    1_699_999_200.0 + f64::from(second),
                    (id % 17) as f64,
                ));
            }
        }
        let tiers = partials(&rows, &[60.0, 3600.0]);
        assert_eq!(tiers[0].len(), 3 * 120);
        let hours = &tiers[1];
        assert_eq!(hours.len(), 3 * 2); // 1_699_999_200 starts an hour
        let total: i64 = hours.iter().map(|h| h.2.count).sum();
        assert_eq!(total, rows.len() as i64);
        // Sorted by (sensor, bucket), and each hour is its minutes merged.
        assert!(hours
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        for (sid, start, hour) in hours {
            let inside: Vec<_> = tiers[0]
                .iter()
                .filter(|m| m.0 == *sid && bucket_of(m.1, 3600.0) == *start)
                .collect();
            let mut merged = inside[0].2;
            for m in &inside[1..] {
                merged.merge(&m.2);
            }
            assert_eq!(merged.count, hour.count);
            assert_eq!((merged.min, merged.max), (hour.min, hour.max));
            assert_eq!(merged.first, hour.first);
            assert_eq!(merged.last, hour.last);
        }
    }

    #[test]
    fn bucket_rule_matches_floor_of_division() {
        for ts in [0.0, 59.999_999_999, 60.0, 1_732_000_000.123, 1e12 + 0.5] {
            assert_eq!(bucket_of(ts, 60.0), (ts / 60.0_f64).floor() * 60.0);
        }
        assert_eq!(bucket_of(-0.0, 60.0).to_bits(), 0.0_f64.to_bits());
    }

    #[test]
    fn no_widths_or_no_readings() {
        assert!(partials(&[r(1, 1, 1.0, 1.0)], &[]).is_empty());
        let empty = partials(&[], &[60.0, 3600.0]);
        assert_eq!(empty.len(), 2);
        assert!(empty.iter().all(Vec::is_empty));
    }
}
