//! `fsx-emulator`: a faithful Amazon FSx API emulator for tests.
//!
//! It speaks the real wire protocol (AWS JSON 1.1 over HTTP, `X-Amz-Target:
//! AWSSimbaAPIService_v20180301.<Operation>`) so that the unmodified
//! `aws-sdk-fsx` client can talk to it, and implements the backup-related
//! part of FSx with the semantics of the FSx API reference: time-driven
//! backup lifecycles, idempotency tokens, one backup at a time per target,
//! cross-Region copies with the five-in-progress limit, unordered
//! pagination, per-Region state chosen by the `SigV4` signing Region, and the
//! modeled error codes of each operation.
//!
//! Tests control it in-process through [`Emulator`] (seeding, timing, armed
//! failures, injected faults, limits) and observe it through
//! [`Emulator::state`] and [`Emulator::requests`]. The same control surface
//! is served over HTTP under `/_emulator/` for the `fsx-emulator` binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use fsx_emulator::{Emulator, FileSystemSeed, FileSystemType};
//!
//! let emulator = Emulator::new();
//! let fs = emulator
//!     .seed_file_system("us-east-1", FileSystemSeed::new(FileSystemType::Windows))
//!     .expect("valid seed");
//! let running = emulator.start().await?;
//! // Point aws-sdk-fsx at `running.endpoint` and back up `fs` ...
//! running.stop().await;
//! # Ok(()) }
//! ```

// A test peer, not product code: its handlers follow the FSx API reference
// check by check, in the reference's order, and read best whole.
#![allow(clippy::too_many_lines)]

mod control_http;
mod error;
mod hash;
mod ops;
mod paginate;
mod region;
mod render;
mod server;
mod state;
mod time;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use region::{is_valid_region, partition};
pub use types::{
    BackupLifecycle, BackupSeed, BackupSnapshot, BackupType, ControlError, Faults,
    FileSystemLifecycle, FileSystemSeed, FileSystemSnapshot, FileSystemType, Limits,
    RegionSnapshot, RequestRecord, ResourceType, StateSnapshot, StorageType, Tag, Timing,
    UnknownValue, VolumeSeed, VolumeSnapshot, VolumeType,
};

use state::State;

/// The account id in every ARN and `OwnerId` the emulator produces.
pub const ACCOUNT_ID: &str = state::ACCOUNT_ID;

/// The `X-Amz-Target` prefix FSx requests carry.
pub const TARGET_PREFIX: &str = server::TARGET_PREFIX;

/// An FSx emulator: shared state plus the control API. Cloning is cheap and
/// every clone controls the same emulator, so a test can keep one handle
/// while the server task holds another.
#[derive(Clone)]
pub struct Emulator {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").finish_non_exhaustive()
    }
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Emulator {
    /// An empty emulator with zero durations, default limits and no faults.
    pub fn new() -> Self {
        Self::from_state(State::new(None))
    }

    /// Like [`Emulator::new`], but ids, page order and fault decisions come
    /// from a PRNG seeded with `seed`, so a run is reproducible.
    pub fn with_seed(seed: u64) -> Self {
        Self::from_state(State::new(Some(seed)))
    }

    fn from_state(state: State) -> Self {
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Runs `f` with the state locked. A panic while the lock was held (a
    /// bug) must not take every later request down with it, so a poisoned
    /// lock is recovered rather than propagated.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Serves on `127.0.0.1` on a free port.
    pub async fn start(&self) -> std::io::Result<RunningEmulator> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr` until the returned handle is stopped or dropped.
    pub async fn start_on(&self, addr: SocketAddr) -> std::io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, receiver) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, self.clone(), receiver));
        Ok(RunningEmulator {
            endpoint: format!("http://{addr}"),
            addr,
            shutdown,
            task: Some(task),
        })
    }

    /// Adds a file system to `region`; returns its id.
    pub fn seed_file_system(
        &self,
        region: &str,
        seed: FileSystemSeed,
    ) -> Result<String, ControlError> {
        self.with_state(|s| s.seed_file_system(region, seed, SystemTime::now()))
    }

    /// Adds a volume to an ONTAP or OpenZFS file system of `region`; returns
    /// its id.
    pub fn seed_volume(&self, region: &str, seed: VolumeSeed) -> Result<String, ControlError> {
        self.with_state(|s| s.seed_volume(region, seed, SystemTime::now()))
    }

    /// Removes a file system of `region` and its volumes (its backups stay).
    pub fn remove_file_system(&self, region: &str, id: &str) -> Result<(), ControlError> {
        self.with_state(|s| s.remove_file_system(region, id))
    }

    /// Adds a backup to `region`; returns its id.
    pub fn seed_backup(&self, region: &str, seed: BackupSeed) -> Result<String, ControlError> {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.seed_backup(region, seed, SystemTime::now())
        })
    }

    /// Sets how long later backups and copies take.
    pub fn set_timing(&self, timing: Timing) {
        self.with_state(|s| s.timing = timing);
    }

    /// The current timing.
    pub fn timing(&self) -> Timing {
        self.with_state(|s| s.timing)
    }

    /// Arms a failure: the next `CreateBackup` of `target_id` (a file system
    /// or volume id) in `region` ends `FAILED`. Passing a backup id arms the
    /// next `CopyBackup` of that source into `region` instead.
    pub fn fail_next_backup(&self, region: &str, target_id: &str) {
        self.with_state(|s| {
            s.fail_next
                .insert((region.to_owned(), target_id.to_owned()));
        });
    }

    /// Forces a backup's lifecycle; it then stays there (no time-driven
    /// progression). `DELETED` deletes it.
    pub fn set_lifecycle(
        &self,
        region: &str,
        backup_id: &str,
        lifecycle: BackupLifecycle,
    ) -> Result<(), ControlError> {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.set_lifecycle(region, backup_id, lifecycle, SystemTime::now())
        })
    }

    /// Marks a backup as being restored into `file_system_id` (so
    /// `DeleteBackup` answers `BackupRestoring`), or clears the mark.
    pub fn set_restoring(
        &self,
        region: &str,
        backup_id: &str,
        file_system_id: Option<&str>,
    ) -> Result<(), ControlError> {
        self.with_state(|s| s.set_restoring(region, backup_id, file_system_id))
    }

    /// Replaces the injected faults; the `*_next` counters start over.
    pub fn set_faults(&self, faults: Faults) {
        self.with_state(|s| s.set_faults(faults));
    }

    /// The configured faults.
    pub fn faults(&self) -> Faults {
        self.with_state(|s| s.faults.clone())
    }

    /// Replaces the limits.
    pub fn set_limits(&self, limits: Limits) {
        self.with_state(|s| s.limits = limits);
    }

    /// The current limits.
    pub fn limits(&self) -> Limits {
        self.with_state(|s| s.limits.clone())
    }

    /// Everything the emulator holds, with lifecycles as of now.
    pub fn state(&self) -> StateSnapshot {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.snapshot(now)
        })
    }

    /// Every FSx request received so far (oldest first; the log keeps the
    /// most recent 200 000).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with_state(|s| s.log.iter().cloned().collect())
    }

    /// Empties the request log (sequence numbers keep increasing).
    pub fn clear_requests(&self) {
        self.with_state(|s| s.log.clear());
    }

    /// Per Region, the highest number of backups that were `COPYING` at the
    /// same time.
    pub fn max_copies_in_progress(&self) -> BTreeMap<String, usize> {
        self.with_state(|s| {
            s.regions
                .iter()
                .map(|(name, r)| (name.clone(), r.max_copying))
                .collect()
        })
    }

    /// Forgets everything: state, tokens, configuration, faults and the
    /// request log.
    pub fn reset(&self) {
        self.with_state(State::reset);
    }
}

/// A serving emulator. Dropping it stops the server; [`RunningEmulator::stop`]
/// additionally waits until the listening socket is closed.
#[derive(Debug)]
pub struct RunningEmulator {
    /// Base URL for the SDK's `endpoint_url`, e.g. `http://127.0.0.1:43121`.
    pub endpoint: String,
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// Stops serving and waits for the server task to end.
    pub async fn stop(mut self) {
        // A send error only means the server already stopped.
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(%error, "emulator server task ended abnormally");
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
