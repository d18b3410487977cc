//! Which implementation a computation takes on a device, and how often it reads back.
//!
//! stab has host kernels for the CPU (fused LayerNorm, GELU and masked softmax, the
//! gradient norm read on the host) and runs burn's own tensor operations, their twins,
//! on every other device. [`KernelPath::of`] is the one place that choice is made.
//!
//! On an accelerator every read of a tensor to the host waits for the device queue to
//! drain. [`HostReads`] counts the reads stab makes (the loss a step logs, scores), per
//! thread, so a test can hold a training update to its budget.

use std::cell::Cell;

use burn::tensor::kind::Basic;
use burn::tensor::{Device, Tensor, TensorData};

/// The implementation a device takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// burn's flex CPU backend: the host kernels.
    Host,
    /// Any other device (wgpu, CUDA): burn's tensor operations, nothing read back.
    Accelerator,
}

impl KernelPath {
    /// The path of `device` (with or without autodiff).
    pub fn of(device: &Device) -> Self {
        if device.clone().without_autodiff() == Device::flex() {
            Self::Host
        } else {
            Self::Accelerator
        }
    }
}

/// Whether `device` takes the host kernels ([`KernelPath::Host`]).
pub fn is_host(device: &Device) -> bool {
    KernelPath::of(device) == KernelPath::Host
}

thread_local! {
    static READS: Cell<u64> = const { Cell::new(0) };
}

/// Reads from a device to the host made by stab on this thread.
pub struct HostReads;

impl HostReads {
    /// Reads so far on this thread.
    pub fn count() -> u64 {
        READS.with(Cell::get)
    }

    /// Read a one-element tensor as f64, counting the read.
    pub fn scalar<const D: usize>(t: Tensor<D>) -> f64 {
        READS.with(|r| r.set(r.get() + 1));
        t.into_scalar::<f64>()
    }

    /// Read a tensor of any kind (float, int, bool), counting the read.
    pub fn data<const D: usize, K: Basic>(t: Tensor<D, K>) -> TensorData {
        READS.with(|r| r.set(r.get() + 1));
        t.into_data()
    }

    /// Read a float tensor's values as f32, counting the read.
    pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        Self::data(t)
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 values")
    }
}
