//! Per-token maps on [B, T, D] computed as one [B·T, D] matrix.

use burn::tensor::Tensor;

/// `f` applied to [B, T, in] as one [B·T, in] matrix, the result back as [B, T, out] (the
/// shape of every per-token linear map: see `encoder::dense`).
pub(crate) fn on_rows(x: Tensor<3>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = f(x.reshape([b * t, d]));
    let n = y.dims()[1];
    y.reshape([b, t, n])
}
