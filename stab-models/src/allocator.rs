//! The memory allocator of stab's binaries and benchmarks: mimalloc, told to keep the
//! memory it frees.
//!
//! A MiniLM training step (batch 16 × 128) allocates and frees about a gigabyte of
//! activations and gradients, in buffers of up to 12.6 MB. The system allocator returns
//! such buffers to the kernel at once, and mimalloc by default once they have been free for
//! 1 s; the next step then takes them back as fresh pages, which the kernel zeroes on the
//! first touch. Measured on a 2-core AMD EPYC (Zen 4): about 25,000 page faults per step,
//! with the kernel's `clear_page` at 15–22% of the step's profile. Keeping freed memory
//! ([`keep_freed_memory`]) makes the steady state fault-free: 4,100 faults over a whole
//! 10-step benchmark instead of 278,000, and the step 2.1 s → 1.55 s. The price is that a
//! process keeps its peak footprint until it exits, which for a training run is what it
//! needs at its next step anyway.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: stab_models::Allocator = stab_models::Allocator;
//!
//! fn main() {
//!     stab_models::allocator::keep_freed_memory();
//!     // …
//! }
//! ```

/// The global allocator type to declare in a binary (`#[global_allocator]`).
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` (v3's `mi_option_e`; the Rust bindings name only the
/// stable options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tell mimalloc never to return freed memory to the OS (purge delay −1), unless the
/// user set `MIMALLOC_PURGE_DELAY` in the environment. Harmless when mimalloc is linked
/// but not the global allocator. Call it first thing in `main`.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the linked mimalloc; no pointers involved.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads one integer option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // Option 15 is the purge delay: its default is 1000 ms (src/options.c of v3; no
        // other option defaults to 1000); no other test of this binary sets it.
        assert_eq!(get(), 1000, "mimalloc's option 15 is not the purge delay");
        keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
