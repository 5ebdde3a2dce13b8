//! `latchkey`: parse the command line, run the command, report failure as one readable line.

use std::process::ExitCode;

use clap::Parser;
use latchkey_server::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
