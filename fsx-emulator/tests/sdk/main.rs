//! The emulator driven only through the real `aws-sdk-fsx` and `aws-sdk-sts`
//! clients (plus the control API for setup), so every response is checked
//! against the types AWS generates from its own FSx and STS models.
//!
//! One test binary keeps link time low; each test runs its own emulator.

// Each test is one scenario against the SDK, read top to bottom.
#![allow(clippy::too_many_lines)]

mod accounts;
mod backups;
mod control;
mod copies;
mod delete;
mod describe;
mod faults;
mod sts;
mod support;
mod tagging;
