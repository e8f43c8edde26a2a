//! The integration tests, as one test binary so CI links them once: the operator
//! binary and the library against a real kube-apiserver + etcd, the FSx emulator
//! (through the real `aws-sdk-fsx`), moto, kubectl and helm. `support/` is the harness.

// End-to-end scenarios read top to bottom, one step after another.
#![allow(clippy::too_many_lines)]

mod accounts;
mod adoption;
mod apiserver;
mod copy_e2e;
mod crds;
mod deletion_brake;
mod examples;
mod fsx_boundary;
mod fsx_moto;
mod health_contract;
mod hostile;
mod in_process;
mod operations;
mod packaging;
mod plan_cli;
mod schedule_e2e;
mod schedule_invalid;
mod soak;
mod split_brain;
mod support;
