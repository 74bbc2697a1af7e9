//! Parses the command line, starts logging, runs the server.

use std::process::ExitCode;

use tickerd::config::{Command, Config};
use tickerd::inherit::Source;
use tickerd::server::upgrade::{self, Launch};
use tickerd::server::Server;

fn main() -> ExitCode {
    let mut config = match Config::from_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Check(config)) => {
            println!(
                "tickerd {}: the configuration is valid ({} symbols)",
                env!("CARGO_PKG_VERSION"),
                config.universe.len()
            );
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help(text) | Command::Version(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tickerd: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // A live upgrade: the previous binary's listeners and record (or why it cannot be read,
    // in which case its connections were ended so that their browsers reconnect).
    let mut record = None;
    let inherited = match upgrade::handed_over() {
        Some((listeners, taken)) => {
            match taken {
                Ok(taken) => record = Some(taken),
                Err(e) => log::warn!(
                    "upgrade: cannot read what the previous binary handed over ({e}): its connections were ended; browsers reconnect with their Last-Event-ID"
                ),
            }
            Some((Source::Upgrade, listeners))
        }
        None => match tickerd::inherit::listeners() {
            Ok(inherited) => inherited,
            Err(e) => {
                eprintln!("tickerd: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut server = match Server::bind(&config, inherited) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    // Its signal handlers are in place: signals held across a live upgrade's exec come now.
    upgrade::unblock_held_signals();
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
    tickerd::notify::ready(&format!("serving {symbols} symbols"));
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
