//! Starting to serve a valid configuration: what a live upgrade handed over (or the
//! listeners systemd or the front-end passed), the listeners opened, the server built, the
//! previous binary's connections taken over, the service manager told, the loop run.

use std::process::ExitCode;

use crate::config::Config;
use crate::server::Server;
use crate::upgrade::{self, Launch};

/// Serves `config` until stopped: 0 after SIGTERM or SIGINT, 2 for inherited descriptors
/// that make no sense, 1 when listening or the loop fails.
pub fn serve(mut config: Config) -> ExitCode {
    // A live upgrade: the previous binary's listeners and record (or why it cannot be read,
    // in which case its connections were ended so that their browsers reconnect).
    let mut record = None;
    let handed_listeners = upgrade::handed_over().map(|handed| {
        match handed.record {
            Ok(taken) => record = Some(taken),
            Err(e) => log::warn!(
                "upgrade: cannot read what the previous binary handed over ({e}): its connections were ended; browsers reconnect with their Last-Event-ID"
            ),
        }
        handed.listeners
    });
    let inherited = match crate::listeners::inherited(handed_listeners) {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("tickerd: {e}");
            return ExitCode::from(2);
        }
    };
    let server = crate::listeners::open(&config, inherited)
        .and_then(|listeners| Server::new(&config, listeners));
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    // Its signal handlers are in place: signals held across a live upgrade's exec come now.
    upgrade::release_signals();
    // The universe lives in the server now; the listing would only hold memory.
    config.universe = Vec::new();
    match Launch::current() {
        Ok(launch) => server.set_launch(launch),
        Err(e) => log::warn!("this binary's path is unknown ({e}): SIGUSR2 cannot upgrade"),
    }
    let (symbols, default) = server.universe();
    log::info!(
        "universe: {symbols} symbols from {}; default symbol {default}",
        config.universe_source
    );
    log::info!(
        "tickerd {} listening: {}; max clients {}; publishing {}",
        env!("CARGO_PKG_VERSION"),
        server.listening_on().join(", "),
        server.max_clients(),
        if config.publish_token.is_some() {
            "on"
        } else {
            "off"
        },
    );
    if let Some((record, poller)) = record {
        server.take_over(record, poller);
    }
    crate::notify::ready(&format!("serving {symbols} symbols"));
    match server.run() {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::from(1)
        }
    }
}
