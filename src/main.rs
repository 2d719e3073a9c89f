//! `fcsan`: the one binary of the project.
//!
//! - `fcsan up` runs the embedded default. While the SAN roles are being built it shows what
//!   exists: a scripted conversation of every Fibre Channel message kind `fc-frames` knows, written
//!   to a capture for Wireshark and printed decoded, one line a frame.
//! - `fcsan pcap show FILE` prints any FC capture (link type 225 or 224) decoded, one line a frame.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use fcsan::{capture, catalogue, decode};

#[derive(Parser)]
#[command(
    name = "fcsan",
    version,
    about = "Software Fibre Channel SAN, FCIP gateway and virtualization controllers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded default: write every message kind to a capture and print it decoded.
    Up {
        /// Where to write the capture (pcap, link type 225).
        #[arg(long, default_value = "captures/fc-frames.pcap")]
        capture: PathBuf,
    },
    /// Inspect capture files.
    Pcap {
        #[command(subcommand)]
        command: PcapCommand,
    },
}

#[derive(Subcommand)]
enum PcapCommand {
    /// Print every frame of an FC capture (link type 225 or 224), one line a frame.
    Show {
        /// The capture file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`fcsan pcap show x | head`): not an error of ours.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fcsan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Up { capture: path } => {
            let frames = catalogue::conversation();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            capture::write_file(&path, catalogue::START, &frames)?;
            let mut decoder = decode::Decoder::default();
            for (i, f) in frames.iter().enumerate() {
                let line = decoder.line(i + 1, Duration::from_millis(i as u64), f);
                writeln!(out, "{line}")?;
            }
            writeln!(
                out,
                "{} frames written to {} (open it in Wireshark, or: fcsan pcap show {})",
                frames.len(),
                path.display(),
                path.display()
            )?;
        }
        Command::Pcap {
            command: PcapCommand::Show { file },
        } => {
            let records = capture::read_file(&file)?;
            let start = records.first().map(|r| r.ts).unwrap_or_default();
            let mut decoder = decode::Decoder::default();
            for r in &records {
                let ts = r.ts.saturating_sub(start);
                match &r.frame {
                    Ok(f) => writeln!(out, "{}", decoder.line(r.number, ts, f))?,
                    Err(e) => writeln!(
                        out,
                        "{:>4} {:>10.6} not a valid FC frame: {e}",
                        r.number,
                        ts.as_secs_f64()
                    )?,
                }
            }
        }
    }
    Ok(())
}
