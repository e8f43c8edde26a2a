//! `fsx-emulator` binary: serves the emulator until SIGTERM or Ctrl-C.
//!
//! ```text
//! fsx-emulator [--listen 127.0.0.1:PORT] [--create-seconds S] [--copy-seconds S] [--seed N]
//! ```
//!
//! The first line on stdout is `listening on http://127.0.0.1:PORT`, so a
//! script can start it with port 0 and read the endpoint back.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use fsx_emulator::{Emulator, Timing};

const USAGE: &str = "usage: fsx-emulator [--listen ADDR:PORT] [--create-seconds SECONDS] \
                     [--copy-seconds SECONDS] [--seed N]";

#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    timing: Timing,
    seed: Option<u64>,
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{flag} needs a non-negative number of seconds, not '{value}'"))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        timing: Timing::default(),
        seed: None,
    };
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => {
                options.listen = value
                    .parse()
                    .map_err(|_| format!("--listen needs ADDRESS:PORT, not '{value}'"))?;
            }
            "--create-seconds" => options.timing.create_duration = seconds(&flag, &value)?,
            "--copy-seconds" => options.timing.copy_duration = seconds(&flag, &value)?,
            "--seed" => {
                options.seed = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--seed needs an unsigned integer, not '{value}'"))?,
                );
            }
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    Ok(Some(options))
}

/// Resolves when the process is asked to stop.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                eprintln!("fsx-emulator: cannot watch SIGTERM ({error}); stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fsx-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = options.seed.map_or_else(Emulator::new, Emulator::with_seed);
    emulator.set_timing(options.timing);
    let running = match emulator.start_on(options.listen).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("fsx-emulator: cannot listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "listening on {}", running.endpoint)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Whoever started us is gone; there is nobody to serve.
        return ExitCode::FAILURE;
    }
    drop(stdout);
    shutdown_signal().await;
    running.stop().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn parses_flags() {
        let options = parse_args(args(&[
            "--listen",
            "127.0.0.1:4566",
            "--create-seconds",
            "0.5",
            "--copy-seconds",
            "2",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(options.listen.port(), 4566);
        assert_eq!(options.timing.create_duration, Duration::from_millis(500));
        assert_eq!(options.timing.copy_duration, Duration::from_secs(2));
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse_args(args(&["--listen"])).is_err());
        assert!(parse_args(args(&["--create-seconds", "-1"])).is_err());
        assert!(parse_args(args(&["--bogus", "1"])).is_err());
        assert!(parse_args(args(&["--help"])).unwrap().is_none());
    }
}
