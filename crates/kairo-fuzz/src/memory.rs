//! The memory limit the fuzz targets run under: a global allocator over [`System`] that
//! refuses (returns null for) any single allocation above a per-allocation limit and any
//! allocation that would take the live heap above a total limit. A refused allocation makes
//! Rust abort the process (`memory allocation of N bytes failed`), so a decoder that
//! allocates from a declared size instead of from the bytes it was given fails the test run
//! instead of passing on a machine with enough memory. Before aborting, the input being
//! decoded on that thread (see [`case`]) is written to stderr.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest single allocation a decoder may make: 256 MiB.
pub const MAX_ALLOCATION: usize = 256 << 20;
/// Largest live heap of the whole test process (all targets together): 1 GiB.
pub const MAX_LIVE: usize = 1 << 30;

/// [`System`], refusing allocations beyond [`MAX_ALLOCATION`] each or [`MAX_LIVE`] in all.
pub struct MemoryLimit {
    live: AtomicUsize,
}

impl MemoryLimit {
    pub const fn new() -> Self {
        MemoryLimit { live: AtomicUsize::new(0) }
    }

    /// Bytes currently allocated through this allocator.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Account for `size` more bytes, or refuse them (returning the live bytes at the time).
    fn reserve(&self, size: usize) -> Result<(), usize> {
        if size > MAX_ALLOCATION {
            return Err(self.live());
        }
        let before = self.live.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > MAX_LIVE {
            self.live.fetch_sub(size, Ordering::Relaxed);
            return Err(before);
        }
        Ok(())
    }

    /// [`Self::reserve`], saying on stderr what was refused.
    fn admit(&self, size: usize) -> bool {
        match self.reserve(size) {
            Ok(()) => true,
            Err(live) => {
                refused(size, live);
                false
            }
        }
    }

    fn release(&self, size: usize) {
        self.live.fetch_sub(size, Ordering::Relaxed);
    }
}

impl Default for MemoryLimit {
    fn default() -> Self {
        MemoryLimit::new()
    }
}

// SAFETY: every call is forwarded to `System` with the caller's own layout and pointer; the
// only addition is bookkeeping of sizes and returning null (which `GlobalAlloc` allows) when a
// limit would be exceeded.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for MemoryLimit {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            self.release(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !self.admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            self.release(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) };
        self.release(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !self.reserve_growth(old, new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                self.release(new_size - old);
            }
        } else if new_size < old {
            self.release(old - new_size);
        }
        p
    }
}

impl MemoryLimit {
    /// Growth of an allocation from `old` to `new_size` bytes: the new size must be within the
    /// per-allocation limit, the growth within the total.
    fn reserve_growth(&self, old: usize, new_size: usize) -> bool {
        if new_size > MAX_ALLOCATION {
            refused(new_size, self.live());
            return false;
        }
        self.admit(new_size - old)
    }
}

thread_local! {
    /// The input this thread is decoding, written out if an allocation is refused.
    static CASE: RefCell<(&'static str, Vec<u8>)> = const { RefCell::new(("", Vec::new())) };
}

/// Record `input` as what `target` decodes next on this thread, so that an abort caused by a
/// refused allocation shows which input caused it.
pub fn case(target: &'static str, input: &[u8]) {
    CASE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.0 = target;
            c.1.clear();
            c.1.extend_from_slice(input);
        }
    });
}

/// Say on stderr what was refused and which input was being decoded. Formats into stderr
/// directly: nothing here allocates (a nested allocation would only re-enter the allocator).
fn refused(size: usize, live: usize) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "kairo-fuzz: refused an allocation of {size} bytes with {live} bytes live \
         (limits: {MAX_ALLOCATION} per allocation, {MAX_LIVE} in all)"
    );
    let _ = CASE.try_with(|c| {
        if let Ok(c) = c.try_borrow() {
            let shown = &c.1[..c.1.len().min(1024)];
            let _ = writeln!(
                err,
                "kairo-fuzz: target `{}`, input ({} bytes, first {} shown):\n{}",
                c.0,
                c.1.len(),
                shown.len(),
                shown.escape_ascii()
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_allocation_and_in_all() {
        let m = MemoryLimit::new();
        assert_eq!(m.reserve(MAX_ALLOCATION), Ok(()));
        assert_eq!(m.reserve(MAX_ALLOCATION + 1), Err(MAX_ALLOCATION));
        assert_eq!(m.reserve(MAX_ALLOCATION), Ok(()));
        assert_eq!(m.reserve(MAX_ALLOCATION), Ok(()));
        assert_eq!(m.reserve(MAX_ALLOCATION), Ok(()));
        assert_eq!(m.live(), MAX_LIVE);
        assert_eq!(m.reserve(1), Err(MAX_LIVE));
        m.release(MAX_ALLOCATION);
        assert_eq!(m.reserve(1), Ok(()));
    }
}
