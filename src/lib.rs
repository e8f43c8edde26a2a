//! `fsx-backup-operator`: Amazon FSx backups managed as Kubernetes custom resources.
//!
//! The binary in `main.rs` only wires configuration and clients together; all
//! behaviour lives in the modules below.

pub mod fsx;
pub mod telemetry;
