//! `stab-l2sp`: the `stab` command with the L2-SP plugin linked in.

// Naming the plugin crate links it, and with it its `inventory` registration.
use l2sp_method as _;

/// The same allocator as `stab` (optional; it makes encoding about 1.5× faster).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stab_cli::main()
}
