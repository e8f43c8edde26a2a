//! `fsx-backup-operator`: Amazon FSx backups managed as Kubernetes custom resources.
//!
//! The binary in `main.rs` only wires configuration and clients together; all
//! behaviour lives in the modules below.

pub mod accounts;
pub mod adoption;
pub mod clock;
pub mod conditions;
pub mod controller;
pub mod copy_slots;
pub mod crd;
pub mod duration;
pub mod fsx;
pub mod http;
pub mod identity;
pub mod kube_client;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod naming;
pub mod notify;
pub mod ownership;
pub mod preview;
pub mod retention;
pub mod rpo;
pub mod schedule;
pub mod strays;
pub mod telemetry;
pub mod validate;

#[cfg(test)]
mod fuzz_tests;
