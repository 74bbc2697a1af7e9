//! Parses the command line, starts logging, runs the server.

use std::process::ExitCode;

use tickerd::config::{Command, Config, HELP};
use tickerd::server::Server;

fn main() -> ExitCode {
    let env_token = std::env::var("TICKERD_PUBLISH_TOKEN").ok();
    let mut config = match Config::from_args(std::env::args().skip(1), env_token) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("tickerd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tickerd: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let inherited = match tickerd::inherit::listeners() {
        Ok(inherited) => inherited,
        Err(e) => {
            eprintln!("tickerd: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(&config, inherited) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    // The universe lives in the server now; the listing would only hold memory.
    config.universe = Vec::new();
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
