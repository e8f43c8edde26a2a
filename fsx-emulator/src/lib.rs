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
//! State is kept per account as well: the same port serves an STS peer (AWS
//! Query protocol, for the unmodified `aws-sdk-sts` client) whose
//! `AssumeRole` issues session credentials for roles registered with
//! [`Emulator::add_role`]. FSx requests signed with those credentials act in
//! the role's account (the 12 digits of its ARN): its own file systems,
//! backups, idempotency tokens, quotas and copy limit, its id in ARNs and
//! `OwnerId`. They must carry the session token
//! (`UnrecognizedClientException` otherwise) and stop working when the
//! credentials expire (`ExpiredTokenException`). Any other access key acts
//! in the default account [`ACCOUNT_ID`], which is what the methods without
//! an `account` argument seed and observe. `GetCallerIdentity` is served
//! too. A [`RoleSeed`]'s `credential_lifetime_seconds` is a test-only knob
//! (not AWS behaviour) that makes its credentials expire after a few seconds.
//!
//! Tests control it in-process through [`Emulator`] (seeding, roles, timing,
//! armed failures, injected faults, limits) and observe it through
//! [`Emulator::state`], [`Emulator::state_of`] and [`Emulator::requests`].
//! The same control surface is served over HTTP under `/_emulator/` for the
//! `fsx-emulator` binary.
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
mod identity;
mod ops;
mod paginate;
mod region;
mod render;
mod server;
mod state;
mod sts;
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
    RegionSnapshot, RequestRecord, ResourceType, RoleSeed, StateSnapshot, StorageType, Tag, Timing,
    UnknownValue, VolumeSeed, VolumeSnapshot, VolumeType,
};

use state::State;

/// The default account: requests signed with any access key the emulator's
/// STS did not issue act in it, and the methods without an `account`
/// argument seed and observe it.
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

    /// Adds a file system to `region` of the default account
    /// ([`ACCOUNT_ID`]); returns its id.
    pub fn seed_file_system(
        &self,
        region: &str,
        seed: FileSystemSeed,
    ) -> Result<String, ControlError> {
        self.seed_file_system_in(ACCOUNT_ID, region, seed)
    }

    /// Adds a file system to `region` of `account` (12 digits); returns its
    /// id.
    pub fn seed_file_system_in(
        &self,
        account: &str,
        region: &str,
        seed: FileSystemSeed,
    ) -> Result<String, ControlError> {
        self.with_state(|s| s.seed_file_system(account, region, seed, SystemTime::now()))
    }

    /// Adds a volume to an ONTAP or OpenZFS file system of `region` of the
    /// default account; returns its id.
    pub fn seed_volume(&self, region: &str, seed: VolumeSeed) -> Result<String, ControlError> {
        self.seed_volume_in(ACCOUNT_ID, region, seed)
    }

    /// Adds a volume to an ONTAP or OpenZFS file system of `region` of
    /// `account`; returns its id.
    pub fn seed_volume_in(
        &self,
        account: &str,
        region: &str,
        seed: VolumeSeed,
    ) -> Result<String, ControlError> {
        self.with_state(|s| s.seed_volume(account, region, seed, SystemTime::now()))
    }

    /// Removes a file system of `region` of the default account and its
    /// volumes (its backups stay).
    pub fn remove_file_system(&self, region: &str, id: &str) -> Result<(), ControlError> {
        self.remove_file_system_in(ACCOUNT_ID, region, id)
    }

    /// Removes a file system of `region` of `account` and its volumes (its
    /// backups stay).
    pub fn remove_file_system_in(
        &self,
        account: &str,
        region: &str,
        id: &str,
    ) -> Result<(), ControlError> {
        self.with_state(|s| s.remove_file_system(account, region, id))
    }

    /// Adds a backup to `region` of the default account; returns its id.
    pub fn seed_backup(&self, region: &str, seed: BackupSeed) -> Result<String, ControlError> {
        self.seed_backup_in(ACCOUNT_ID, region, seed)
    }

    /// Adds a backup to `region` of `account`; returns its id. `OwnerId`
    /// defaults to `account`.
    pub fn seed_backup_in(
        &self,
        account: &str,
        region: &str,
        seed: BackupSeed,
    ) -> Result<String, ControlError> {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.seed_backup(account, region, seed, SystemTime::now())
        })
    }

    /// Registers an IAM role that STS `AssumeRole` may then assume; an
    /// existing role with the same ARN is replaced (its already issued
    /// credentials stay valid until they expire, as in IAM).
    pub fn add_role(&self, role: RoleSeed) -> Result<(), ControlError> {
        self.with_state(|s| {
            let State { iam, rng, .. } = s;
            iam.add_role(role, rng)
        })
    }

    /// The registered roles, by ARN.
    pub fn roles(&self) -> Vec<RoleSeed> {
        self.with_state(|s| s.iam.roles.values().map(|r| r.seed.clone()).collect())
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
    /// or volume id) in `region` of the default account ends `FAILED`.
    /// Passing a backup id arms the next `CopyBackup` of that source into
    /// `region` instead.
    pub fn fail_next_backup(&self, region: &str, target_id: &str) {
        self.fail_next_backup_in(ACCOUNT_ID, region, target_id);
    }

    /// [`Emulator::fail_next_backup`] in `region` of `account`.
    pub fn fail_next_backup_in(&self, account: &str, region: &str, target_id: &str) {
        self.with_state(|s| {
            s.fail_next
                .insert((account.to_owned(), region.to_owned(), target_id.to_owned()));
        });
    }

    /// Forces the lifecycle of a backup of the default account; it then
    /// stays there (no time-driven progression). `DELETED` deletes it.
    pub fn set_lifecycle(
        &self,
        region: &str,
        backup_id: &str,
        lifecycle: BackupLifecycle,
    ) -> Result<(), ControlError> {
        self.set_lifecycle_in(ACCOUNT_ID, region, backup_id, lifecycle)
    }

    /// [`Emulator::set_lifecycle`] for a backup of `account`.
    pub fn set_lifecycle_in(
        &self,
        account: &str,
        region: &str,
        backup_id: &str,
        lifecycle: BackupLifecycle,
    ) -> Result<(), ControlError> {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.set_lifecycle(account, region, backup_id, lifecycle, SystemTime::now())
        })
    }

    /// Marks a backup of the default account as being restored into
    /// `file_system_id` (so `DeleteBackup` answers `BackupRestoring`), or
    /// clears the mark.
    pub fn set_restoring(
        &self,
        region: &str,
        backup_id: &str,
        file_system_id: Option<&str>,
    ) -> Result<(), ControlError> {
        self.set_restoring_in(ACCOUNT_ID, region, backup_id, file_system_id)
    }

    /// [`Emulator::set_restoring`] for a backup of `account`.
    pub fn set_restoring_in(
        &self,
        account: &str,
        region: &str,
        backup_id: &str,
        file_system_id: Option<&str>,
    ) -> Result<(), ControlError> {
        self.with_state(|s| s.set_restoring(account, region, backup_id, file_system_id))
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

    /// Everything the default account holds, with lifecycles as of now.
    pub fn state(&self) -> StateSnapshot {
        self.state_of(ACCOUNT_ID)
    }

    /// Everything `account` holds, with lifecycles as of now (no Regions for
    /// an account nothing was seeded or created in).
    pub fn state_of(&self, account: &str) -> StateSnapshot {
        let now = Instant::now();
        self.with_state(|s| {
            s.advance(now);
            s.snapshot(account, now)
        })
    }

    /// The accounts the emulator holds FSx state for (something was seeded
    /// in them, or they made an FSx request), sorted.
    pub fn accounts(&self) -> Vec<String> {
        self.with_state(|s| s.accounts.keys().cloned().collect())
    }

    /// Every FSx and STS request received so far (oldest first; the log
    /// keeps the most recent 200 000).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with_state(|s| s.log.iter().cloned().collect())
    }

    /// Empties the request log (sequence numbers keep increasing).
    pub fn clear_requests(&self) {
        self.with_state(|s| s.log.clear());
    }

    /// Per Region of the default account, the highest number of backups
    /// that were `COPYING` at the same time.
    pub fn max_copies_in_progress(&self) -> BTreeMap<String, usize> {
        self.max_copies_in_progress_in(ACCOUNT_ID)
    }

    /// Per Region of `account`, the highest number of backups that were
    /// `COPYING` at the same time.
    pub fn max_copies_in_progress_in(&self, account: &str) -> BTreeMap<String, usize> {
        self.with_state(|s| {
            s.accounts
                .get(account)
                .into_iter()
                .flatten()
                .map(|(name, r)| (name.clone(), r.max_copying))
                .collect()
        })
    }

    /// Forgets everything: state of every account, tokens, roles, issued
    /// credentials, configuration, faults and the request log.
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
