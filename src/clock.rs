//! The operator's notion of "now". Release builds use the system clock; tests
//! start the binary with a hidden `--test-clock-offset-file` so they can move
//! time forward (to the next scheduled run, past a retention age) without
//! waiting for wall-clock hours. Time keeps flowing in both cases, so timers
//! and the FSx endpoint's own timing stay consistent.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// A source of the current instant.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; shared with the file watcher.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::Relaxed));
        Timestamp::now()
            .saturating_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    /// A clock whose offset from system time is read from `path` (a signed
    /// number of seconds, fractions allowed) every 50 ms. The returned channel
    /// ticks whenever the offset changes, so controllers can re-evaluate at once.
    pub async fn offset_from_file(path: PathBuf) -> std::io::Result<(Self, watch::Receiver<()>)> {
        let clock = Self::default();
        let initial = read_offset_ms(&path).await?;
        clock.offset_ms.store(initial, Ordering::Relaxed);
        let (tx, rx) = watch::channel(());
        let offset = clock.offset_ms.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(50));
            loop {
                ticker.tick().await;
                if let Ok(value) = read_offset_ms(&path).await
                    && offset.swap(value, Ordering::Relaxed) != value
                {
                    tracing::info!(offset_ms = value, "test clock moved");
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            }
        });
        Ok((clock, rx))
    }
}

async fn read_offset_ms(path: &PathBuf) -> std::io::Result<i64> {
    let text = tokio::fs::read_to_string(path).await?;
    let seconds: f64 = text.trim().parse().map_err(|err| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a number of seconds: {err}", path.display()),
        )
    })?;
    #[allow(clippy::cast_possible_truncation)] // offsets are far below i64 milliseconds
    Ok((seconds * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offset_file_moves_the_clock_and_signals() {
        let dir = std::env::temp_dir().join(format!("fsxbo-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("offset");
        std::fs::write(&path, "0").expect("write");
        let (clock, mut changed) = Clock::offset_from_file(path.clone()).await.expect("clock");
        let before = clock.now();
        assert!(Timestamp::now().duration_since(before).abs() < SignedDuration::from_secs(1));
        std::fs::write(&path, "86400.5").expect("write");
        tokio::time::timeout(Duration::from_secs(5), changed.changed())
            .await
            .expect("signalled")
            .expect("open");
        let skew = clock.now().duration_since(Timestamp::now());
        assert!(
            skew > SignedDuration::from_secs(86_400) && skew < SignedDuration::from_secs(86_402),
            "{skew:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
