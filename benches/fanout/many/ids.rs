//! The final value of each symbol, and what the ids tickerd answered its publishes with say
//! about the events the clients got: how the many-symbol run tells a stale client, and
//! (with `--redis`) instances that disagree, from a correct run.

use crate::feeder::Batch;
use crate::watch::{key_cents, key_symbol, update_key, FastMap, Summary};
use crate::workload::SNAPSHOT_CENTS;

/// Each symbol's final record, `width` values a symbol (a price: 1; a quote: one per field):
/// per field, the value of the last update sent that set it, or, given the ids each batch's
/// last update took, of the one with the highest id. `SNAPSHOT_CENTS` (`quote::INITIAL`,
/// the same) for fields never sent.
pub fn finals(
    sent: &[Batch],
    ids: Option<&[Option<u64>]>,
    symbols: usize,
    width: usize,
) -> Vec<u64> {
    let mut finals = vec![(0u64, SNAPSHOT_CENTS); symbols * width];
    for (b, batch) in sent.iter().enumerate() {
        let last_id = ids.and_then(|ids| ids.get(b).copied().flatten());
        for (j, &s) in batch.symbols.iter().enumerate() {
            // Without ids, sending order; with them, the id this update took.
            let order = match (ids, last_id) {
                (None, _) => (b * 1_000_000 + j) as u64 + 1,
                (Some(_), Some(last)) => last + 1 + j as u64 - batch.symbols.len() as u64,
                // Not answered: unknown; sending order as a guess below any real id.
                (Some(_), None) => 0,
            };
            let mask = batch.mask(j);
            for f in (0..width).filter(|f| mask & (1 << f) != 0) {
                let slot = &mut finals[s as usize * width + f];
                if order >= slot.0 {
                    *slot = (order, batch.cents);
                }
            }
        }
    }
    finals.into_iter().map(|(_, c)| c).collect()
}

/// What the ids tickerd answered say about the events the clients got.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdCheck {
    /// Updates received with an id other than the one tickerd gave their publish.
    pub mismatched: u64,
    /// Batches whose ids, in id order, do not follow the previous batch's (other updates
    /// took ids between, or two batches overlap).
    pub gaps: u64,
    /// Whether publishes were applied out of sending order (a symbol's value may then go
    /// back, rightly).
    pub reordered: bool,
}

/// Checks each received update's id against what its publish was answered: a publish of k
/// prices takes k consecutive ids, the last one answered. Taken in id order, each batch's
/// ids must follow the previous batch's (nothing else took ids between), whatever order
/// they were applied in (publishes on separate connections, or to several instances).
pub fn check_ids(sent: &[Batch], ids: &[Option<u64>], summary: &Summary) -> IdCheck {
    let mut expected = FastMap::default();
    let mut check = IdCheck::default();
    let mut previous: Option<u64> = None;
    let mut ranges = Vec::new();
    for (b, batch) in sent.iter().enumerate() {
        let Some(last) = ids.get(b).copied().flatten() else {
            continue;
        };
        let k = batch.symbols.len() as u64;
        for (j, &s) in batch.symbols.iter().enumerate() {
            expected.insert(update_key(s, batch.cents), last + 1 + j as u64 - k);
        }
        check.reordered |= previous.is_some_and(|p| last < p);
        previous = Some(last);
        ranges.push((last + 1 - k, last));
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        check.gaps += u64::from(w[1].0 != w[0].1 + 1);
    }
    for (key, a) in &summary.updates {
        // 0: the update came only in events without an `id:` line (quotes), or none had a
        // numeric id: nothing to check.
        if a.id != 0 && expected.get(key) != Some(&a.id) {
            check.mismatched += 1;
            if check.mismatched <= 3 {
                eprintln!(
                    "  tickerd: update S{} at {} arrived with id {}, its publish says {:?}",
                    key_symbol(*key),
                    key_cents(*key),
                    a.id,
                    expected.get(key)
                );
            }
        }
    }
    check
}

/// The checks of the id checks, run by the smoke run (a `harness = false` bench target gets
/// no `#[test]`s): what `--redis` relies on to catch instances that disagree.
pub fn self_check() {
    use crate::watch::Arrivals;
    let batch = |symbols: &[u32], cents| Batch {
        symbols: symbols.to_vec(),
        cents,
        fields: Vec::new(),
    };
    // Two publishes of two updates each, ids 11-12 and 13-14; the second applied first.
    let sent = [batch(&[1, 2], 100), batch(&[3, 4], 200)];
    let got = |ids: [u64; 4]| {
        let mut s = Summary::default();
        for ((symbol, cents), id) in [(1, 100), (2, 100), (3, 200), (4, 200)]
            .into_iter()
            .zip(ids)
        {
            let a = Arrivals {
                first: 1,
                last: 1,
                id,
                clients: 1,
            };
            s.updates.insert(update_key(symbol, cents), a);
        }
        s
    };
    let c = check_ids(&sent, &[Some(14), Some(12)], &got([13, 14, 11, 12]));
    assert_eq!((c.mismatched, c.gaps, c.reordered), (0, 0, true), "{c:?}");
    let c = check_ids(&sent, &[Some(12), Some(14)], &got([11, 12, 13, 14]));
    assert_eq!((c.mismatched, c.gaps, c.reordered), (0, 0, false), "{c:?}");
    // Something else took id 13: a gap; an update delivered under another id: a mismatch.
    let c = check_ids(&sent, &[Some(12), Some(15)], &got([11, 12, 14, 15]));
    assert_eq!((c.mismatched, c.gaps), (0, 1), "{c:?}");
    let c = check_ids(&sent, &[Some(12), Some(14)], &got([11, 12, 13, 99]));
    assert_eq!(c.mismatched, 1, "{c:?}");
    // The same update with two ids in two workers' clients (two instances disagreeing).
    let mut a = got([11, 12, 13, 14]);
    a.merge(&got([11, 12, 13, 15]));
    assert_eq!(a.counts.id_conflicts, 1);
    // An update seen only without an id (0) is not checked, and agrees with any.
    let c = check_ids(&sent, &[Some(12), Some(14)], &got([11, 0, 13, 14]));
    assert_eq!(c.mismatched, 0, "{c:?}");
    let mut a = got([11, 12, 13, 14]);
    a.merge(&got([0, 12, 0, 14]));
    assert_eq!(a.counts.id_conflicts, 0);
    // Quotes: per field, the last update (by id) that set it.
    let quotes = [
        Batch {
            symbols: vec![0, 1],
            cents: 100,
            fields: vec![0b011, 0b100],
        },
        Batch {
            symbols: vec![0],
            cents: 200,
            fields: vec![0b110],
        },
    ];
    assert_eq!(
        finals(&quotes, None, 2, 3),
        [100, 200, 200, SNAPSHOT_CENTS, SNAPSHOT_CENTS, 100]
    );
    // Applied in the other order (ids say so): the first batch's values win where both set.
    assert_eq!(
        finals(&quotes, Some(&[Some(12), Some(10)]), 2, 3),
        [100, 100, 200, SNAPSHOT_CENTS, SNAPSHOT_CENTS, 100]
    );
}
