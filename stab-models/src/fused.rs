//! Fused training kernels for the host CPU: LayerNorm, GELU and masked softmax as single
//! operations with hand-written backward passes.
//!
//! burn differentiates these three as chains of element-wise tensor operations: its
//! LayerNorm is eight operations forward (mean, centre, square, mean, add ε, √, divide,
//! scale and shift) and about twice that backward, each a full pass over the activations
//! with a fresh buffer; softmax over the [B, heads, T, T] attention scores is five. Here each
//! is one pass forward and one pass backward, through burn's backend-extension mechanism
//! (`#[backend_extension]`): a Flex implementation of the forward, and an `Autodiff<Flex>`
//! implementation that registers the backward with burn's graph, as burn's own fused
//! operations (batch norm, linear) do.
//!
//! * LayerNorm (Ba et al. 2016), per row of d values: μ, σ² the mean and (biased) variance,
//!   r = 1/√(σ² + ε), x̂ = (x − μ)·r, y = γ ⊙ x̂ + β. Backward, with g = ∂L/∂y:
//!   ∂L/∂β = Σ_rows g, ∂L/∂γ = Σ_rows g ⊙ x̂, and with h = γ ⊙ g,
//!   ∂L/∂x = r·(h − mean(h) − x̂·mean(h ⊙ x̂)).
//! * GELU(x) = x·Φ(x), ∂/∂x = Φ(x) + x·φ(x) (the kernels of [`crate::activation`]).
//! * Masked softmax over the last axis of attention scores S [B, heads, Tq, T] with the
//!   additive key mask m [B, T] and scale s: p = softmax(s·S + m). Backward:
//!   ∂L/∂S = s·p ⊙ (g − Σ_j g_j p_j).
//!
//! The reductions run in fixed row blocks whose partial sums are added in block order,
//! so results do not depend on the thread count. Only f32 tensors on the host take these
//! kernels; other devices and dtypes use burn's own operations (see [`layer_norm`],
//! [`gelu`], [`masked_softmax`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::nn::LayerNorm;
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use crate::activation::{exp16, gelu16};
use crate::placement::is_host;
use crate::simd::multiversion;

const LANES: usize = 16;
/// Rows per block of the parameter-gradient reductions (fixed: thread-count independent).
const ROW_BLOCK: usize = 64;

/// The fused operations as a burn backend extension.
#[backend_extension(Autodiff, Flex)]
pub trait FusedOps: Backend {
    /// LayerNorm over the last axis.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
    /// Exact GELU.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// softmax(scale·scores + mask) over the last axis; `mask` is [B, T], added to every
    /// row of batch b (scores [B, heads, Tq, T]), or [B, Tm, T] with Tm dividing Tq: row q
    /// of every head of batch b gets mask row q mod Tm (a decoder's causal mask, Tm = T;
    /// grouped-query rows stacked as [B, kv, g·T, T]).
    fn fused_masked_softmax(
        scores: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
}

pub(crate) fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

pub(crate) fn tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(burn::tensor::TensorData::new(data, shape))
}

/// `t` as a contiguous f32 tensor that alone owns exactly its elements, so that a kernel may
/// write its result over them: `t` itself when it already is one (an intermediate nothing
/// else holds: the usual case in evaluation, and for incoming gradients), else a copy. This
/// saves the zeroed output buffer and a pass over memory per fused operation.
fn writable(t: FlexTensor) -> FlexTensor {
    // A strided input is copied here once; that copy is contiguous and owned alone.
    let t = contiguous(t);
    let n = t.layout().shape().num_elements();
    let whole = t.layout().start_offset() == 0 && t.storage::<f32>().len() == n;
    if whole && t.is_unique() {
        return t;
    }
    let shape = t.layout().shape().clone();
    tensor(values(&t).to_vec(), shape)
}

/// The elements of a tensor made by [`writable`].
fn values_mut(t: &mut FlexTensor) -> &mut [f32] {
    t.try_storage_mut::<f32>()
        .expect("a uniquely owned f32 tensor (see `writable`)")
}

/// Fixed-order reduction of 16 lane sums plus a tail (deterministic).
#[inline(always)]
fn reduce16(mut acc: [f32; LANES], tail: f32) -> f32 {
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0] + tail
}

/// Σ_j a_j·b_j in 16 lanes (vectorised, deterministic).
#[inline(always)]
fn dot16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += xa[l] * xb[l];
        }
    }
    reduce16(acc, tail)
}

/// Σ_j a_j in 16 lanes.
#[inline(always)]
fn sum16(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let c = a.chunks_exact(LANES);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    reduce16(acc, tail)
}

/// Σ_j (a_j − m)² in 16 lanes.
#[inline(always)]
fn centred_squares16(a: &[f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let c = a.chunks_exact(LANES);
    let tail: f32 = c.remainder().iter().map(|x| (x - m) * (x - m)).sum();
    for x in c {
        for l in 0..LANES {
            let t = x[l] - m;
            acc[l] += t * t;
        }
    }
    reduce16(acc, tail)
}

/// LayerNorm forward over `x` in place (x ← y); returns (μ per row, r per row).
fn layer_norm_forward(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let rows = x.len() / d;
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    x.par_chunks_mut(d)
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .with_min_len(16)
        .for_each(|(row, (m, s))| (*m, *s) = layer_norm_row(row, gamma, beta, eps));
    (mean, rstd)
}

multiversion! {
    /// One row of the LayerNorm forward, in place; returns (μ, r).
    fn layer_norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64) -> (f32, f32) {
        let d = row.len();
        let mu = sum16(row) / d as f32;
        let var = centred_squares16(row, mu) / d as f32;
        let inv = 1.0 / ((var as f64 + eps).sqrt() as f32);
        for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mu) * inv * g + b;
        }
        (mu, inv)
    }
}

/// LayerNorm backward: (∂x, ∂γ, ∂β).
fn layer_norm_backward(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    g: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0f32; x.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(d * ROW_BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let mut dgamma = vec![0f32; d];
            let mut dbeta = vec![0f32; d];
            let rows = b * ROW_BLOCK..b * ROW_BLOCK + block.len() / d;
            layer_norm_backward_rows(
                &x[rows.start * d..rows.end * d],
                &g[rows.start * d..rows.end * d],
                gamma,
                &mean[rows.clone()],
                &rstd[rows],
                block,
                &mut dgamma,
                &mut dbeta,
            );
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![0f32; d];
    let mut dbeta = vec![0f32; d];
    for (pg, pb) in &partials {
        for j in 0..d {
            dgamma[j] += pg[j];
            dbeta[j] += pb[j];
        }
    }
    (dx, dgamma, dbeta)
}

multiversion! {
    /// LayerNorm backward over consecutive rows: writes ∂x, adds to ∂γ and ∂β.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_backward_rows(
        x: &[f32],
        g: &[f32],
        gamma: &[f32],
        mean: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) {
        let d = gamma.len();
        let mut h = vec![0f32; d];
        let mut xhat = vec![0f32; d];
        for (((xr, gr), dxr), (&mu, &inv)) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
            .zip(mean.iter().zip(rstd))
        {
            for (((hj, xh), (&xj, &gj)), &gam) in
                h.iter_mut().zip(xhat.iter_mut()).zip(xr.iter().zip(gr)).zip(gamma)
            {
                *xh = (xj - mu) * inv;
                *hj = gam * gj;
            }
            let a = sum16(&h) / d as f32;
            let c = dot16(&h, &xhat) / d as f32;
            for (((o, &hj), &xh), ((dg, db), &gj)) in dxr
                .iter_mut()
                .zip(&h)
                .zip(&xhat)
                .zip(dgamma.iter_mut().zip(dbeta.iter_mut()).zip(gr))
            {
                *o = inv * (hj - a - xh * c);
                *dg += gj * xh;
                *db += gj;
            }
        }
    }
}

/// Elements per parallel task of the GELU kernels.
const GELU_CHUNK: usize = 1 << 14;

/// x ← GELU(x).
fn gelu_values(x: &mut [f32]) {
    x.par_chunks_mut(GELU_CHUNK).for_each(gelu_values_chunk);
}

/// g ← g ⊙ GELU'(x): ∂L/∂x from g = ∂L/∂GELU(x).
fn gelu_grads(x: &[f32], g: &mut [f32]) {
    g.par_chunks_mut(GELU_CHUNK)
        .zip(x.par_chunks(GELU_CHUNK))
        .for_each(|(gc, xc)| gelu_grads_chunk(xc, gc));
}

multiversion! {
    fn gelu_values_chunk(xs: &mut [f32]) {
        for xl in xs.chunks_mut(LANES) {
            let mut lane = [0f32; LANES];
            lane[..xl.len()].copy_from_slice(xl);
            let (value, _) = gelu16(lane, false);
            xl.copy_from_slice(&value[..xl.len()]);
        }
    }
}

multiversion! {
    fn gelu_grads_chunk(xs: &[f32], gs: &mut [f32]) {
        for (xl, gl) in xs.chunks(LANES).zip(gs.chunks_mut(LANES)) {
            let mut lane = [0f32; LANES];
            lane[..xl.len()].copy_from_slice(xl);
            let (_, slope) = gelu16(lane, true);
            for (gv, &sl) in gl.iter_mut().zip(&slope) {
                *gv *= sl;
            }
        }
    }
}

/// S ← softmax(scale·S + m) per row of `t` values, in place; row r belongs to batch
/// r / rows_per_batch and reads mask row (r / rows_per_batch)·mask_rows + r mod mask_rows.
fn masked_softmax_forward(
    scores: &mut [f32],
    mask: &[f32],
    t: usize,
    (rows_per_batch, mask_rows): (usize, usize),
    scale: f32,
) {
    scores
        .par_chunks_mut(t)
        .enumerate()
        .with_min_len(64)
        .for_each(|(r, row)| {
            let m = (r / rows_per_batch) * mask_rows + r % mask_rows;
            softmax_row(row, &mask[m * t..][..t], scale)
        });
}

multiversion! {
    /// row ← softmax(scale·row + m). The maximum and the sum are taken in 16 lanes (the
    /// maximum is exact in any order; the sum adds in [`sum16`]'s order, lanes over whole
    /// blocks then the tail, during the exponential pass).
    pub(crate) fn softmax_row(row: &mut [f32], mr: &[f32], scale: f32) {
        for (v, &m) in row.iter_mut().zip(mr) {
            *v = *v * scale + m;
        }
        let max = max16(row);
        let (mut acc, mut tail) = ([0f32; LANES], 0f32);
        let mut blocks = row.chunks_exact_mut(LANES);
        for block in &mut blocks {
            let e = shifted_exp16(block, max);
            block.copy_from_slice(&e);
            for l in 0..LANES {
                acc[l] += e[l];
            }
        }
        let rest = blocks.into_remainder();
        if !rest.is_empty() {
            let e = shifted_exp16(rest, max);
            for (v, &x) in rest.iter_mut().zip(&e) {
                *v = x;
                tail += x;
            }
        }
        let inv = 1.0 / reduce16(acc, tail);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// max_j a_j in 16 lanes (f32::MIN for an empty slice).
#[inline(always)]
fn max16(a: &[f32]) -> f32 {
    let mut acc = [f32::MIN; LANES];
    let c = a.chunks_exact(LANES);
    let tail = c.remainder().iter().copied().fold(f32::MIN, f32::max);
    for x in c {
        for l in 0..LANES {
            acc[l] = acc[l].max(x[l]);
        }
    }
    acc.into_iter().fold(tail, f32::max)
}

/// e^(v − max) for up to 16 values; 0 below e^−87 (masked keys), where the exact value
/// underflows f32, as expf gives.
#[inline(always)]
fn shifted_exp16(block: &[f32], max: f32) -> [f32; LANES] {
    let mut lane = [0f32; LANES];
    for (l, v) in block.iter().enumerate() {
        lane[l] = v - max;
    }
    let mut e = exp16(lane);
    // Branch-free (a select per lane, which LLVM keeps in vector registers): the bits of
    // e where v − max ≥ −87, else +0.
    for l in 0..LANES {
        let keep = if lane[l] < -87.0 { 0 } else { u32::MAX };
        e[l] = f32::from_bits(e[l].to_bits() & keep);
    }
    e
}

/// g ← ∂L/∂S = scale·p ⊙ (g − Σ_j g_j p_j) per row, in place over g = ∂L/∂p.
fn masked_softmax_backward(p: &[f32], g: &mut [f32], t: usize, scale: f32) {
    g.par_chunks_mut(t)
        .zip(p.par_chunks(t))
        .with_min_len(64)
        .for_each(|(gr, pr)| softmax_backward_row(pr, gr, scale));
}

multiversion! {
    pub(crate) fn softmax_backward_row(pr: &[f32], gr: &mut [f32], scale: f32) {
        let dot = dot16(gr, pr);
        for (g, &p) in gr.iter_mut().zip(pr) {
            *g = scale * p * (*g - dot);
        }
    }
}

fn rows_per_batch(scores: &Shape, mask: &Shape) -> usize {
    let t = scores[scores.num_dims() - 1];
    scores.num_elements() / t / mask[0]
}

impl FusedOps for Flex {
    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let (mut y, gamma, beta) = (writable(x), contiguous(gamma), contiguous(beta));
        layer_norm_forward(values_mut(&mut y), values(&gamma), values(&beta), epsilon);
        y
    }

    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        let mut y = writable(x);
        gelu_values(values_mut(&mut y));
        y
    }

    fn fused_masked_softmax(scores: FlexTensor, mask: FlexTensor, scale: f64) -> FlexTensor {
        let (mut p, mask) = (writable(scores), contiguous(mask));
        let shape = p.layout().shape().clone();
        let t = shape[shape.num_dims() - 1];
        let m = mask.layout().shape().clone();
        let per = rows_per_batch(&shape, &m);
        let mask_rows = if m.num_dims() == 3 { m[1] } else { 1 };
        masked_softmax_forward(
            values_mut(&mut p),
            values(&mask),
            t,
            (per, mask_rows),
            scale as f32,
        );
        p
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    /// x, γ (checkpointed), μ and r per row.
    type State = (NodeId, NodeId, Vec<f32>, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let g = contiguous(grads.consume::<Flex>(&ops.node));
        let (x_id, gamma_id, mean, rstd) = ops.state;
        let x = contiguous(cp.retrieve_node_output::<FlexTensor>(x_id));
        let gamma = contiguous(cp.retrieve_node_output::<FlexTensor>(gamma_id));
        let shape = x.layout().shape().clone();
        let d = shape[shape.num_dims() - 1];
        let (dx, dgamma, dbeta) =
            layer_norm_backward(values(&x), values(&gamma), &mean, &rstd, values(&g));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, Shape::new([d])));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, Shape::new([d])));
        }
    }
}

#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = NodeId;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let mut g = writable(grads.consume::<Flex>(&ops.node));
        let x = contiguous(cp.retrieve_node_output::<FlexTensor>(ops.state));
        if let Some(node) = node_x {
            gelu_grads(values(&x), values_mut(&mut g));
            grads.register::<Flex>(node.id, g);
        }
    }
}

#[derive(Debug)]
struct MaskedSoftmaxBackward;

impl Backward<Flex, 1> for MaskedSoftmaxBackward {
    /// The output p and the scale.
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_scores] = ops.parents;
        let mut g = writable(grads.consume::<Flex>(&ops.node));
        let (p, scale) = ops.state;
        if let Some(node) = node_scores {
            let shape = p.layout().shape();
            let t = shape[shape.num_dims() - 1];
            masked_softmax_backward(values(&p), values_mut(&mut g), t, scale);
            grads.register::<Flex>(node.id, g);
        }
    }
}

impl<C: CheckpointStrategy> FusedOps for Autodiff<Flex, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let forward = |x: FlexTensor, gamma: FlexTensor, beta: FlexTensor| {
            let (mut y, gamma, beta) = (writable(x), contiguous(gamma), contiguous(beta));
            let (mean, rstd) =
                layer_norm_forward(values_mut(&mut y), values(&gamma), values(&beta), epsilon);
            (y, mean, rstd)
        };
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let gamma_id = prep.checkpoint(&gamma);
                let (y, mean, rstd) = forward(
                    x.primitive().clone(),
                    gamma.primitive().clone(),
                    beta.primitive().clone(),
                );
                prep.finish((x_id, gamma_id, mean, rstd), y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, _, _) = forward(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                );
                prep.finish(y)
            }
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                prep.finish(x_id, Flex::fused_gelu(x.primitive().clone()))
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_gelu(x.into_primitive())),
        }
    }

    fn fused_masked_softmax(
        scores: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        // The mask is a constant: its gradient is never needed.
        let mask = mask.into_primitive();
        match MaskedSoftmaxBackward
            .prepare::<C>([scores.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let p = Flex::fused_masked_softmax(scores.into_primitive(), mask, scale);
                prep.finish((p.clone(), scale as f32), p)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_masked_softmax(
                scores.into_primitive(),
                mask,
                scale,
            )),
        }
    }
}

/// Whether the fused kernels apply: an f32 tensor on the host.
fn fusable<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && is_host(&x.device())
}

/// LayerNorm with `epsilon` (burn keeps its own private): the fused kernel on the host in
/// f32, `LayerNorm::forward` elsewhere.
pub fn layer_norm<const D: usize>(ln: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    if !fusable(&x) {
        return ln.forward(x);
    }
    let gamma = ln.gamma.val();
    // A LayerNorm without a shift (ModernBERT) takes the kernel with β = 0, a constant.
    let beta = match ln.beta.as_ref() {
        Some(beta) => beta.val(),
        None => gamma.zeros_like().detach(),
    };
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// Exact GELU: the fused kernel on the host in f32, [`crate::activation::gelu`] elsewhere.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !fusable(&x) {
        return crate::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_gelu(x.into_dispatch()))
}

/// RMSNorm `x / √(mean(x²) + ε) · γ` over the last axis in one pass per row, for
/// inference on the host (f32, no autodiff); `None` elsewhere (the caller then uses
/// burn's operations, which also carry the gradient).
pub fn rms_norm_inference<const D: usize>(
    x: &Tensor<D>,
    gamma: &Tensor<1>,
    epsilon: f64,
) -> Option<Tensor<D>> {
    if !fusable(x) || x.device().is_autodiff() {
        return None;
    }
    let shape = x.shape();
    let d = shape[D - 1];
    let mut v: Vec<f32> = x.to_data().convert::<f32>().try_into_vec::<f32>().ok()?;
    let g: Vec<f32> = gamma
        .to_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .ok()?;
    v.par_chunks_mut(d).with_min_len(16).for_each(|row| {
        let r = 1.0 / ((dot16(row, row) / d as f32) as f64 + epsilon).sqrt() as f32;
        for (y, w) in row.iter_mut().zip(&g) {
            *y *= r * w;
        }
    });
    Some(Tensor::from_data(
        burn::tensor::TensorData::new(v, shape),
        &x.device(),
    ))
}

/// softmax(QKᵀ/√head_dim + mask) over the last axis, from the raw products QKᵀ
/// [B, heads, Tq, T] and the additive mask: [B, 1, 1, T] (a key mask) or [B, 1, Tq, T] (a
/// decoder's, one row per query). The fused kernel on the host in f32 (which multiplies
/// by 1/√head_dim), burn's operations elsewhere.
pub fn masked_softmax(scores: Tensor<4>, mask: Tensor<4>, head_dim: usize) -> Tensor<4> {
    let root = (head_dim as f64).sqrt();
    let [b, one, tm, t] = mask.dims();
    let tq = scores.dims()[2];
    if !fusable(&scores) || one != 1 || (tm != 1 && tm != tq) {
        return burn::tensor::activation::softmax(scores.div_scalar(root) + mask, 3);
    }
    let scale = 1.0 / root;
    Tensor::from_dispatch(<Dispatch as FusedOps>::fused_masked_softmax(
        scores.into_dispatch(),
        mask.reshape([b, tm, t]).into_dispatch(),
        scale,
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    pub(crate) fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// Each of `got` within `tol` (relative, floor 1) of `want`.
    pub(crate) fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "{what}[{i}]: fused {g} vs burn {w}"
            );
        }
    }

    /// A leaf copy of `x` (its own gradient) on the same device.
    pub(crate) fn leaf<const D: usize>(x: &Tensor<D>) -> Tensor<D> {
        Tensor::from_data(x.to_data(), &x.device()).require_grad()
    }

    #[test]
    fn layer_norm_matches_burn_in_value_and_every_gradient() {
        let dev = Device::flex().autodiff();
        let mut ln = LayerNormConfig::new(40).with_epsilon(1e-12).init(&dev);
        ln.gamma = Param::from_tensor(Tensor::random([40], Distribution::Normal(1.0, 0.3), &dev));
        ln.beta = Some(Param::from_tensor(Tensor::random(
            [40],
            Distribution::Normal(0.0, 0.3),
            &dev,
        )));
        // 210 rows: several row blocks of the parameter-gradient reduction.
        let x = Tensor::<3>::random([3, 70, 40], Distribution::Normal(0.5, 2.0), &dev);
        let w = Tensor::<3>::random([3, 70, 40], Distribution::Default, &dev);
        let (xa, xb) = (leaf(&x), leaf(&x));
        let ya = layer_norm(&ln, xa.clone(), 1e-12);
        let yb = ln.forward(xb.clone());
        assert_close(&vals(ya.clone()), &vals(yb.clone()), 1e-5, "y");
        let ga = (ya * w.clone()).sum().backward();
        let gb = (yb * w).sum().backward();
        let grad = |t: Tensor<3>, g| vals(t.grad(g).unwrap());
        assert_close(&grad(xa, &ga), &grad(xb, &gb), 1e-4, "dx");
        let gamma = ln.gamma.val();
        let beta = ln.beta.as_ref().unwrap().val();
        assert_close(
            &vals(gamma.grad(&ga).unwrap()),
            &vals(gamma.grad(&gb).unwrap()),
            1e-4,
            "dgamma",
        );
        assert_close(
            &vals(beta.grad(&ga).unwrap()),
            &vals(beta.grad(&gb).unwrap()),
            1e-4,
            "dbeta",
        );
    }

    #[test]
    fn gelu_matches_burn_in_value_and_gradient() {
        let dev = Device::flex().autodiff();
        let x = Tensor::<2>::random([37, 53], Distribution::Normal(0.0, 3.0), &dev);
        let w = Tensor::<2>::random([37, 53], Distribution::Default, &dev);
        let (xa, xb) = (leaf(&x), leaf(&x));
        let (ya, yb) = (gelu(xa.clone()), burn::tensor::activation::gelu(xb.clone()));
        assert_close(&vals(ya.clone()), &vals(yb.clone()), 2e-6, "gelu");
        let ga = (ya * w.clone()).sum().backward();
        let gb = (yb * w).sum().backward();
        assert_close(
            &vals(xa.grad(&ga).unwrap()),
            &vals(xb.grad(&gb).unwrap()),
            2e-5,
            "gelu'",
        );
    }

    /// The fused masked softmax of random scores [B, H, Tq, T] (head width 16) under
    /// `mask` against burn's operations: values within 1e-6, the scores' gradient (of a
    /// random weighting) within 1e-5. Returns the fused probabilities.
    fn softmax_against_burn(shape: [usize; 4], mask: Tensor<4>) -> Vec<f32> {
        let dev = mask.device();
        let s = Tensor::<4>::random(shape, Distribution::Normal(0.0, 8.0), &dev);
        let w = Tensor::<4>::random(shape, Distribution::Default, &dev);
        let (sa, sb) = (leaf(&s), leaf(&s));
        let pa = masked_softmax(sa.clone(), mask.clone(), 16);
        let pb = burn::tensor::activation::softmax(sb.clone().div_scalar(4.0) + mask, 3);
        let fused = vals(pa.clone());
        assert_close(&fused, &vals(pb.clone()), 1e-6, "p");
        let ga = (pa * w.clone()).sum().backward();
        let gb = (pb * w).sum().backward();
        assert_close(
            &vals(sa.grad(&ga).unwrap()),
            &vals(sb.grad(&gb).unwrap()),
            1e-5,
            "dS",
        );
        fused
    }

    #[test]
    fn masked_softmax_matches_burn_and_gives_masked_keys_zero() {
        let dev = Device::flex().autodiff();
        let (b, h, tq, t) = (2, 3, 5, 21);
        // Batch 0 sees every key, batch 1 the first 13.
        let mask: Vec<f32> = (0..b * t)
            .map(|i| if i >= t + 13 { f32::MIN } else { 0.0 })
            .collect();
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [b, 1, 1, t]), &dev);
        let fused = softmax_against_burn([b, h, tq, t], mask);
        for (i, &p) in fused.iter().enumerate() {
            if i >= h * tq * t && i % t >= 13 {
                assert_eq!(p, 0.0, "masked key {i}");
            }
        }
    }

    /// A decoder's mask, one row per query ([B, 1, Tq, T]: causal, with a left pad whose
    /// row closes every key), on the fused kernel: burn's value and gradient.
    #[test]
    fn masked_softmax_takes_a_mask_row_per_query() {
        let dev = Device::flex().autodiff();
        let (b, h, t) = (2, 3, 9);
        let mut mask = vec![f32::MIN; b * t * t];
        for r in 0..b {
            for i in 0..t {
                for j in 0..=i {
                    // Row 1 is left-padded by two tokens.
                    if r == 0 || j >= 2 {
                        mask[(r * t + i) * t + j] = 0.0;
                    }
                }
            }
        }
        let mask = Tensor::<4>::from_data(TensorData::new(mask, [b, 1, t, t]), &dev);
        let fused = softmax_against_burn([b, h, t, t], mask);
        assert!(fused.iter().all(|p| p.is_finite()));
    }

    #[test]
    fn reductions_do_not_depend_on_the_thread_count() {
        let x: Vec<f32> = (0..300 * 48)
            .map(|i| ((i * 7919) % 1000) as f32 / 97.0)
            .collect();
        let g: Vec<f32> = (0..300 * 48)
            .map(|i| ((i * 104_729) % 777) as f32 / 55.0)
            .collect();
        let gamma: Vec<f32> = (0..48).map(|j| 0.5 + j as f32 / 48.0).collect();
        let beta = vec![0.1f32; 48];
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let (mean, rstd) = layer_norm_forward(&mut x.clone(), &gamma, &beta, 1e-12);
                    layer_norm_backward(&x, &gamma, &mean, &rstd, &g)
                })
        };
        assert_eq!(run(1), run(3));
    }

    /// Each forward kernel on an input it alone holds writes over it (no new buffer), and
    /// gives the same bits as on an input someone else still holds, which stays unchanged.
    #[test]
    fn forward_kernels_write_over_an_unshared_input_with_the_same_result() {
        let x: Vec<f32> = (0..2 * 3 * 5 * 40)
            .map(|i| ((i * 7919) % 1000) as f32 / 97.0 - 5.0)
            .collect();
        let mask: Vec<f32> = (0..2 * 40)
            .map(|i| if i % 7 == 3 { -1e4 } else { 0.0 })
            .collect();
        let gamma: Vec<f32> = (0..40).map(|j| 0.5 + j as f32 / 40.0).collect();
        let beta: Vec<f32> = (0..40).map(|j| j as f32 / 80.0 - 0.2).collect();
        let check = |what: &str, shape: Vec<usize>, op: &dyn Fn(FlexTensor) -> FlexTensor| {
            let alone = tensor(x.clone(), Shape::from(shape.clone()));
            let buffer = alone.storage::<f32>().as_ptr();
            let alone = op(alone);
            assert_eq!(
                alone.storage::<f32>().as_ptr(),
                buffer,
                "{what}: a new buffer"
            );
            let held = tensor(x.clone(), Shape::from(shape));
            let shared = op(held.clone());
            assert_eq!(values(&held), &x[..], "{what}: the held input changed");
            let bits = |t: &FlexTensor| values(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&alone), bits(&shared), "{what}");
            assert_ne!(bits(&alone), bits(&held), "{what}: nothing computed");
        };
        check("gelu", vec![2, 3, 5, 40], &|t| Flex::fused_gelu(t));
        let m = || tensor(mask.clone(), Shape::new([2, 40]));
        check("softmax", vec![2, 3, 5, 40], &|t| {
            Flex::fused_masked_softmax(t, m(), 0.125)
        });
        let (g, b) = (
            || tensor(gamma.clone(), Shape::new([40])),
            || tensor(beta.clone(), Shape::new([40])),
        );
        check("layer norm", vec![30, 40], &|t| {
            Flex::fused_layer_norm(t, g(), b(), 1e-12)
        });
        // A strided view is copied once and computed like its contiguous copy.
        let strided = tensor(x.clone(), Shape::new([40, 30])).transpose(0, 1);
        let want = Flex::fused_gelu(strided.to_contiguous());
        let got = Flex::fused_gelu(strided);
        assert_eq!(got.layout().shape(), want.layout().shape());
        assert_eq!(values(&got), values(&want), "gelu of a strided view");
    }
}
