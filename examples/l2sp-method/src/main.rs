//! `stab-l2sp`: the `stab` command with the L2-SP plugin linked in.

// Naming the plugin crate links it, and with it its `inventory` registration.
use l2sp_method as _;

/// The same allocator as `stab` (optional; with it, and `stab_cli::main` telling it to
/// keep freed memory, a training step is about 1.4× faster).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stab_cli::main()
}
