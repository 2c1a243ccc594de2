//! The threads that run RPCs: as many as there are calls in flight, and
//! one idle.
//!
//! A call that blocks (a runtime that hangs until its deadline, a `Wait`
//! for a process that runs for days) holds its thread, and the next call
//! gets another one at once: no call ever waits behind another. A thread
//! whose call is done waits for the next one if no other thread is idle,
//! and ends otherwise, so a daemon at rest keeps one thread for RPCs.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use robust_cleanup::logfmt::quote;

/// One RPC to run.
pub type Job = Box<dyn FnOnce() + Send>;

/// Threads a burst of calls may start (each call in flight holds one, and
/// a `Wait` holds one until its process exits); beyond it calls wait for a
/// thread to finish. Far above what a pod's calls need (one `Wait` per
/// process under CRI): only a guard against a client that floods the
/// daemon, since calls queued behind `Wait`s could wait for ever.
pub const MAX_THREADS: usize = 4096;

/// A pool of threads for blocking calls. Clones share it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    wakeup: Condvar,
    max_idle: usize,
    max_threads: usize,
    /// Called on the worker after each job (the daemon wakes its loop so
    /// that it sees a Shutdown).
    after_job: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct State {
    /// Jobs not taken yet: those handed to an idle thread (`permits`) and,
    /// at the thread cap, the backlog.
    queue: VecDeque<Job>,
    /// Threads waiting for a job and not yet handed one.
    idle: usize,
    /// Jobs handed to idle threads that have not woken up yet.
    permits: usize,
    threads: usize,
    /// The cap was hit (logged once until the backlog is gone).
    capped: bool,
}

impl Pool {
    pub fn new(
        max_idle: usize,
        max_threads: usize,
        after_job: Box<dyn Fn() + Send + Sync>,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                wakeup: Condvar::new(),
                max_idle,
                max_threads: max_threads.max(1),
                after_job,
            }),
        }
    }

    /// Run `job` on an idle thread, or on a new one.
    pub fn submit(&self, job: Job) {
        let inner = &self.inner;
        let mut st = inner.lock();
        st.queue.push_back(job);
        if st.idle > 0 {
            st.idle -= 1;
            st.permits += 1;
            drop(st);
            inner.wakeup.notify_one();
            return;
        }
        if st.threads >= inner.max_threads {
            if !st.capped {
                st.capped = true;
                log::warn!(
                    "msg=\"every RPC thread is busy; calls wait for one\" threads={}",
                    st.threads
                );
            }
            return;
        }
        st.threads += 1;
        drop(st);
        let worker = Arc::clone(inner);
        let spawned = std::thread::Builder::new()
            .name("ttrpc".into())
            .spawn(move || worker.work());
        if let Err(e) = spawned {
            // The job stays queued: the next thread that finishes takes it.
            let mut st = inner.lock();
            st.threads -= 1;
            log::error!(
                "msg=\"cannot start an RPC thread; the call waits for a busy one\" threads={} error={}",
                st.threads,
                quote(&e)
            );
        }
    }

    /// Threads of the pool (running a job or idle).
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        self.inner.lock().threads
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock: a poisoned lock only means a panic
        // between two counter updates of this file, never in a job.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A thread of the pool: it was started for the job just queued.
    fn work(&self) {
        let mut st = self.lock();
        let mut job = st.queue.pop_front();
        loop {
            if let Some(j) = job.take() {
                drop(st);
                // The service contains a request's panic itself; this is
                // the backstop that keeps the thread (and its count) right.
                if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(j)) {
                    log::error!(
                        "msg=\"RPC thread caught a panic\" panic={}",
                        quote(robust_service::error::panic_message(&*p))
                    );
                }
                (self.after_job)();
                st = self.lock();
            }
            if st.queue.len() > st.permits {
                // The backlog of a capped pool.
                job = st.queue.pop_front();
                continue;
            }
            if st.queue.is_empty() {
                st.capped = false;
            }
            if st.idle >= self.max_idle {
                st.threads -= 1;
                return;
            }
            st.idle += 1;
            while st.permits == 0 {
                st = self.wakeup.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.permits -= 1;
            job = st.queue.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    /// A call that blocks never holds up the next one, and once both are
    /// done one thread stays.
    #[test]
    fn a_blocked_job_never_holds_up_the_next_and_one_thread_stays() {
        let pool = Pool::new(1, MAX_THREADS, Box::new(|| {}));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let d1 = done_tx.clone();
        pool.submit(Box::new(move || {
            let _ = release_rx.recv();
            d1.send("blocked").unwrap();
        }));
        for i in 0..5 {
            let d = done_tx.clone();
            pool.submit(Box::new(move || {
                d.send(if i == 4 { "last" } else { "quick" }).unwrap()
            }));
        }
        let mut quick = 0;
        while quick < 5 {
            match done_rx.recv_timeout(Duration::from_secs(5)).unwrap() {
                "blocked" => panic!("the blocked job finished first"),
                _ => quick += 1,
            }
        }
        release_tx.send(()).unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            "blocked"
        );
        assert!(
            wait_until(Duration::from_secs(5), || pool.threads() == 1),
            "threads at rest: {}",
            pool.threads()
        );
    }

    /// Sequential calls reuse the idle thread.
    #[test]
    fn sequential_jobs_reuse_one_thread() {
        let pool = Pool::new(1, MAX_THREADS, Box::new(|| {}));
        let (tx, rx) = mpsc::channel();
        for _ in 0..20 {
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                tx.send(std::thread::current().id()).unwrap()
            }));
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            // Let the thread go back to waiting before the next call.
            assert!(wait_until(Duration::from_secs(5), || pool
                .inner
                .lock()
                .idle
                == 1));
        }
        assert_eq!(pool.threads(), 1);
    }

    /// A panicking job does not take its thread's count or the pool down.
    #[test]
    fn a_panicking_job_leaves_the_pool_working() {
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = woken.clone();
        let pool = Pool::new(
            1,
            MAX_THREADS,
            Box::new(move || {
                w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        pool.submit(Box::new(|| panic!("a bug in one call")));
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || tx.send(7).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
        assert!(wait_until(Duration::from_secs(5), || pool.threads() == 1));
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// At the cap, calls wait in the backlog and run when a thread frees.
    #[test]
    fn beyond_the_cap_calls_wait_for_a_thread() {
        let pool = Pool::new(1, 2, Box::new(|| {}));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (done_tx, done_rx) = mpsc::channel();
        for i in 0..4 {
            let (r, d) = (release_rx.clone(), done_tx.clone());
            pool.submit(Box::new(move || {
                if i < 2 {
                    let _ = r.lock().unwrap().recv();
                }
                d.send(i).unwrap();
            }));
        }
        assert_eq!(pool.threads(), 2);
        assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err());
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        let mut got: Vec<i32> = (0..4)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert!(wait_until(Duration::from_secs(5), || pool.threads() == 1));
    }
}
