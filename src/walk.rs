//! The random walk that makes the demo move: one update per symbol per tick, its headline
//! always moved. When the schema has them (as the demo's quote does), it also moves a quote
//! around the headline: `bid` and `ask` (prices) are re-centred on it one tick in two, `size`
//! (qty) is a new trade's size, `volume` (qty) adds it up, and `time` is the wall clock.

use rand::Rng;

use crate::decimal::Decimal;
use crate::schema::{FieldId, FieldType, Schema, Value, HEADLINE};
use crate::universe::{SymbolId, Universe, Update};

/// The fields the walk knows by name, found once.
pub struct Walk {
    bid_ask: Option<(FieldId, FieldId)>,
    size: Option<FieldId>,
    volume: Option<FieldId>,
    time: Option<FieldId>,
}

impl Walk {
    pub fn new(schema: &Schema) -> Walk {
        let typed = |name: &str, ty: FieldType| {
            schema
                .find(name)
                .filter(|&f| f != HEADLINE && schema.field(f).ty == ty)
        };
        Walk {
            bid_ask: typed("bid", FieldType::Price).zip(typed("ask", FieldType::Price)),
            size: typed("size", FieldType::Qty),
            volume: typed("volume", FieldType::Qty),
            time: typed("time", FieldType::Time),
        }
    }

    /// One tick: every symbol's next values, in universe order. `wall_ms`: the wall clock,
    /// for a `time` field.
    pub fn tick<R: Rng>(&self, universe: &Universe, rng: &mut R, wall_ms: i64) -> Vec<Update> {
        (0..universe.len() as SymbolId)
            .map(|s| self.step(universe, s, rng, wall_ms))
            .collect()
    }

    fn step<R: Rng>(&self, u: &Universe, s: SymbolId, rng: &mut R, wall_ms: i64) -> Update {
        let mut values = Vec::with_capacity(6);
        let headline = match u.value(s, HEADLINE) {
            Some(Value::Decimal(d)) => Value::Decimal(move_decimal(d, rng)),
            Some(Value::Int(n)) if u.schema().field(HEADLINE).ty == FieldType::Time => {
                Value::Int(wall_ms.max(n + 1))
            }
            Some(Value::Int(n)) => Value::Int(n.saturating_add(if rng.gen() { 1 } else { -1 })),
            None => Value::Int(0),
        };
        values.push((HEADLINE, headline));
        if let (Some((bid, ask)), Value::Decimal(mid)) = (self.bid_ask, headline) {
            if rng.gen_bool(0.5) {
                let half = match (u.value(s, bid), u.value(s, ask)) {
                    (Some(Value::Decimal(b)), Some(Value::Decimal(a))) => {
                        ((a.mantissa() - b.mantissa()) / 2).max(1)
                    }
                    _ => 1,
                };
                let at = |m: i64| Value::Decimal(Decimal::new(m, mid.scale()));
                values.push((bid, at(mid.mantissa().saturating_sub(half))));
                values.push((ask, at(mid.mantissa().saturating_add(half))));
            }
        }
        if let Some(size) = self.size {
            let scale = match u.value(s, size) {
                Some(Value::Decimal(d)) => d.scale(),
                _ => 0,
            };
            let traded = Decimal::new(rng.gen_range(1..=1000), scale);
            values.push((size, Value::Decimal(traded)));
            if let Some(volume) = self.volume {
                if let Some(total) = add(u.value(s, volume), traded) {
                    values.push((volume, Value::Decimal(total)));
                }
            }
        }
        if let Some(time) = self.time {
            values.push((time, Value::Int(wall_ms)));
        }
        Update { symbol: s, values }
    }
}

/// Up to ±0.5 % a step, at least one unit of the last decimal; a positive price stays
/// positive (a negative one, as futures can be, walks freely).
fn move_decimal<R: Rng>(d: Decimal, rng: &mut R) -> Decimal {
    let m = d.mantissa();
    let mut step = (m as f64 * rng.gen_range(-0.005..=0.005)).round() as i64;
    if step == 0 {
        step = if rng.gen() { 1 } else { -1 };
    }
    let mut next = m.saturating_add(step);
    if m > 0 && next < 1 {
        next = m + 1;
    }
    Decimal::new(next, d.scale())
}

/// `volume + size` at the larger of their scales; `None` when it would not fit (the volume
/// then stays where it is).
fn add(volume: Option<Value>, size: Decimal) -> Option<Decimal> {
    let volume = match volume {
        Some(Value::Decimal(v)) => v,
        _ => Decimal::new(0, 0),
    };
    let scale = volume.scale().max(size.scale());
    let (a, b) = (volume.at_scale(scale).ok()?, size.at_scale(scale).ok()?);
    Some(Decimal::new(a.mantissa().checked_add(b.mantissa())?, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing;
    use rand::SeedableRng;

    #[test]
    fn every_symbol_moves_its_headline_once_a_tick() {
        let demo = listing::demo();
        let mut u = Universe::new(Schema::quote(), &demo, 1);
        let walk = Walk::new(u.schema());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for tick in 0..200 {
            let before = u.last_id();
            let updates = walk.tick(&u, &mut rng, 1_765_000_000_000 + tick);
            assert_eq!(updates.len(), demo.len());
            for update in &updates {
                let headline = u.value(update.symbol, HEADLINE);
                assert!(u.set(update).is_some());
                assert_ne!(
                    u.value(update.symbol, HEADLINE),
                    headline,
                    "the headline moved"
                );
            }
            assert_eq!(u.last_id(), before + demo.len() as u64);
        }
        for s in 0..u.len() as SymbolId {
            let (Some(Value::Decimal(bid)), Some(Value::Decimal(ask))) =
                (u.value(s, 1), u.value(s, 2))
            else {
                panic!("a quote")
            };
            assert!(bid.mantissa() < ask.mantissa(), "{}", u.symbol(s));
            assert_eq!(bid.scale(), u.decimals(s), "at the symbol's precision");
            assert!(matches!(u.value(s, 5), Some(Value::Int(t)) if t >= 1_765_000_000_000));
        }
    }

    #[test]
    fn a_step_is_small_and_keeps_a_price_positive() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut d = Decimal::new(1, 2);
        for _ in 0..1000 {
            d = move_decimal(d, &mut rng);
            assert!(d.mantissa() >= 1);
        }
        let next = move_decimal(Decimal::new(10_000, 2), &mut rng);
        assert!((9_950..=10_050).contains(&next.mantissa()), "{next}");
        let negative = move_decimal(Decimal::new(-3_763, 2), &mut rng);
        assert!(
            (-3_782..=-3_744).contains(&negative.mantissa()),
            "{negative}"
        );
    }
}
