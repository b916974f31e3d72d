//! The `healthcode` command. All the work is in the library; this only parses and dispatches.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    healthcode::Cli::parse().run()
}
