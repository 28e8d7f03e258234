//! Running a whole forward pass on a rayon worker thread.
//!
//! Every parallel operation started from a thread outside the pool (a program's main
//! thread) is *injected*: the job is queued, a sleeping worker is woken, and the caller
//! blocks on a latch until the pool is done — two futex round trips per LayerNorm, per
//! quantization pass, per matrix product. A ViT-B/32 forward at batch 1 starts about 130 of
//! them (15 % of its time in the kernel's futex and scheduler paths, measured). Started from
//! a worker, the same operations split by work stealing, and a part that is not split runs
//! inline with no system call at all.

/// Runs `f` on a thread of the current rayon pool: at once when the caller already is one,
/// else on a worker of the global pool (one injection for the whole of `f`; the caller
/// blocks until it returns).
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_a_worker_and_returns_the_value() {
        assert_eq!(rayon::current_thread_index(), None);
        let (inside, v) = on_worker(|| (rayon::current_thread_index(), 41 + 1));
        assert!(inside.is_some());
        assert_eq!(v, 42);
        // Nested: stays on the same worker.
        let same = on_worker(|| {
            let outer = rayon::current_thread_index();
            on_worker(|| rayon::current_thread_index() == outer)
        });
        assert!(same);
    }
}
