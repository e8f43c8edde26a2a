//! FSx emulator (being written).
