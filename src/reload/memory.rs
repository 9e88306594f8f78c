//! Keeping one-off loads (a GeoIP database walk) from staying resident: how the allocator
//! places large allocations, and handing freed heap pages back to the system.

/// Maps every allocation of 1 MiB or more on its own, so the walk's large scratch vectors go
/// back to the system when freed instead of leaving holes in the heap (glibc would otherwise
/// raise this threshold to 32 MiB after the database's bytes are freed).
pub(crate) fn large_allocations_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Hands the heap pages freed after a GeoIP walk back to the system: the walk's scratch
/// (the file's bytes, decoded records, unflattened ranges) is several times the size of
/// what stays, and the allocator would otherwise keep it resident.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
