//! The universe file on any text: never a panic; what it accepts, written back as a file,
//! reads as the same universe (precisions and values exactly).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::decimal::Decimal;
use tickerd::listing::{parse_file, Defaults};
use tickerd::schema::Schema;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let schema = Schema::parse("bid:price,ask:price,size:qty,n:int,time:time").unwrap();
    let defaults = Defaults { decimals: 2, price: Decimal::new(100, 0) };
    let Ok(listed) = parse_file(text, &schema, defaults) else { return };
    let mut again = String::new();
    for l in &listed {
        assert!(l.values.iter().any(|&(f, _)| f == 0), "every symbol has its headline");
        again.push_str(&format!("{} decimals={}", l.symbol, l.decimals));
        for (f, v) in &l.values {
            again.push_str(&format!(" {}={v}", schema.field(*f).name));
        }
        again.push('\n');
    }
    let reread = parse_file(&again, &schema, defaults).expect("what it wrote reads back");
    let sorted = |mut l: Vec<tickerd::listing::Listed>| {
        l.iter_mut().for_each(|l| l.values.sort_by_key(|&(f, _)| f));
        l
    };
    assert_eq!(sorted(reread), sorted(listed));
});
