//! Records shared through Redis by two instances, each with a real redis-server: a publish
//! on either reaches streams on both with the same ids and the same fields; each field's id
//! is the feed's, the same in both instances and in Redis's hash; a browser moving between
//! the instances resumes exactly the fields it missed; an instance restarted while the
//! other publishes loads every record (fields, values, ids) from Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::journey::{Journey, Stop};
use super::model::{Expected, Model};
use super::resume::{assert_met_the_hard_cases, travel, CHOSEN, FIELDS, UNIVERSE};
use super::*;
use crate::support::clients::Via;
use crate::support::redis::RedisServer;

fn instance(redis: &RedisServer) -> Tickerd {
    let t = Tickerd::start(&[
        "--redis",
        &redis.addr(),
        "--tick-ms",
        "0",
        "--heartbeat-s",
        "1",
        "--fields",
        FIELDS,
        "--symbols",
        UNIVERSE,
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || t
            .metrics()
            .get("tickerd_redis_up")
            == Some(&1.0)),
        "not up with Redis: {}",
        t.log()
    );
    t
}

/// `tickerd:records` in Redis: symbol → field → (value, id).
fn records_in_redis(redis: &RedisServer) -> BTreeMap<String, BTreeMap<String, (String, u64)>> {
    let hash = redis.client().cmd(&["HGETALL", "tickerd:records"]).unwrap();
    hash.items()
        .chunks(2)
        .map(|p| {
            let fields = p[1]
                .text()
                .split(' ')
                .map(|f| {
                    let (name, rest) = f.split_once('=').unwrap();
                    let (value, id) = rest.rsplit_once('@').unwrap();
                    (name.to_string(), (value.to_string(), id.parse().unwrap()))
                })
                .collect();
            (p[0].text(), fields)
        })
        .collect()
}

/// The model's records as Redis must hold them.
fn as_in_redis(model: &Model) -> BTreeMap<String, BTreeMap<String, (String, u64)>> {
    model
        .records
        .iter()
        .map(|r| {
            let fields = r
                .values
                .iter()
                .enumerate()
                .filter_map(|(f, v)| {
                    let text = match v.as_ref()? {
                        Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    Some((model.fields[f].name.clone(), (text, r.changed[f])))
                })
                .collect();
            (r.name.clone(), fields)
        })
        .collect()
}

/// Every instance and Redis hold the model's records, each field with its id.
fn assert_everywhere(model: &Model, instances: &[&Tickerd], redis: &RedisServer) {
    for t in instances {
        assert!(
            wait_until(Duration::from_secs(10), || t.current_id() >= model.last_id),
            "at {}: {}",
            t.current_id(),
            t.log()
        );
        assert_eq!(symbols_text(t.http()), model.listing(), "/symbols");
    }
    assert_eq!(records_in_redis(redis), as_in_redis(model), "Redis's hash");
}

/// A stream, with the id the server resumes it from next.
struct Watched {
    s: SseReader<Sock>,
    view: Vec<usize>,
    at: u64,
    what: String,
}

impl Watched {
    fn open(via: &Via, model: &Model, fields: Option<&[&str]>) -> Watched {
        let mut path = format!("/ticker?symbols={}", CHOSEN.join(","));
        let view = match fields {
            Some(names) => {
                path.push_str(&format!("&fields={}", names.join(",")));
                names.iter().map(|n| model.field(n)).collect()
            }
            None => (0..model.fields.len()).collect(),
        };
        Watched {
            s: open(via, &path, None),
            view,
            at: 0,
            what: format!("{path} over {}", via.name()),
        }
    }

    /// Reads what the model says is due now; returns it.
    fn catch_up(&mut self, model: &Model) -> Vec<Expected> {
        let chosen: Vec<String> = CHOSEN.iter().map(|s| s.to_string()).collect();
        let due = model.due(&chosen, &self.view, self.at);
        for (i, want) in due.iter().enumerate() {
            let e = next(&mut self.s, &self.what);
            want.check(&e, &format!("{}: event {i} of {due:?}", self.what));
        }
        if let Some(last) = due.last() {
            self.at = last.id.expect("the last event of a write has an id");
        }
        due
    }
}

#[test]
fn a_publish_on_either_instance_reaches_both_with_the_same_ids_and_fields() {
    let redis = RedisServer::start();
    let a = instance(&redis);
    let b = instance(&redis);
    let mut j = Journey::new(Model::load(a.http()), &CHOSEN, None, "", 7);
    assert_everywhere(&j.model, &[&a, &b], &redis);
    let stops = [
        Stop {
            stream: Via::Http(a.http()),
            publish: Via::Http(a.http()),
            t: &a,
        },
        Stop {
            stream: Via::Scgi(b.scgi()),
            publish: Via::Scgi(b.scgi()),
            t: &b,
        },
    ];
    // Every field on each instance, and some fields on each.
    let mut streams = [
        Watched::open(&stops[0].stream, &j.model, None),
        Watched::open(&stops[1].stream, &j.model, None),
        Watched::open(&Via::Http(b.http()), &j.model, Some(&["ask"])),
        Watched::open(&Via::Scgi(a.scgi()), &j.model, Some(&["size", "bid"])),
    ];
    for round in 0..24 {
        let mut carried = Vec::new();
        for s in &mut streams {
            carried.push(s.catch_up(&j.model));
        }
        assert_eq!(carried[0], carried[1], "round {round}: the same on both");
        j.publish(&stops[round % 2]);
    }
    for s in &mut streams {
        s.catch_up(&j.model);
    }
    // An update that changes nothing, on either: no id, no event.
    let r = &j.model.records[0];
    let line = format!(
        "{} bid={}",
        r.name,
        r.values[0].as_ref().unwrap().as_str().unwrap()
    );
    for stop in &stops {
        let p = publish_ok(&stop.publish, &line, Lines::Text);
        let last_id = j.model.last_id;
        assert_eq!(
            p,
            Published {
                last_id,
                applied: 0,
                unchanged: 1
            }
        );
    }
    for s in &mut streams {
        assert_quiet(&mut s.s, Duration::from_millis(300), &s.what);
    }
    assert_everywhere(&j.model, &[&a, &b], &redis);
}

#[test]
fn a_browser_moving_between_instances_and_one_restarted_resume_exactly() {
    let redis = RedisServer::start();
    let a = instance(&redis);
    let mut b = instance(&redis);
    let model = Model::load(a.http());
    assert_everywhere(&model, &[&a, &b], &redis);
    let mut j = Journey::new(model, &CHOSEN, Some(&["bid", "ask"]), "", 11);
    {
        let stop_a = Stop {
            stream: Via::Http(a.http()),
            publish: Via::Scgi(a.scgi()),
            t: &a,
        };
        let stop_b = Stop {
            stream: Via::Scgi(b.scgi()),
            publish: Via::Http(b.http()),
            t: &b,
        };
        // Each connection to the other instance than the last, with the id the last gave.
        travel(&mut j, &[&stop_a, &stop_b]);
        j.finish(&stop_b, a.http());
        assert_everywhere(&j.model, &[&a, &b], &redis);
    }
    assert_met_the_hard_cases(&j, "between instances");

    // B stops; A goes on publishing; a new B loads every record from Redis.
    drop(b);
    let stop_a = Stop {
        stream: Via::Http(a.http()),
        publish: Via::Http(a.http()),
        t: &a,
    };
    for _ in 0..6 {
        j.publish(&stop_a);
    }
    b = instance(&redis);
    assert!(
        wait_until(Duration::from_secs(5), || b.log().contains("feed loaded (")),
        "{}",
        b.log()
    );
    // Fields its own universe has no value for (ask, size) came from Redis with their ids.
    assert_everywhere(&j.model, &[&a, &b], &redis);
    let stop_b = Stop {
        stream: Via::Http(b.http()),
        publish: Via::Scgi(b.scgi()),
        t: &b,
    };
    // The browser comes back on the new B with the last id it had from the old one, and
    // goes on between the two.
    let before = j.stats.clone();
    travel(&mut j, &[&stop_b, &stop_a]);
    assert!(
        j.stats.cut_after_no_id > before.cut_after_no_id,
        "{:?}",
        j.stats
    );
    j.finish(&stop_b, a.http());
    assert_everywhere(&j.model, &[&a, &b], &redis);
}
