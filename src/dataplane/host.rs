//! [`HostPlane`]: slots in a host buffer, filled from the memory-mapped store by a copy thread.
//!
//! Each load gets a ticket (1, 2, ...); the copy thread copies in ticket order and publishes the
//! last completed ticket. A slot is ready when the ticket of its last load has completed, so the
//! copy thread never writes a slot that may be read: it only writes slots whose last ticket is
//! pending, and [`HostPlane::read`] refuses those.

use std::alloc::Layout;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{DataPlane, DataPlaneError, ExpertStore, PlaneStats};

/// The slot pool: written by the copy thread, read by the owner, never the same slot at once.
/// Only ever accessed through its raw pointer (no reference to the whole buffer is formed).
struct Pool {
    /// Start of `layout.size()` zeroed bytes.
    ptr: *mut u8,
    /// The allocation's layout (f32-aligned).
    layout: Layout,
}

// SAFETY: access is partitioned by the ticket protocol (module docs): the copy thread writes
// only slots with a pending ticket, the owner reads only slots without one.
unsafe impl Sync for Pool {}
// SAFETY: the allocation is owned by the pool and freed once, in `drop`.
unsafe impl Send for Pool {}

impl Pool {
    fn new(bytes: usize) -> Pool {
        let layout = Layout::from_size_align(bytes.max(4), 4).expect("pool size fits");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Pool { ptr, layout }
    }

    fn slot_ptr(&self, slot: usize, expert_bytes: usize) -> *mut u8 {
        debug_assert!((slot + 1) * expert_bytes <= self.layout.size());
        // SAFETY: in bounds (slot < slots checked by callers).
        unsafe { self.ptr.add(slot * expert_bytes) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Progress published by the copy thread.
#[derive(Default)]
struct Progress {
    /// Last completed ticket.
    done: u64,
    /// Copies and bytes completed, busy time.
    stats: PlaneStats,
    /// Set when the thread stopped.
    stopped: bool,
}

/// A copy job.
struct Job {
    ticket: u64,
    slot: usize,
    expert: usize,
}

/// Host slot pool filled by a copy thread.
pub struct HostPlane {
    /// Where experts come from.
    store: Arc<ExpertStore>,
    /// The slots.
    pool: Arc<Pool>,
    /// Completed tickets and counters, with a condvar for waiters.
    progress: Arc<(Mutex<Progress>, Condvar)>,
    /// Jobs to the copy thread (`None` once dropped).
    jobs: Option<Sender<Job>>,
    /// The copy thread.
    thread: Option<JoinHandle<()>>,
    /// Last ticket issued.
    issued: u64,
    /// Ticket of each slot's last load (0: empty).
    ticket: Vec<u64>,
    /// (layer, expert) of each slot's last load.
    content: Vec<Option<(u16, u16)>>,
    /// Bytes of one expert.
    expert_bytes: usize,
}

impl HostPlane {
    /// A pool of `slots` empty slots fed from `store`.
    pub fn new(store: ExpertStore, slots: usize) -> Result<HostPlane, DataPlaneError> {
        let expert_bytes = store.expert_bytes();
        let pool = Arc::new(Pool::new(slots * expert_bytes));
        let store = Arc::new(store);
        let progress = Arc::new((Mutex::new(Progress::default()), Condvar::new()));
        let (tx, rx) = channel::<Job>();
        let thread = {
            let (store, pool, progress) = (store.clone(), pool.clone(), progress.clone());
            std::thread::Builder::new()
                .name("moeplan-copy".into())
                .spawn(move || {
                    for job in rx {
                        let t0 = Instant::now();
                        // SAFETY: the slot's last ticket is this job's or later (pending), so
                        // the owner does not read it (module docs).
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(
                                pool.slot_ptr(job.slot, expert_bytes),
                                expert_bytes,
                            )
                        };
                        store.copy_into(job.expert, dst);
                        let busy = t0.elapsed().as_secs_f64();
                        let (m, cv) = &*progress;
                        let mut p = m.lock().unwrap_or_else(|e| e.into_inner());
                        p.done = job.ticket;
                        p.stats.copies += 1;
                        p.stats.bytes += expert_bytes as u64;
                        p.stats.busy_s += busy;
                        cv.notify_all();
                    }
                    let (m, cv) = &*progress;
                    m.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
                    cv.notify_all();
                })
                .map_err(|e| DataPlaneError::CopyThread(e.to_string()))?
        };
        Ok(HostPlane {
            store,
            pool,
            progress,
            jobs: Some(tx),
            thread: Some(thread),
            issued: 0,
            ticket: vec![0; slots],
            content: vec![None; slots],
            expert_bytes,
        })
    }

    fn check(&self, slot: u32) -> Result<usize, DataPlaneError> {
        let s = slot as usize;
        if s >= self.ticket.len() {
            return Err(DataPlaneError::Slot {
                slot,
                slots: self.ticket.len(),
            });
        }
        Ok(s)
    }

    fn done(&self) -> u64 {
        self.progress
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .done
    }

    /// Blocks until ticket `t` completed.
    fn wait_ticket(&self, t: u64) -> Result<Duration, DataPlaneError> {
        let t0 = Instant::now();
        let (m, cv) = &*self.progress;
        let mut p = m.lock().unwrap_or_else(|e| e.into_inner());
        while p.done < t {
            if p.stopped {
                return Err(DataPlaneError::CopyThread(
                    "stopped with loads pending".into(),
                ));
            }
            p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        Ok(t0.elapsed())
    }
}

impl DataPlane for HostPlane {
    fn name(&self) -> &'static str {
        "host"
    }

    fn slots(&self) -> usize {
        self.ticket.len()
    }

    fn expert_bytes(&self) -> usize {
        self.expert_bytes
    }

    fn load(&mut self, slot: u32, layer: u16, expert: u16) -> Result<(), DataPlaneError> {
        let s = self.check(slot)?;
        let index = self.store.index(layer, expert)?;
        self.issued += 1;
        let job = Job {
            ticket: self.issued,
            slot: s,
            expert: index,
        };
        self.jobs
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| DataPlaneError::CopyThread("not running".into()))?;
        self.ticket[s] = self.issued;
        self.content[s] = Some((layer, expert));
        Ok(())
    }

    fn evict(&mut self, slot: u32) -> Result<(), DataPlaneError> {
        let s = self.check(slot)?;
        self.content[s] = None;
        Ok(())
    }

    fn is_ready(&mut self, slot: u32) -> Result<bool, DataPlaneError> {
        let s = self.check(slot)?;
        Ok(self.content[s].is_some() && self.done() >= self.ticket[s])
    }

    fn wait(&mut self, slot: u32) -> Result<Duration, DataPlaneError> {
        let s = self.check(slot)?;
        if self.content[s].is_none() {
            return Err(DataPlaneError::NotReady { slot, why: "empty" });
        }
        self.wait_ticket(self.ticket[s])
    }

    fn wait_all(&mut self) -> Result<Duration, DataPlaneError> {
        self.wait_ticket(self.issued)
    }

    fn read(&mut self, slot: u32, f: &mut dyn FnMut(&[u8])) -> Result<(), DataPlaneError> {
        let s = self.check(slot)?;
        if self.content[s].is_none() {
            return Err(DataPlaneError::NotReady { slot, why: "empty" });
        }
        if self.done() < self.ticket[s] {
            return Err(DataPlaneError::NotReady {
                slot,
                why: "loading",
            });
        }
        // SAFETY: the slot's last ticket completed (no pending copy writes it), and no load can
        // be issued while this borrow lives (`load` takes `&mut self`).
        let bytes = unsafe {
            std::slice::from_raw_parts(self.pool.slot_ptr(s, self.expert_bytes), self.expert_bytes)
        };
        f(bytes);
        Ok(())
    }

    fn content(&self, slot: u32) -> Option<(u16, u16)> {
        self.content.get(slot as usize).copied().flatten()
    }

    fn stats(&mut self) -> PlaneStats {
        self.progress
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stats
    }
}

impl Drop for HostPlane {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
