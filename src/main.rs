//! Entry point: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tend::cli::Cli::parse();
    tend::cmd::main(cli)
}
