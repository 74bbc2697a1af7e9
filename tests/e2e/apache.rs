//! End to end: the real Apache httpd, started from the shipped `conf/apache.conf` (ports from
//! the environment), in front of the real tickerd over SCGI. Needs Apache installed
//! (`apache2-bin`; `.ci/run` installs it). The behaviours every front-end shares are in
//! `support/fronts/checks.rs`; what is Apache's own is asserted here.

use std::time::Duration;

use crate::support::fronts::apache;
use crate::support::fronts::checks;
use crate::support::header;

#[test]
fn stream_through_apache_arrives_event_by_event() {
    let head = checks::stream_arrives_event_by_event(apache::start);
    // tickerd sends no length; Apache adds chunked encoding. The head went out before the
    // first event (SseReader reads it first) and tickerd's CGI `Status:` became the status
    // line (a status line from an SCGI backend would hang Apache).
    assert_eq!(
        header(&head, "Transfer-Encoding").as_deref(),
        Some("chunked"),
        "{head}"
    );
}

#[test]
fn long_poll_through_apache_answers_one_event_and_keeps_the_connection() {
    // Apache drops tickerd's Content-Length: it answers with its own length when tickerd's
    // close comes with the event, or chunked; either way the connection stays open, which
    // the check asserts.
    checks::long_poll_answers_one_event_and_keeps_the_connection(apache::start);
}

#[test]
fn last_event_id_through_apache() {
    checks::last_event_id_passes_through(apache::start);
}

#[test]
fn symbols_and_their_resume_through_apache() {
    checks::symbols_pass_through(apache::start);
}

#[test]
fn browsers_that_leave_apache_free_their_backend_slot() {
    checks::leaving_browsers_free_their_slots(apache::start, Duration::from_secs(10));
}

#[test]
fn a_parked_stream_whose_browser_left_apache_is_freed_by_the_heartbeat() {
    // Apache does not watch the browser while tickerd is quiet: it notices a browser that
    // left only when tickerd's writes to it fail, at the second write after a FIN. With no
    // ticks, the heartbeat makes those writes.
    checks::a_parked_stream_is_freed(apache::start, "1", Duration::from_secs(10));
}

#[test]
fn page_through_apache_at_the_root_and_under_a_prefix() {
    checks::page_at_the_root_and_under_the_prefix(apache::start);
}

#[test]
fn publishing_through_apache_passes_the_authorization() {
    // CGIPassAuth in conf/apache.conf: without it tickerd gets no HTTP_AUTHORIZATION and
    // answers 401 to the right token too.
    checks::publish_through_the_front_end(apache::start);
}

#[test]
fn publishes_back_to_back_through_apache_on_one_kept_connection() {
    // MaxKeepAliveRequests in conf/apache.conf: Apache's default, 100, would close it
    // after the 100th.
    checks::publishes_on_one_kept_connection_through(apache::start);
}

#[test]
fn backend_down_through_apache_is_503_and_back_at_once() {
    assert_eq!(checks::backend_down_then_back(apache::start), 503);
}

#[test]
fn apache_killed_frees_every_stream() {
    checks::front_end_killed_frees_every_stream(apache::start);
}

#[test]
fn three_hundred_streams_through_apache() {
    // One worker thread per stream, 128 threads per child process: three children, the
    // second and third started by Apache as the first fills up.
    checks::many_streams_at_once(apache::start, 300);
}

#[test]
fn unset_variables_take_their_defaults_and_set_ones_win() {
    let (ok, out) = apache::test_shipped(&[]);
    assert!(ok, "{out}");
    for define in [
        "TICKERD_FRONT_PORT=8002",
        "TICKERD_SCGI_HOST=127.0.0.1",
        "TICKERD_SCGI_PORT=9000",
    ] {
        assert!(
            out.contains(&format!("Define: {define}\n")),
            "{define}: {out}"
        );
    }
    // A set variable is used as it is (the tests above start Apache on a port from it): no
    // default is defined over it.
    let (ok, out) = apache::test_shipped(&[("TICKERD_FRONT_PORT", "1234")]);
    assert!(ok, "{out}");
    assert!(!out.contains("TICKERD_FRONT_PORT="), "{out}");
    assert!(out.contains("Define: TICKERD_SCGI_PORT=9000\n"), "{out}");
    assert!(
        out.contains("Define: TICKERD_SCGI_TARGET=scgi://127.0.0.1:9000/\n"),
        "{out}"
    );
    // A socket wins over host and port.
    let (ok, out) = apache::test_shipped(&[("TICKERD_SCGI_SOCKET", "/run/t.sock")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Define: TICKERD_SCGI_TARGET=unix:/run/t.sock|scgi://localhost/\n"),
        "{out}"
    );
}

#[test]
fn stream_page_and_publish_through_apache_over_a_unix_socket() {
    checks::over_a_unix_socket(apache::start_with_socket);
}
