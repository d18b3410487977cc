//! The `stab` binary: every built-in method, task and study (see [`stab_cli::main`]).

/// mimalloc keeps freed pages for reuse: the encoder's eval forward allocates fresh
/// activations every batch, and with the system allocator it spent much of its time in
/// page faults (`bench/`: eval forward 0.71–0.78 s → 0.40–0.42 s, MiniLM 16 × 128).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stab_cli::main()
}
