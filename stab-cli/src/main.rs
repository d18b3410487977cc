//! The `stab` binary: every built-in method, task and study (see [`stab_cli::main`]).

/// mimalloc, which `stab_cli::main` tells to keep freed memory for reuse: with the system
/// allocator the encoder spent much of its time in page faults (stab_models::allocator;
/// `bench/`: eval forward 0.71–0.78 s → 0.40 s, training step 2.1 s → 1.55 s, MiniLM 16 × 128).
#[global_allocator]
static ALLOCATOR: stab_models::Allocator = stab_models::Allocator;

fn main() -> std::process::ExitCode {
    stab_cli::main()
}
