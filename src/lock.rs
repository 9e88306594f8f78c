//! Std locks taken with one policy for a holder that panicked: carry on with the data.
//!
//! A std `Mutex` or `RwLock` is poisoned when a thread panics while holding it. sipsteer's
//! critical sections leave the data whole wherever they could panic (they assign, insert or
//! take whole values; none leaves a half-made update behind), so the data behind a poisoned
//! lock is used as it is: one task that panicked must not take health, reloads, counters or
//! the admin API down with it. Every `lock()`, `read()` and `write()` of a std lock goes
//! through these helpers (`tests/it/layers.rs` finds any that does not).

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, taking the data over from a holder that panicked.
pub(crate) fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, taking the data over from a writer that panicked.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, taking the data over from a holder that panicked.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
