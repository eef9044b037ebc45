//! Small synchronisation helpers shared by every layer.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also after a panic while it was held: every value kept behind
/// these mutexes stays consistent between statements, so a poisoned lock
/// still holds a usable value (and a panic must not spread to other calls).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
