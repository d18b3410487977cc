//! `--device cpu|cuda:N`: the burn device runs train on.
//!
//! `cpu` is burn's flex backend (with the host fast paths for GELU and dropout masks).
//! `cuda:N` is burn's CUDA backend, compiled only with `--features cuda` (its build
//! downloads LLVM, so it is never built here); on it every host fast path falls back to
//! its plain burn-tensor twin (`stab_models::is_host`).

use burn::tensor::Device;
use stab_core::InputError;

/// Parse a `--device` value.
pub fn parse(spec: &str) -> Result<Device, InputError> {
    if spec == "cpu" {
        return Ok(Device::flex());
    }
    if let Some(index) = spec.strip_prefix("cuda:") {
        let index: usize = index.parse().map_err(|_| {
            InputError::new(format!("bad device `{spec}`"))
                .key("--device")
                .hint("cuda:N with N a GPU index, e.g. cuda:0")
        })?;
        return cuda(index, spec);
    }
    Err(InputError::new(format!("unknown device `{spec}`"))
        .key("--device")
        .hint("use cpu, or cuda:N in a build with --features cuda"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize, _spec: &str) -> Result<Device, InputError> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize, spec: &str) -> Result<Device, InputError> {
    Err(InputError::new(format!("device `{spec}` is not available in this build"))
        .key("--device")
        .hint("rebuild with `cargo build --release -p stab-cli --features cuda` (needs network for LLVM), or use --device cpu"))
}
