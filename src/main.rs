//! Parses the command line, starts logging, serves.

use std::process::ExitCode;

use tickerd::config::{Command, Config};

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os().skip(1)) {
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
    tickerd::start::serve(*config)
}
