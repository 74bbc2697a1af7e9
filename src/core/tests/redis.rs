//! The core with `--redis`, over fake sockets for the two links: they are connected and
//! registered through `Io`, the feed is loaded and read, a client's publish goes to Redis
//! and is answered with Redis's id, and a link that fails answers the publishes waiting.

use super::*;
use crate::io::Readiness;
use crate::redis::{COMMANDS_TOKEN, TAIL_TOKEN};

/// RESP of a load's reply: the counter, the stream position, the hash, Redis's clock.
fn load_reply(counter: u64, prices: &[(&str, &str)]) -> String {
    let mut hash = format!("*{}\r\n", prices.len() * 2);
    for (symbol, value) in prices {
        hash += &format!(
            "${}\r\n{symbol}\r\n${}\r\n{value}\r\n",
            symbol.len(),
            value.len()
        );
    }
    let counter = counter.to_string();
    format!(
        "*4\r\n${}\r\n{counter}\r\n$3\r\n9-0\r\n{hash}:1765100000000\r\n",
        counter.len()
    )
}

fn link(h: &Harness, token: usize) -> FakeSocket {
    let r = h.registry.borrow();
    r.connected
        .iter()
        .find(|s| r.token_of.get(&std::os::fd::AsRawFd::as_raw_fd(*s)) == Some(&token))
        .cloned()
        .expect("a link registered under the token")
}

fn input(h: &mut Harness, token: usize, bytes: &str) {
    link(h, token)
        .pipe()
        .input
        .extend_from_slice(bytes.as_bytes());
    h.core.on_link(
        token,
        Readiness {
            input: true,
            gone: false,
        },
        h.now,
    );
}

#[test]
fn the_links_load_read_and_answer_a_publish_with_redis_s_id() {
    let config = Config {
        redis: Some(ListenAddr::Unix("/nowhere".into())),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    h.registry.borrow_mut().accept_connects = true;
    h.turn();
    assert_eq!(h.registry.borrow().connected.len(), 2, "both links connect");
    assert!(
        h.registry.borrow().writable[&COMMANDS_TOKEN],
        "writable: the connect"
    );
    // Both connects complete: the feed is loaded on the commands link.
    h.core.on_link(COMMANDS_TOKEN, Readiness::default(), h.now);
    assert!(
        link(&h, COMMANDS_TOKEN).text().is_empty(),
        "not before both are up"
    );
    h.core.on_link(TAIL_TOKEN, Readiness::default(), h.now);
    let load = link(&h, COMMANDS_TOKEN).text();
    assert!(load.starts_with("*7\r\n$4\r\nEVAL\r\n"), "{load}");
    assert!(
        load.ends_with("$15\r\ntickerd:updates\r\n$1\r\n0\r\n"),
        "floor 0: {load}"
    );
    // The load's reply: prices taken, the stream read on from 9-0.
    input(
        &mut h,
        COMMANDS_TOKEN,
        &load_reply(500, &[("A", "price=1.23@400"), ("B", "price=0.07@500")]),
    );
    assert!(
        link(&h, TAIL_TOKEN).text().contains("XREAD"),
        "{}",
        link(&h, TAIL_TOKEN).text()
    );
    assert!(link(&h, TAIL_TOKEN).text().ends_with("$3\r\n9-0\r\n"));
    let c = h.stream(Some("A"), None);
    assert_eq!(
        c.events(),
        [(400, r#"{"symbol":"A","price":"1.23"}"#.into())]
    );
    // A publish goes to Redis; its client waits for the answer.
    let publisher = h.connect(&format!(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 4\r\n\r\nA=42"
    ));
    assert_eq!(publisher.text(), "", "waiting for Redis");
    assert!(link(&h, COMMANDS_TOKEN)
        .text()
        .ends_with("$1\r\nA\r\n$1\r\n1\r\n$5\r\nprice\r\n$5\r\n42.00\r\n"));
    input(&mut h, COMMANDS_TOKEN, "*3\r\n$3\r\n501\r\n:1\r\n:0\r\n");
    assert!(
        publisher
            .text()
            .ends_with("\r\n\r\n501\napplied 1\nunchanged 0\n"),
        "{}",
        publisher.text()
    );
    // Answered later, in the request's terms all the same: the connection stays.
    assert!(publisher.text().contains("Connection: keep-alive\r\n"));
    // The update reaches the stream from the stream of updates, with Redis's id.
    input(
        &mut h,
        TAIL_TOKEN,
        "*1\r\n*2\r\n$9\r\nt:updates\r\n*1\r\n*2\r\n$3\r\n9-1\r\n*2\r\n$1\r\nu\r\n$17\r\n501 A price=42.00\r\n",
    );
    h.turn();
    assert_eq!(
        c.events().last(),
        Some(&(501, r#"{"symbol":"A","price":"42.00"}"#.into()))
    );
    assert!(
        link(&h, TAIL_TOKEN).text().ends_with("$3\r\n9-1\r\n"),
        "read on after 9-1"
    );
    // The commands link fails with a publish waiting: it is answered 503, streams go on.
    let waiting = h.connect(&format!(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 3\r\n\r\nB=1"
    ));
    link(&h, COMMANDS_TOKEN).pipe().eof = true;
    h.core.on_link(
        COMMANDS_TOKEN,
        Readiness {
            input: true,
            gone: false,
        },
        h.now,
    );
    let text = waiting.text();
    assert!(
        text.starts_with("HTTP/1.1 503 ") && text.contains("Retry-After: 2\r\n"),
        "{text}"
    );
    assert!(!c.pipe().shut, "the stream stays");
    // Away now: a publish is refused at once.
    let refused = h.publish("B=2");
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
}

#[test]
fn publishes_pipelined_behind_one_waiting_for_redis_are_all_answered_before_an_upgrade() {
    let config = Config {
        redis: Some(ListenAddr::Unix("/nowhere".into())),
        ..config(&["A", "B"])
    };
    let mut h = Harness::new(&config);
    h.registry.borrow_mut().accept_connects = true;
    h.turn();
    h.core.on_link(COMMANDS_TOKEN, Readiness::default(), h.now);
    h.core.on_link(TAIL_TOKEN, Readiness::default(), h.now);
    input(
        &mut h,
        COMMANDS_TOKEN,
        &load_reply(500, &[("A", "price=1.23@400"), ("B", "price=0.07@500")]),
    );
    let publish = |body: &str| {
        format!("POST /publish HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 3\r\n\r\n{body}")
    };
    let c = h.connect(&[publish("A=1"), publish("B=2")].concat());
    assert_eq!(c.text(), "", "the first waits for Redis");
    // Its answer would be lost with the link: 503, and the one held behind it waits for
    // Redis in turn, so it is answered too, not dropped from the handover.
    h.core.answer_awaiting();
    let text = c.text();
    assert_eq!(text.matches("HTTP/1.1 503 ").count(), 2, "{text}");
    assert_eq!(text.matches("Retry-After: 1\r\n").count(), 2, "{text}");
    assert!(h.core.clients.get(c.key).is_some_and(|c| c.is_idle()));
}
