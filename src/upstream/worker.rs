//! Which thread a call is made from: the worker threads that serve connections
//! (`app::workers`) number themselves from 1, every other thread is 0. A backend keeps
//! an HTTP client per worker (`clients`), so that a request, its upstream
//! connection and the task driving that connection stay on one thread.

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as worker `index` (from 1).
pub fn enter(index: usize) {
    WORKER.with(|worker| worker.set(index));
}

/// The current thread's worker number; 0 off the worker threads.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}
