//! Refusing a worker pool that a `fork` left behind: rayon's threads exist only in the
//! process that started them, and a job sent to a pool without threads waits forever.

use crate::ClipVisionError;
use pyo3::PyResult;
use std::sync::atomic::{AtomicU32, Ordering};

/// The process that first ran work on rayon's global pool (0: none yet).
static GLOBAL_POOL_PID: AtomicU32 = AtomicU32::new(0);

/// Checks that rayon's global pool, if some call already started it, was started by this
/// process, and records this process as its owner.
///
/// # Errors
/// [`ClipVisionError`] in a forked child whose parent had started the pool.
pub(crate) fn global_pool() -> PyResult<()> {
    let me = std::process::id();
    match GLOBAL_POOL_PID.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Ok(()),
        Err(owner) if owner == me => Ok(()),
        Err(owner) => Err(ClipVisionError::new_err(format!(
            "the worker threads were started in process {owner}, before this process \
             (pid {me}) was forked from it, and do not exist here: make the first embed \
             call after the fork, or create an ImageEmbedder with threads=N in this process"
        ))),
    }
}

/// Checks that an embedder's own pool, started in process `owner`, is this process's.
///
/// # Errors
/// [`ClipVisionError`] in a forked child of `owner`.
pub(crate) fn own_pool(owner: u32, threads: usize) -> PyResult<()> {
    let me = std::process::id();
    if owner == me {
        return Ok(());
    }
    Err(ClipVisionError::new_err(format!(
        "this ImageEmbedder's {threads} worker threads were started in process {owner}, \
         before this process (pid {me}) was forked from it, and do not exist here: create \
         the embedder in this process"
    )))
}
