//! Turning a spec into something a reconciler can act on, or a message naming
//! the field to fix. Pure (the clock is passed in): what the CRD schema cannot
//! check is checked here, before any FSx call. Also the questions one kind asks
//! about another (which backups of a schedule a copy follows), so no controller
//! reaches into another.

pub mod copy;
pub mod schedule;

pub use copy::{Source, ValidCopy, partition};
pub use schedule::{Targets, ValidSchedule, user_tags};
