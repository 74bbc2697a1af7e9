//! Parses the command line, starts logging, serves.

use std::process::ExitCode;

use tickerd::config::{Command, Config, HELP};

fn main() -> ExitCode {
    let env_token = std::env::var("TICKERD_PUBLISH_TOKEN").ok();
    let config = match Config::from_args(std::env::args().skip(1), env_token) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Check(config)) => {
            println!(
                "tickerd {}: the configuration is valid ({} symbols)",
                env!("CARGO_PKG_VERSION"),
                config.universe.len()
            );
            return ExitCode::SUCCESS;
        }
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
    tickerd::start::serve(*config)
}
