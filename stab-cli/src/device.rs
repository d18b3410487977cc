//! `--device cpu|wgpu|wgpu:N|cuda:N`: the burn device a command computes on.
//!
//! * `cpu` is burn's flex backend, with stab's host kernels (`stab_models::KernelPath`).
//! * `wgpu` is burn's wgpu backend (Vulkan on Linux, Metal on macOS, DX12 on Windows) on
//!   the adapter wgpu prefers; `wgpu:N` is the N-th adapter of `stab list devices`. Built
//!   with the `wgpu` feature (on by default); Mesa's lavapipe is a software Vulkan adapter
//!   on the CPU.
//! * `cuda:N` is burn's CUDA backend, built with `--features cuda` (its build downloads
//!   LLVM).
//!
//! On every device but `cpu` the host kernels give way to their burn-tensor twins, and the
//! run's noise (dropout, method noise) is still drawn on the host, so it is the same.

use burn::tensor::{DType, Device, Tensor, TensorData};
use stab_core::InputError;

/// A parsed `--device`: the device and the name records and errors use.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub device: Device,
    pub name: String,
}

/// Parse a `--device` value.
pub fn parse(spec: &str) -> Result<Chosen, InputError> {
    let device = if spec == "cpu" {
        Device::flex()
    } else if spec == "wgpu" {
        wgpu(None, spec)?
    } else if let Some(index) = spec.strip_prefix("wgpu:") {
        wgpu(
            Some(index_of(
                index,
                spec,
                "wgpu:N with N an adapter of `stab list devices`, e.g. wgpu:0",
            )?),
            spec,
        )?
    } else if let Some(index) = spec.strip_prefix("cuda:") {
        cuda(
            index_of(index, spec, "cuda:N with N a GPU index, e.g. cuda:0")?,
            spec,
        )?
    } else {
        return Err(InputError::new(format!("unknown device `{spec}`"))
            .key("--device")
            .hint(format!("use {}", available().join(", "))));
    };
    Ok(Chosen {
        device,
        name: spec.to_string(),
    })
}

fn index_of(text: &str, spec: &str, hint: &str) -> Result<usize, InputError> {
    text.parse().map_err(|_| {
        InputError::new(format!("bad device `{spec}`"))
            .key("--device")
            .hint(hint)
    })
}

/// The device forms this build accepts.
fn available() -> Vec<&'static str> {
    let mut forms = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        forms.extend(["wgpu", "wgpu:N"]);
    } else {
        forms.push("wgpu (in a build with the wgpu feature, the default)");
    }
    if cfg!(feature = "cuda") {
        forms.push("cuda:N");
    } else {
        forms.push("cuda:N (in a build with --features cuda)");
    }
    forms
}

/// What the device is, for benchmark output: the CPU model, or the adapter's name.
pub fn describe(chosen: &Chosen) -> String {
    if stab_models::is_host(&chosen.device) {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        return format!("{model}, {} threads", rayon::current_num_threads());
    }
    adapter_name(&chosen.device)
}

#[cfg(feature = "wgpu")]
fn adapter_name(device: &Device) -> String {
    device
        .identity()
        .map_or_else(|| format!("{device:?}"), |id| id.name)
}

#[cfg(not(feature = "wgpu"))]
fn adapter_name(device: &Device) -> String {
    format!("{device:?}")
}

/// Whether `device` computes in f64: it says it supports the type, and a difference that
/// f32 cannot hold, (1 + 2⁻⁴⁰) − 1, comes back exact.
pub fn has_f64(device: &Device) -> bool {
    if !device.supports_dtype(DType::F64) {
        return false;
    }
    let tiny = 2f64.powi(-40);
    let x = Tensor::<1>::from_data(TensorData::new(vec![1.0 + tiny], [1]), device).cast(DType::F64);
    let got = x
        .sub_scalar(1.0)
        .into_data()
        .convert::<f64>()
        .try_to_vec::<f64>();
    got.is_ok_and(|v| v[0] == tiny)
}

/// One line per device this build can use, for `stab list devices`.
pub fn list() -> Vec<String> {
    let mut lines = vec![format!(
        "  {:<8} {:<40} {:<14} f64",
        "cpu",
        format!(
            "host CPU, {} threads (burn flex)",
            rayon::current_num_threads()
        ),
        "cpu"
    )];
    lines.extend(wgpu_lines());
    if cfg!(feature = "cuda") {
        lines.push("  cuda:N   CUDA GPUs (burn cuda; index as nvidia-smi lists them)".into());
    }
    lines
}

#[cfg(feature = "wgpu")]
fn wgpu_adapters() -> Vec<Device> {
    Device::enumerate(burn::tensor::DeviceType::Wgpu).into_vec()
}

#[cfg(feature = "wgpu")]
fn wgpu(index: Option<usize>, spec: &str) -> Result<Device, InputError> {
    let adapters = wgpu_adapters();
    let not_found = || {
        InputError::new(format!("device `{spec}`: no such wgpu adapter"))
            .key("--device")
            .hint(format!(
                "this machine has {} wgpu adapter(s) (`stab list devices`); on Linux without a GPU, install Mesa's lavapipe (apt install mesa-vulkan-drivers libvulkan1)",
                adapters.len()
            ))
    };
    match index {
        None if adapters.is_empty() => Err(not_found()),
        None => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        Some(i) => adapters.get(i).cloned().ok_or_else(not_found),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_lines() -> Vec<String> {
    let adapters = wgpu_adapters();
    if adapters.is_empty() {
        return vec![
            "  (no wgpu adapter found; on Linux install mesa-vulkan-drivers for a software one)"
                .into(),
        ];
    }
    adapters
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let name = adapter_name(d);
            format!(
                "  {:<8} {:<40} {:<14} {}",
                format!("wgpu:{i}"),
                name,
                adapter_type(d),
                if has_f64(d) { "f64" } else { "no f64" }
            )
        })
        .collect()
}

/// The adapter's type as wgpu classifies it, from the device's own description.
#[cfg(feature = "wgpu")]
fn adapter_type(device: &Device) -> &'static str {
    let text = format!("{device:?}");
    [
        ("DiscreteGpu", "discrete GPU"),
        ("IntegratedGpu", "integrated GPU"),
        ("VirtualGpu", "virtual GPU"),
        ("Cpu", "cpu (software)"),
    ]
    .into_iter()
    .find(|(kind, _)| text.contains(kind))
    .map_or("other", |(_, label)| label)
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: Option<usize>, spec: &str) -> Result<Device, InputError> {
    Err(InputError::new(format!("device `{spec}` is not available in this build"))
        .key("--device")
        .hint("this stab was built with --no-default-features; rebuild with `cargo build --release -p stab-cli` (wgpu: Vulkan, Metal, DX12; builds offline), or use --device cpu"))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_lines() -> Vec<String> {
    vec!["  (wgpu: not in this build, made with --no-default-features; rebuild without it)".into()]
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
