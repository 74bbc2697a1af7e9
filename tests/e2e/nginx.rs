//! End to end: the real nginx, started from the shipped `conf/nginx.conf` (its two address
//! snippets written by the test), in front of the real tickerd over SCGI. Needs nginx
//! installed (`nginx-light`; `.ci/run` installs it). The behaviours every front-end shares
//! are in `support/fronts/checks.rs`; what is nginx's own is asserted here.

use std::time::Duration;

use crate::support::fronts::checks;
use crate::support::fronts::nginx;
use crate::support::header;

#[test]
fn stream_through_nginx_arrives_event_by_event() {
    let head = checks::stream_arrives_event_by_event(nginx::start);
    // tickerd sends no length; nginx adds chunked encoding.
    assert_eq!(
        header(&head, "Transfer-Encoding").as_deref(),
        Some("chunked"),
        "{head}"
    );
}

#[test]
fn long_poll_through_nginx_answers_one_event_and_keeps_the_connection() {
    let (first, second) =
        checks::long_poll_answers_one_event_and_keeps_the_connection(nginx::start);
    // nginx passes tickerd's Content-Length on, whether the event came at once or later.
    for head in [first, second] {
        assert!(header(&head, "Content-Length").is_some(), "{head}");
    }
}

#[test]
fn last_event_id_through_nginx() {
    checks::last_event_id_passes_through(nginx::start);
}

#[test]
fn symbols_and_their_resume_through_nginx() {
    checks::symbols_pass_through(nginx::start);
}

#[test]
fn browsers_that_leave_nginx_free_their_backend_slot() {
    checks::leaving_browsers_free_their_slots(nginx::start, Duration::from_secs(5));
}

#[test]
fn a_silent_stream_is_freed_as_soon_as_its_browser_leaves_nginx() {
    // No ticks and no heartbeat: tickerd writes nothing, so only nginx closing the SCGI
    // connection when the browser leaves can free the slot.
    checks::a_parked_stream_is_freed(nginx::start, "0", Duration::from_secs(5));
}

#[test]
fn page_through_nginx_at_the_root_and_under_a_prefix() {
    checks::page_at_the_root_and_under_the_prefix(nginx::start);
}

#[test]
fn publishing_through_nginx() {
    checks::publish_through_the_front_end(nginx::start);
}

#[test]
fn publishes_back_to_back_through_nginx_on_one_kept_connection() {
    checks::publishes_on_one_kept_connection_through(nginx::start);
}

#[test]
fn backend_down_through_nginx_is_502_and_back_at_once() {
    assert_eq!(checks::backend_down_then_back(nginx::start), 502);
}

#[test]
fn nginx_killed_frees_every_stream() {
    checks::front_end_killed_frees_every_stream(nginx::start);
}

#[test]
fn three_hundred_streams_through_nginx() {
    checks::many_streams_at_once(nginx::start, 300);
}

#[test]
fn stream_page_and_publish_through_nginx_over_a_unix_socket() {
    checks::over_a_unix_socket(|socket| {
        nginx::start_with_backend(&format!("unix:{}", socket.display()))
    });
}

#[test]
fn the_shipped_snippets_give_the_documented_addresses() {
    let (ok, out) = nginx::test_shipped();
    assert!(ok, "{out}");
    // `nginx -T` prints every file it read after a `# configuration file PATH:` line; take
    // the snippets' own lines, without comments (conf/nginx.conf's comments quote both).
    let file = |name: &str| -> Vec<String> {
        out.split("# configuration file ")
            .find(|part| {
                part.lines()
                    .next()
                    .is_some_and(|l| l.ends_with(&format!("/{name}:")))
            })
            .unwrap_or_else(|| panic!("{name} not read: {out}"))
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("nginx: "))
            .map(String::from)
            .collect()
    };
    assert_eq!(file("nginx-listen.conf"), ["listen 127.0.0.1:8001;"]);
    assert_eq!(
        file("nginx-backend.conf"),
        ["upstream tickerd {", "server 127.0.0.1:9000;", "}"]
    );
}
