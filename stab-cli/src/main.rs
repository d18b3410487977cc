//! The `stab` binary: every built-in method, task and study (see [`stab_cli::main`]).

fn main() -> std::process::ExitCode {
    stab_cli::main()
}
