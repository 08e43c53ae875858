//! Process exit codes shared by every `kairo` command, so CI scripts can branch on them.

/// Success.
pub const OK: i32 = 0;
/// An error: bad input, I/O failure, missing object. The message says which.
pub const ERROR: i32 = 1;
/// Command-line usage error (unknown flag, missing argument).
pub const USAGE: i32 = 2;
/// The command worked and found a difference: `data status` saw modified or missing data.
pub const CHANGED: i32 = 3;
/// Integrity failure: `data verify` found corrupted or missing objects.
pub const CORRUPT: i32 = 4;
/// A promotion gate failed (or an approver rejected the promotion): the alias did not move.
pub const GATE_FAILED: i32 = 5;
/// The promotion passed its gates and waits for an approval.
pub const PENDING: i32 = 6;
