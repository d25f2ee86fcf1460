//! [`CudaPlane`] (feature `cuda`): the store in page-locked host memory, the slots in device
//! memory, every load an async host-to-device copy on a dedicated copy stream, bracketed by two
//! events: the end event is the slot's readiness (queried, never blocking the compute stream,
//! which waits on it device-side before reading the slot back for the CPU compute).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice};
use cudarc::driver::{DriverError, result};

use super::{DataPlane, DataPlaneError, ExpertStore, PlaneStats};

fn cuda(e: DriverError) -> DataPlaneError {
    DataPlaneError::Cuda(format!("{e:?}"))
}

/// A load whose copy time is not yet counted: (start, end) timing events.
struct Timed {
    start: CudaEvent,
    end: CudaEvent,
}

/// Device slot pool filled from page-locked host memory by a copy stream.
pub struct CudaPlane {
    /// The device context (device 0).
    ctx: Arc<CudaContext>,
    /// The dedicated copy stream (host to device).
    copy: Arc<CudaStream>,
    /// The compute stream: waits on a slot's event before reading it.
    compute: Arc<CudaStream>,
    /// Every expert, page-locked, `experts * expert_bytes` bytes in store order.
    _host: PinnedHostSlice<u8>,
    /// Base of `host` (stable for its lifetime).
    host_ptr: *const u8,
    /// The slots, `slots * expert_bytes` bytes.
    _pool: CudaSlice<u8>,
    /// Device address of `pool`.
    pool_ptr: u64,
    /// Where a slot is read back for the CPU compute (page-locked, one expert).
    _staging: PinnedHostSlice<u8>,
    /// Base of `staging`.
    staging_ptr: *mut u8,
    /// Per slot, the end event of its last load.
    ready: Vec<Option<CudaEvent>>,
    /// (layer, expert) of each slot's last load.
    content: Vec<Option<(u16, u16)>>,
    /// Loads whose time is not yet counted, in issue order.
    timed: std::collections::VecDeque<(Timed, u64)>,
    /// Store shape (for expert indices).
    store: ExpertStore,
    /// Bytes of one expert.
    expert_bytes: usize,
    /// Counters of completed copies.
    stats: PlaneStats,
}

// SAFETY: the raw pointers point into allocations owned by the plane (page-locked host memory),
// used only through `&mut self` or while no copy into the same bytes is pending.
unsafe impl Send for CudaPlane {}

impl CudaPlane {
    /// Device 0, a pool of `slots` empty slots, the store copied once into page-locked memory.
    pub fn new(store: ExpertStore, slots: usize) -> Result<CudaPlane, DataPlaneError> {
        // SAFETY: probes for the driver library by name; `CudaContext::new` panics without it.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(DataPlaneError::NoDriver);
        }
        let ctx = CudaContext::new(0).map_err(cuda)?;
        // The plane orders its own streams with explicit events.
        // SAFETY: no CudaSlice is shared between streams without an event in this module.
        unsafe { ctx.disable_event_tracking() };
        let copy = ctx.new_stream().map_err(cuda)?;
        let compute = ctx.new_stream().map_err(cuda)?;
        let eb = store.expert_bytes();
        let n = store.layers() * store.experts();
        // SAFETY: filled right below before any use.
        let mut host = unsafe { ctx.alloc_pinned_with_flags::<u8>(n * eb, 0) }.map_err(cuda)?;
        {
            let h = host.as_mut_slice().map_err(cuda)?;
            for i in 0..n {
                store.copy_into(i, &mut h[i * eb..(i + 1) * eb]);
            }
        }
        let host_ptr = host.as_ptr().map_err(cuda)?;
        // SAFETY: slots are written by loads before they are read (reads check readiness).
        let pool = unsafe { copy.alloc::<u8>(slots * eb) }.map_err(cuda)?;
        let pool_ptr = pool.device_ptr(&copy).0;
        // SAFETY: written by a device copy before `f` sees it.
        let mut staging = unsafe { ctx.alloc_pinned_with_flags::<u8>(eb, 0) }.map_err(cuda)?;
        let staging_ptr = staging.as_mut_ptr().map_err(cuda)?;
        Ok(CudaPlane {
            ctx,
            copy,
            compute,
            _host: host,
            host_ptr,
            _pool: pool,
            pool_ptr,
            _staging: staging,
            staging_ptr,
            ready: (0..slots).map(|_| None).collect(),
            content: vec![None; slots],
            timed: Default::default(),
            store,
            expert_bytes: eb,
            stats: PlaneStats::default(),
        })
    }

    /// The device's name.
    pub fn device_name(&self) -> Result<String, DataPlaneError> {
        self.ctx.name().map_err(cuda)
    }

    fn check(&self, slot: u32) -> Result<usize, DataPlaneError> {
        let s = slot as usize;
        if s >= self.ready.len() {
            return Err(DataPlaneError::Slot {
                slot,
                slots: self.ready.len(),
            });
        }
        Ok(s)
    }

    /// Counts the copies that completed (their events' elapsed time).
    fn harvest(&mut self) -> Result<(), DataPlaneError> {
        while let Some((t, bytes)) = self.timed.front() {
            if !t.end.try_is_complete().map_err(cuda)? {
                break;
            }
            let ms = t.start.elapsed_ms(&t.end).map_err(cuda)?;
            self.stats.copies += 1;
            self.stats.bytes += *bytes;
            self.stats.busy_s += ms as f64 / 1e3;
            self.timed.pop_front();
        }
        Ok(())
    }
}

impl DataPlane for CudaPlane {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn slots(&self) -> usize {
        self.ready.len()
    }

    fn expert_bytes(&self) -> usize {
        self.expert_bytes
    }

    fn load(&mut self, slot: u32, layer: u16, expert: u16) -> Result<(), DataPlaneError> {
        let s = self.check(slot)?;
        let i = self.store.index(layer, expert)?;
        let eb = self.expert_bytes;
        self.ctx.bind_to_thread().map_err(cuda)?;
        let timing = Some(CUevent_flags::CU_EVENT_DEFAULT);
        let start = self.copy.record_event(timing).map_err(cuda)?;
        // SAFETY: source: expert i inside the page-locked store, alive as long as the plane;
        // destination: slot s inside the device pool. Reads of slot s wait on the end event.
        unsafe {
            let src = std::slice::from_raw_parts(self.host_ptr.add(i * eb), eb);
            result::memcpy_htod_async(self.pool_ptr + (s * eb) as u64, src, self.copy.cu_stream())
        }
        .map_err(cuda)?;
        let end = self.copy.record_event(timing).map_err(cuda)?;
        let ready = self.copy.record_event(None).map_err(cuda)?;
        self.timed.push_back((Timed { start, end }, eb as u64));
        self.ready[s] = Some(ready);
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
        match (&self.content[s], &self.ready[s]) {
            (Some(_), Some(e)) => e.try_is_complete().map_err(cuda),
            _ => Ok(false),
        }
    }

    fn wait(&mut self, slot: u32) -> Result<Duration, DataPlaneError> {
        let s = self.check(slot)?;
        let t0 = Instant::now();
        match (&self.content[s], &self.ready[s]) {
            (Some(_), Some(e)) => e.synchronize().map_err(cuda)?,
            _ => return Err(DataPlaneError::NotReady { slot, why: "empty" }),
        }
        let waited = t0.elapsed();
        self.harvest()?;
        Ok(waited)
    }

    fn wait_all(&mut self) -> Result<Duration, DataPlaneError> {
        let t0 = Instant::now();
        self.copy.synchronize().map_err(cuda)?;
        let waited = t0.elapsed();
        self.harvest()?;
        Ok(waited)
    }

    fn read(&mut self, slot: u32, f: &mut dyn FnMut(&[u8])) -> Result<(), DataPlaneError> {
        let s = self.check(slot)?;
        let Some(ev) = (match &self.content[s] {
            Some(_) => self.ready[s].as_ref(),
            None => None,
        }) else {
            return Err(DataPlaneError::NotReady { slot, why: "empty" });
        };
        if !ev.try_is_complete().map_err(cuda)? {
            return Err(DataPlaneError::NotReady {
                slot,
                why: "loading",
            });
        }
        let eb = self.expert_bytes;
        self.ctx.bind_to_thread().map_err(cuda)?;
        // The compute stream orders itself after the slot's load (device-side), then reads it.
        self.compute.wait(ev).map_err(cuda)?;
        // SAFETY: staging is page-locked, `eb` bytes, not in use by another copy (the compute
        // stream is synchronised before `f` reads it and before the next read).
        unsafe {
            let dst = std::slice::from_raw_parts_mut(self.staging_ptr, eb);
            result::memcpy_dtoh_async(
                dst,
                self.pool_ptr + (s * eb) as u64,
                self.compute.cu_stream(),
            )
            .map_err(cuda)?;
            self.compute.synchronize().map_err(cuda)?;
            f(std::slice::from_raw_parts(self.staging_ptr, eb));
        }
        Ok(())
    }

    fn content(&self, slot: u32) -> Option<(u16, u16)> {
        self.content.get(slot as usize).copied().flatten()
    }

    fn stats(&mut self) -> PlaneStats {
        let _ = self.harvest();
        self.stats
    }
}

impl Drop for CudaPlane {
    fn drop(&mut self) {
        let _ = self.copy.synchronize();
        let _ = self.compute.synchronize();
    }
}
