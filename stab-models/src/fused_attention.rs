//! Fused attention on the host CPU: scores, mask, softmax, dropout and the product with V
//! in one task per (sequence, head), the heads written straight into the merged output.
//!
//! For query head h of sequence b, with Q `[Tq, d]`, K and V `[T, d]` (the key/value head
//! h / g under grouped-query attention, g = heads / kv_heads), an optional bias B on the
//! raw scores (ModernBERT's window, DeBERTa's relative terms), the additive mask M and the
//! scale s:
//!
//!   S = s·(Q·Kᵀ + B) + M,  P = softmax_rows(S),  P̃ = P ⊙ keep,  O = P̃·V,
//!
//! where keep is inverted dropout's mask (0 or 1/(1 − p)), drawn element for element as
//! [`crate::dropout::host_keep_mask`] draws it over the [B, heads, Tq, T] probabilities.
//! Backward, with dO = ∂L/∂O:
//!
//!   dV = P̃ᵀ·dO,  dP̃ = dO·Vᵀ,  dS = s·P ⊙ (dP − rowsum(P ⊙ dP)) with dP = dP̃ ⊙ keep,
//!   dQ = dS·K,  d(Kᵀ) = Qᵀ·dS,  dB = dS.
//!
//! A task's scores `[Tq, T]` stay in its core's cache between the product, the softmax
//! and the product with V, where burn's operations write and read the whole layer's
//! scores (12.6 MB for MiniLM at 16 × 128) three times and copy the heads back together.
//! In evaluation nothing of size [B, heads, T, T] is kept; in training the forward keeps P
//! and keep for the backward, as burn's operations did (recomputing them from Q and K,
//! flash-attention style, measured slower on the CPU: docs/speed.md §7).
//! Each product is the `gemm` crate's single-threaded kernel on the operands, shapes and
//! strides burn's batched matmul and its backward give it, the softmax is
//! [`crate::fused`]'s row kernel and dropout the same multiplication, so without
//! grouped-query heads the results are bit for bit those of the unfused operations (tests
//! hold that); with grouped heads dK and dV add the group's heads in place.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use rayon::prelude::*;

use crate::dropout::keep_mask_range;
use crate::fused::{contiguous, softmax_backward_row, softmax_row, tensor, values};
use crate::placement::is_host;

/// Fused attention as a burn backend extension.
#[backend_extension(Autodiff, Flex)]
pub trait AttentionOps: Backend {
    /// O `[B, Tq, heads·d]` from Q `[B, heads, Tq, d]`, K and V `[B, kv_heads, T, d]` (any
    /// non-negative strides) and the additive mask `[B, Tm, T]` (Tm = 1: one key mask per
    /// sequence; Tm = Tq: one row per query), the bias `[Bb, Hb, Tq, T]` (Bb 1 or B, Hb 1
    /// or heads) added to the raw scores before the scale (`[1, 1, 0, T]`: none;
    /// ModernBERT's window, DeBERTa's relative terms, which get its gradient), with scale `scale`
    /// and dropout on the probabilities with probability `prob` from draw seed `seed`
    /// (`prob` = 0: none).
    #[allow(clippy::too_many_arguments)]
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
        prob: f64,
        seed: u64,
    ) -> FloatTensor<Self>;
}

/// The scalar settings of one attention call.
#[derive(Debug, Clone, Copy)]
struct Setting {
    scale: f32,
    prob: f64,
    seed: u64,
}

/// A matrix operand of a product: its first element and its (row, column) strides.
#[derive(Clone, Copy)]
struct Operand {
    at: *const f32,
    rs: isize,
    cs: isize,
}

impl Operand {
    fn rows(at: *const f32, rs: usize) -> Self {
        Self {
            at,
            rs: rs as isize,
            cs: 1,
        }
    }

    /// The transpose (a view: strides swapped).
    fn t(self) -> Self {
        Self {
            at: self.at,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

/// dst = lhs·rhs (`[m, k]·[k, n]`, `dst` rows of `dst_rs`), or dst += lhs·rhs when
/// `accumulate`, on this thread.
///
/// # Safety
/// The operands must cover their m × k, k × n and m × n elements at their strides, and
/// `dst` must not overlap them.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.at,
            lhs.cs,
            lhs.rs,
            rhs.at,
            rhs.cs,
            rhs.rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A `[B, H, T, d]` tensor's elements and strides (all non-negative).
#[derive(Clone, Copy)]
struct Heads {
    at: *const f32,
    strides: [usize; 4],
    dims: [usize; 4],
}

// SAFETY: read-only views of tensors that outlive the parallel section that reads them.
unsafe impl Send for Heads {}
unsafe impl Sync for Heads {}

impl Heads {
    fn of(t: &FlexTensor) -> Self {
        let layout = t.layout();
        let s = layout.strides();
        let d = layout.shape();
        let data = t.storage::<f32>();
        Self {
            // SAFETY: the layout's start offset lies within the storage.
            at: unsafe { data.as_ptr().add(layout.start_offset()) },
            strides: [s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize],
            dims: [d[0], d[1], d[2], d[3]],
        }
    }

    /// Head `h` of sequence `b` as a `[T, d]` operand.
    fn head(&self, b: usize, h: usize) -> Operand {
        let [sb, sh, st, sd] = self.strides;
        Operand {
            // SAFETY: b and h index within the tensor.
            at: unsafe { self.at.add(b * sb + h * sh) },
            rs: st as isize,
            cs: sd as isize,
        }
    }
}

/// A tensor [`Heads`] can read: itself, or a contiguous copy when a stride is negative.
fn readable(t: FlexTensor) -> FlexTensor {
    if t.layout().has_positive_strides() {
        t
    } else {
        contiguous(t)
    }
}

/// A pointer that tasks write through at disjoint elements.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: every task writes its own elements only.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// The shapes of one call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    tq: usize,
    t: usize,
    d: usize,
    /// Mask rows per sequence (1 or tq).
    mask_rows: usize,
}

impl Dims {
    fn of(q: &Heads, k: &Heads, mask: &Shape) -> Self {
        let [batch, heads, tq, d] = q.dims;
        let [_, kv_heads, t, _] = k.dims;
        Self {
            batch,
            heads,
            kv_heads,
            tq,
            t,
            d,
            mask_rows: mask[1],
        }
    }

    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// The inputs of one call.
struct Inputs<'a> {
    q: Heads,
    k: Heads,
    v: Heads,
    mask: &'a [f32],
    bias: Option<Bias<'a>>,
    dims: Dims,
    set: Setting,
}

/// Q, K, V, the mask and the bias of one call.
type Tensors<'a> = (
    &'a FlexTensor,
    &'a FlexTensor,
    &'a FlexTensor,
    &'a FlexTensor,
    &'a FlexTensor,
);

/// A bias on the raw scores, contiguous `[Bb, Hb, Tq, T]`, broadcast over sequences
/// (Bb = 1) or heads (Hb = 1).
struct Bias<'a> {
    values: &'a [f32],
    per_sequence: bool,
    heads: usize,
}

impl<'a> Bias<'a> {
    /// `bias` (contiguous), or `None` when it has no element.
    fn of(bias: &'a FlexTensor) -> Option<Self> {
        let shape = bias.layout().shape();
        (shape.num_elements() > 0).then(|| Self {
            values: values(bias),
            per_sequence: shape[0] > 1,
            heads: shape[1],
        })
    }

    /// Row i of head h of sequence b (`t` values).
    fn row(&self, (b, h, i): (usize, usize, usize), (tq, t): (usize, usize)) -> &[f32] {
        let b = if self.per_sequence { b } else { 0 };
        let h = if self.heads > 1 { h } else { 0 };
        &self.values[((b * self.heads + h) * tq + i) * t..][..t]
    }
}

impl<'a> Inputs<'a> {
    fn of((q, k, v, mask, bias): Tensors<'a>, set: Setting) -> Self {
        let (q, k, v) = (Heads::of(q), Heads::of(k), Heads::of(v));
        Self {
            dims: Dims::of(&q, &k, mask.layout().shape()),
            q,
            k,
            v,
            mask: values(mask),
            bias: Bias::of(bias),
            set,
        }
    }
}

impl Inputs<'_> {
    /// P (in `p`) and P̃ = P ⊙ keep (in `dropped`, with keep in `keep`; untouched without
    /// dropout) of head `h` of sequence `b`: S = Q·Kᵀ, then per row
    /// softmax(s·S + M) and the dropout mask.
    fn probabilities(
        &self,
        (b, h): (usize, usize),
        p: &mut [f32],
        keep: &mut [f32],
        dropped: &mut [f32],
    ) {
        let Dims { tq, t, d, .. } = self.dims;
        let kvh = h / self.dims.group();
        // SAFETY: p holds tq × t; the heads are [tq, d] and [t, d].
        unsafe {
            product(
                (tq, t, d),
                p.as_mut_ptr(),
                t,
                false,
                self.q.head(b, h),
                self.k.head(b, kvh).t(),
            );
        }
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            if let Some(bias) = &self.bias {
                for (x, &w) in row.iter_mut().zip(bias.row((b, h, i), (tq, t))) {
                    *x += w;
                }
            }
            let m = (b * self.dims.mask_rows + i % self.dims.mask_rows) * t;
            softmax_row(row, &self.mask[m..m + t], self.set.scale);
        }
        if self.set.prob > 0.0 {
            // Elements (b, h, ·, ·) of the [B, heads, Tq, T] probabilities.
            let first = (b * self.dims.heads + h) * tq * t;
            keep_mask_range(first, keep, self.set.prob, self.set.seed);
            for ((o, &x), &k) in dropped.iter_mut().zip(p.iter()).zip(keep.iter()) {
                *o = x * k;
            }
        }
    }

    /// O of head `h` of sequence `b` into `out` (`[B, Tq, heads·d]`); P and keep into
    /// `save` (`[B, heads, Tq, T]` each) when given.
    fn forward_head(&self, (b, h): (usize, usize), out: Out, save: Option<(Out, Out)>) {
        let Dims {
            tq, t, d, heads, ..
        } = self.dims;
        let n = tq * t;
        let dropout = self.set.prob > 0.0;
        let (mut own_p, mut own_keep): (Vec<f32>, Vec<f32>);
        let (p, keep): (&mut [f32], &mut [f32]) = match save {
            // SAFETY: this task alone writes head (b, h)'s n elements of each.
            Some((sp, sk)) => unsafe {
                let at = (b * heads + h) * n;
                let keep_len = if dropout { n } else { 0 };
                (
                    std::slice::from_raw_parts_mut(sp.0.add(at), n),
                    std::slice::from_raw_parts_mut(
                        sk.0.add(if dropout { at } else { 0 }),
                        keep_len,
                    ),
                )
            },
            None => {
                own_p = vec![0f32; n];
                own_keep = vec![0f32; if dropout { n } else { 0 }];
                (&mut own_p, &mut own_keep)
            }
        };
        let mut dropped = if dropout { vec![0f32; n] } else { Vec::new() };
        self.probabilities((b, h), p, keep, &mut dropped);
        let weights: &[f32] = if dropout { &dropped } else { p };
        let kvh = h / self.dims.group();
        // SAFETY: this task alone writes columns h·d.. of sequence b's rows.
        unsafe {
            let dst = out.0.add(b * tq * heads * d + h * d);
            product(
                (tq, d, t),
                dst,
                heads * d,
                false,
                Operand::rows(weights.as_ptr(), t),
                self.v.head(b, kvh),
            );
        }
    }

    /// dQ of the group's heads (`[g, Tq, d]`) and the group's dK and dV (`[T, d]`) for
    /// key/value head `kvh` of sequence `b`, from dO `[B, Tq, heads·d]` and the forward's
    /// P and keep.
    fn backward_group(
        &self,
        (b, kvh): (usize, usize),
        grad: &[f32],
        (saved, bias_grad): (&Saved, bool),
    ) -> GroupGrads {
        let Dims {
            tq, t, d, heads, ..
        } = self.dims;
        let g = self.dims.group();
        let n = tq * t;
        let (mut dq, mut dk, mut dv) =
            (vec![0f32; g * tq * d], vec![0f32; t * d], vec![0f32; t * d]);
        let dropout = self.set.prob > 0.0;
        let mut dropped = if dropout { vec![0f32; n] } else { Vec::new() };
        let mut ds = vec![0f32; n];
        let mut dkt = vec![0f32; d * t];
        let mut dbias = if bias_grad {
            vec![0f32; g * n]
        } else {
            Vec::new()
        };
        for (hg, h) in (kvh * g..(kvh + 1) * g).enumerate() {
            let at = (b * heads + h) * n;
            let p = &saved.p[at..at + n];
            let keep = if dropout {
                &saved.keep[at..at + n]
            } else {
                &[][..]
            };
            if dropout {
                for ((o, &x), &k) in dropped.iter_mut().zip(p).zip(keep) {
                    *o = x * k;
                }
            }
            let weights = if dropout { &dropped[..] } else { p };
            let d_out = Operand::rows(grad[b * tq * heads * d + h * d..].as_ptr(), heads * d);
            let (kh, vh, qh) = (self.k.head(b, kvh), self.v.head(b, kvh), self.q.head(b, h));
            let more = hg > 0;
            // SAFETY: every buffer holds the product's m × n; the operands are views of
            // the inputs and of dO.
            unsafe {
                // dV (+)= P̃ᵀ·dO; dP̃ = dO·Vᵀ.
                product(
                    (t, d, tq),
                    dv.as_mut_ptr(),
                    d,
                    more,
                    Operand::rows(weights.as_ptr(), t).t(),
                    d_out,
                );
                product((tq, t, d), ds.as_mut_ptr(), t, false, d_out, vh.t());
            }
            if dropout {
                for (x, &k) in ds.iter_mut().zip(keep) {
                    *x *= k;
                }
            }
            for (gr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                softmax_backward_row(pr, gr, self.set.scale);
            }
            // The raw scores' gradient is the bias's too (an addition passes it on).
            if bias_grad {
                dbias[hg * n..(hg + 1) * n].copy_from_slice(&ds);
            }
            let dsv = Operand::rows(ds.as_ptr(), t);
            // SAFETY: as above.
            unsafe {
                // dQ = dS·K; d(Kᵀ) (+)= Qᵀ·dS, as the product of the transposed view.
                product(
                    (tq, d, t),
                    dq[hg * tq * d..].as_mut_ptr(),
                    d,
                    false,
                    dsv,
                    kh,
                );
                product((d, t, tq), dkt.as_mut_ptr(), t, more, qh.t(), dsv);
            }
        }
        for j in 0..t {
            for c in 0..d {
                dk[j * d + c] = dkt[c * t + j];
            }
        }
        GroupGrads { dq, dk, dv, dbias }
    }
}

/// One task's gradients: dQ of the group's heads `[g, Tq, d]`, dK and dV `[T, d]`, and
/// the bias's `[g, Tq, T]` when it takes one.
struct GroupGrads {
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    dbias: Vec<f32>,
}

/// What the forward keeps for the backward: P and, with dropout, keep, each
/// `[B, heads, Tq, T]` (what burn's operations keep too; recomputing them instead measured
/// 12–35% slower per training step at one thread), and the call's shapes.
#[derive(Debug)]
struct Saved {
    p: Vec<f32>,
    keep: Vec<f32>,
    dims: Dims,
}

/// O `[B, Tq, heads·d]` (see [`AttentionOps::fused_attention`]), and what the backward
/// needs when `save`.
fn attention_forward(
    tensors: Tensors<'_>,
    set: Setting,
    save: bool,
) -> (FlexTensor, Option<Saved>) {
    let inputs = Inputs::of(tensors, set);
    let dims = inputs.dims;
    let mut out = vec![0f32; dims.batch * dims.tq * dims.heads * dims.d];
    let dst = Out(out.as_mut_ptr());
    let probabilities = dims.batch * dims.heads * dims.tq * dims.t;
    let mut saved = save.then(|| Saved {
        dims,
        p: vec![0f32; probabilities],
        keep: if set.prob > 0.0 {
            vec![0f32; probabilities]
        } else {
            Vec::new()
        },
    });
    let targets = saved
        .as_mut()
        .map(|s| (Out(s.p.as_mut_ptr()), Out(s.keep.as_mut_ptr())));
    (0..dims.batch * dims.heads)
        .into_par_iter()
        .for_each(|task| inputs.forward_head((task / dims.heads, task % dims.heads), dst, targets));
    let out = tensor(out, Shape::new([dims.batch, dims.tq, dims.heads * dims.d]));
    (out, saved)
}

/// dQ `[B, heads, Tq, d]`, dK and dV `[B, kv_heads, T, d]`, and the bias's gradient
/// `[B, heads, Tq, T]` when `bias_grad`, from dO `[B, Tq, heads·d]` and what the forward
/// kept (the mask and the bias are not read again).
fn attention_backward(
    (q, k, v): (&FlexTensor, &FlexTensor, &FlexTensor),
    grad: &FlexTensor,
    set: Setting,
    (saved, bias_grad): (&Saved, bool),
) -> GroupGrads {
    let dims = saved.dims;
    let inputs = Inputs {
        q: Heads::of(q),
        k: Heads::of(k),
        v: Heads::of(v),
        mask: &[],
        bias: None,
        dims,
        set,
    };
    let grad = values(grad);
    let parts: Vec<GroupGrads> = (0..dims.batch * dims.kv_heads)
        .into_par_iter()
        .map(|task| {
            let task = (task / dims.kv_heads, task % dims.kv_heads);
            inputs.backward_group(task, grad, (saved, bias_grad))
        })
        .collect();
    // Tasks in (b, kvh) order: the group's query heads are consecutive heads of b.
    let mut all = GroupGrads {
        dq: Vec::with_capacity(dims.batch * dims.heads * dims.tq * dims.d),
        dk: Vec::with_capacity(dims.batch * dims.kv_heads * dims.t * dims.d),
        dv: Vec::with_capacity(dims.batch * dims.kv_heads * dims.t * dims.d),
        dbias: Vec::new(),
    };
    for part in parts {
        all.dq.extend(part.dq);
        all.dk.extend(part.dk);
        all.dv.extend(part.dv);
        all.dbias.extend(part.dbias);
    }
    all
}

impl AttentionOps for Flex {
    fn fused_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        mask: FlexTensor,
        bias: FlexTensor,
        scale: f64,
        prob: f64,
        seed: u64,
    ) -> FlexTensor {
        let set = Setting {
            scale: scale as f32,
            prob,
            seed,
        };
        let (mask, bias) = (contiguous(mask), contiguous(bias));
        let inputs = (&readable(q), &readable(k), &readable(v), &mask, &bias);
        attention_forward(inputs, set, false).0
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 4> for AttentionBackward {
    /// Q, K, V (checkpointed), the settings, and what the forward kept.
    type State = (NodeId, NodeId, NodeId, Setting, Arc<Saved>);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_q, node_k, node_v, node_bias] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (q_id, k_id, v_id, set, saved) = ops.state;
        let q = readable(cp.retrieve_node_output::<FlexTensor>(q_id));
        let k = readable(cp.retrieve_node_output::<FlexTensor>(k_id));
        let v = readable(cp.retrieve_node_output::<FlexTensor>(v_id));
        let bias_grad = node_bias.is_some();
        let all = attention_backward((&q, &k, &v), &grad, set, (&saved, bias_grad));
        let dims = saved.dims;
        let kv_shape = || Shape::new([dims.batch, dims.kv_heads, dims.t, dims.d]);
        if let Some(node) = node_q {
            let shape = Shape::new([dims.batch, dims.heads, dims.tq, dims.d]);
            grads.register::<Flex>(node.id, tensor(all.dq, shape));
        }
        if let Some(node) = node_k {
            grads.register::<Flex>(node.id, tensor(all.dk, kv_shape()));
        }
        if let Some(node) = node_v {
            grads.register::<Flex>(node.id, tensor(all.dv, kv_shape()));
        }
        if let Some(node) = node_bias {
            let shape = Shape::new([dims.batch, dims.heads, dims.tq, dims.t]);
            grads.register::<Flex>(node.id, tensor(all.dbias, shape));
        }
    }
}

impl<C: CheckpointStrategy> AttentionOps for Autodiff<Flex, C> {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f64,
        prob: f64,
        seed: u64,
    ) -> FloatTensor<Self> {
        // The mask is a constant: its gradient is never needed. The bias gets one when it
        // is tracked (then it must be [B, heads, Tq, T]: see `attention`).
        let mask = contiguous(mask.into_primitive());
        let set = Setting {
            scale: scale as f32,
            prob,
            seed,
        };
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let ids = (
                    prep.checkpoint(&q),
                    prep.checkpoint(&k),
                    prep.checkpoint(&v),
                );
                let (q, k, v) = (
                    readable(q.primitive().clone()),
                    readable(k.primitive().clone()),
                    readable(v.primitive().clone()),
                );
                let bias = contiguous(bias.primitive().clone());
                let (out, saved) = attention_forward((&q, &k, &v, &mask, &bias), set, true);
                let saved = Arc::new(saved.expect("saved when asked"));
                prep.finish((ids.0, ids.1, ids.2, set, saved), out)
            }
            OpsKind::UnTracked(prep) => {
                let (q, k, v) = (
                    readable(q.into_primitive()),
                    readable(k.into_primitive()),
                    readable(v.into_primitive()),
                );
                let bias = contiguous(bias.into_primitive());
                prep.finish(attention_forward((&q, &k, &v, &mask, &bias), set, false).0)
            }
        }
    }
}

/// Whether [`attention`] takes these inputs: f32 on the host, a mask `[B, 1, Tm, T]` with
/// Tm = 1 or Tq, keys as long as the mask.
pub fn applies(q: &Tensor<4>, k: &Tensor<4>, mask: &Tensor<4>) -> bool {
    let [_, one, tm, t] = mask.dims();
    let tq = q.dims()[2];
    q.dtype() == DType::F32
        && is_host(&q.device())
        && one == 1
        && (tm == 1 || tm == tq)
        && k.dims()[2] == t
}

/// softmax(QKᵀ/√`scale_dim` + mask) → dropout → ·V with the heads merged, `[B, Tq, heads·d]`,
/// from Q `[B, heads, Tq, d]`, K and V `[B, kv_heads, T, d]` and the additive mask
/// `[B, 1, Tm, T]`, where [`applies`] says so; `bias` `[Bb, Hb, Tq, T]` (Bb 1 or B, Hb 1
/// or heads) is added to the raw scores QKᵀ before the scale: ModernBERT's window, or
/// DeBERTa's relative terms, which get their gradient (a bias that needs one must be
/// `[B, heads, Tq, T]`). `dropout` is (p, draw seed) when the probabilities are dropped
/// out ([`crate::FastDropout::draw`]).
pub fn attention(
    (q, k, v): (Tensor<4>, Tensor<4>, Tensor<4>),
    (mask, bias): (&Tensor<4>, Option<Tensor<4>>),
    scale_dim: usize,
    dropout: Option<(f64, u64)>,
) -> Tensor<3> {
    debug_assert!(applies(&q, &k, mask));
    let [b, _, tm, t] = mask.dims();
    let [_, heads, tq, _] = q.dims();
    let (prob, seed) = dropout.unwrap_or((0.0, 0));
    let bias = bias.unwrap_or_else(|| Tensor::zeros([1, 1, 0, t], &q.device()));
    let [bb, hb, bq, bt] = bias.dims();
    assert!(
        bq * bt == 0 || ([1, b].contains(&bb) && [1, heads].contains(&hb) && (bq, bt) == (tq, t)),
        "a bias [{bb}, {hb}, {bq}, {bt}] on scores [{b}, {heads}, {tq}, {t}]"
    );
    Tensor::from_dispatch(<Dispatch as AttentionOps>::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        mask.clone().reshape([b, tm, t]).into_dispatch(),
        bias.into_dispatch(),
        1.0 / (scale_dim as f64).sqrt(),
        prob,
        seed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout::host_keep_mask;
    use burn::tensor::{Device, Distribution, TensorData};

    use crate::fused::tests::{assert_close, leaf, vals};

    /// The same attention in burn's operations: key/value heads repeated for their query
    /// heads, softmax(s·QKᵀ + M), the dropout mask as `host_keep_mask` draws it, ·V, heads
    /// merged.
    fn reference(
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        mask: Tensor<4>,
        scale_dim: usize,
        dropout: Option<(f64, u64)>,
    ) -> Tensor<3> {
        let [b, n, tq, d] = q.dims();
        let [_, kv, t, _] = k.dims();
        let repeat = |x: Tensor<4>| {
            let heads: Vec<Tensor<4>> = (0..n)
                .map(|h| x.clone().narrow(1, h / (n / kv), 1))
                .collect();
            Tensor::cat(heads, 1)
        };
        let (k, v) = (repeat(k), repeat(v));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((scale_dim as f32).sqrt())
            + mask;
        let mut p = burn::tensor::activation::softmax(scores, 3);
        if let Some((prob, seed)) = dropout {
            let keep = host_keep_mask(b * n * tq * t, prob, seed);
            p = p * Tensor::from_data(TensorData::new(keep, [b, n, tq, t]), &v.device());
        }
        p.matmul(v).swap_dims(1, 2).reshape([b, tq, n * d])
    }

    /// Fused against burn on random inputs: output within 2e-5, the gradients of Q, K and
    /// V (of a random weighting of the output) within 1e-4. Q is a strided view (heads
    /// split from `[B, T, heads·d]`), as the encoder passes it.
    fn against_burn(
        (b, n, kv, t, d): (usize, usize, usize, usize, usize),
        mask: Tensor<4>,
        dropout: Option<(f64, u64)>,
    ) {
        let dev = mask.device();
        let x = Tensor::<3>::random([b, t, n * d], Distribution::Normal(0.0, 1.0), &dev);
        let k = Tensor::<4>::random([b, kv, t, d], Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<4>::random([b, kv, t, d], Distribution::Normal(0.0, 1.0), &dev);
        let w = Tensor::<3>::random([b, t, n * d], Distribution::Default, &dev);
        let split = |x: Tensor<3>| x.reshape([b, t, n, d]).swap_dims(1, 2);
        let (xa, ka, va) = (leaf(&x), leaf(&k), leaf(&v));
        let (xb, kb, vb) = (leaf(&x), leaf(&k), leaf(&v));
        let qa = split(xa.clone());
        assert!(applies(&qa, &ka, &mask));
        let oa = attention((qa, ka.clone(), va.clone()), (&mask, None), d, dropout);
        let ob = reference(split(xb.clone()), kb.clone(), vb.clone(), mask, d, dropout);
        assert_close(&vals(oa.clone()), &vals(ob.clone()), 2e-5, "O");
        let ga = (oa * w.clone()).sum().backward();
        let gb = (ob * w).sum().backward();
        for (name, a, bb) in [("dK", ka, kb), ("dV", va, vb)] {
            assert_close(
                &vals(a.grad(&ga).unwrap()),
                &vals(bb.grad(&gb).unwrap()),
                1e-4,
                name,
            );
        }
        assert_close(
            &vals(xa.grad(&ga).unwrap()),
            &vals(xb.grad(&gb).unwrap()),
            1e-4,
            "dQ",
        );
    }

    /// An additive key mask [B, 1, 1, T] hiding the last `pad[b]` keys of sequence b.
    fn key_mask(pad: &[usize], t: usize, dev: &Device) -> Tensor<4> {
        let m: Vec<f32> = pad
            .iter()
            .flat_map(|&p| (0..t).map(move |j| if j + p >= t { f32::MIN } else { 0.0 }))
            .collect();
        Tensor::from_data(TensorData::new(m, [pad.len(), 1, 1, t]), dev)
    }

    #[test]
    fn matches_burn_with_a_key_mask_in_value_and_gradients() {
        let dev = Device::flex().autodiff();
        // T = 37: a partial block of query rows and of key columns; d = 32 and a width
        // without a specialised kernel.
        against_burn((2, 3, 3, 37, 32), key_mask(&[0, 9], 37, &dev), None);
        against_burn((2, 2, 2, 70, 24), key_mask(&[5, 0], 70, &dev), None);
    }

    #[test]
    fn matches_burn_with_a_causal_mask_and_grouped_heads() {
        let dev = Device::flex().autodiff();
        let t = 19;
        let m: Vec<f32> = (0..2)
            .flat_map(|_| (0..t * t).map(move |e| if e % t > e / t { f32::MIN } else { 0.0 }))
            .collect();
        let mask = Tensor::<4>::from_data(TensorData::new(m, [2, 1, t, t]), &dev);
        // Four query heads reading two key/value heads, head width 64.
        against_burn((2, 4, 2, t, 64), mask, None);
    }

    #[test]
    fn applies_the_dropout_mask_the_probabilities_would_draw() {
        let dev = Device::flex().autodiff();
        against_burn(
            (2, 3, 3, 40, 32),
            key_mask(&[3, 0], 40, &dev),
            Some((0.1, 77)),
        );
        against_burn((1, 4, 1, 23, 128), key_mask(&[0], 23, &dev), Some((0.3, 5)));
    }

    /// Q, K and V `[B, n, T, d]` split from one projection `[B, T, 3·n·d]`: views, as the
    /// encoder's heads are.
    fn split_qkv(x: &Tensor<3>, n: usize, d: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let [b, t, _] = x.dims();
        let heads = |i: usize| {
            x.clone()
                .narrow(2, i * n * d, n * d)
                .reshape([b, t, n, d])
                .swap_dims(1, 2)
        };
        (heads(0), heads(1), heads(2))
    }

    /// The encoder's operations before this kernel: burn's matmuls around the fused
    /// softmax (scale 1/√`scale_dim`), dropout as a multiplication by the drawn mask.
    fn unfused(
        (q, k, v): (Tensor<4>, Tensor<4>, Tensor<4>),
        (mask, bias): (Tensor<4>, Option<Tensor<4>>),
        scale_dim: usize,
        dropout: Option<(f64, u64)>,
    ) -> Tensor<3> {
        let [b, n, t, d] = q.dims();
        let mut scores = q.matmul(k.swap_dims(2, 3));
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let mut p = crate::fused::masked_softmax(scores, mask, scale_dim);
        if let Some((prob, seed)) = dropout {
            let keep = host_keep_mask(b * n * t * t, prob, seed);
            p = p * Tensor::from_data(TensorData::new(keep, [b, n, t, t]), &v.device());
        }
        p.matmul(v).swap_dims(1, 2).reshape([b, t, n * d])
    }

    #[test]
    fn gives_the_unfused_operations_bits_in_value_and_gradients_window_included() {
        let dev = Device::flex().autodiff();
        for (b, n, t, d, dropout) in [
            (2, 3, 37, 32, None),
            (3, 2, 128, 32, Some((0.1, 9))),
            (1, 2, 70, 64, Some((0.2, 4))),
            (2, 2, 40, 32, Some((0.1, 3))),
        ] {
            let mask = key_mask(&(0..b).map(|i| i * 5).collect::<Vec<_>>(), t, &dev);
            // The last case adds a sliding window of half-width 6 (ModernBERT's local
            // layers: −1e30 outside, as its window tensor holds).
            let bias = (t == 40).then(|| {
                let w: Vec<f32> = (0..t * t)
                    .map(|e| {
                        if (e / t).abs_diff(e % t) <= 6 {
                            0.0
                        } else {
                            -1e30
                        }
                    })
                    .collect();
                Tensor::<4>::from_data(TensorData::new(w, [1, 1, t, t]), &dev)
            });
            let x = Tensor::<3>::random([b, t, 3 * n * d], Distribution::Normal(0.0, 1.0), &dev);
            let w = Tensor::<3>::random([b, t, n * d], Distribution::Default, &dev);
            let (xa, xb) = (leaf(&x), leaf(&x));
            let oa = attention(split_qkv(&xa, n, d), (&mask, bias.clone()), d, dropout);
            let ob = unfused(split_qkv(&xb, n, d), (mask.clone(), bias), d, dropout);
            assert_eq!(vals(oa.clone()), vals(ob.clone()), "O, T = {t}");
            let ga = (oa * w.clone()).sum().backward();
            let gb = (ob * w).sum().backward();
            assert_eq!(
                vals(xa.grad(&ga).unwrap()),
                vals(xb.grad(&gb).unwrap()),
                "dQKV, T = {t}"
            );
        }
    }

    /// DeBERTa's case: a bias [B, heads, T, T] computed from trainable inputs, which gets
    /// the raw scores' gradient, bit for bit as burn's addition passes it on.
    #[test]
    fn a_tracked_bias_gets_its_gradient_bit_for_bit() {
        let dev = Device::flex().autodiff();
        let (b, n, t, d) = (2, 3, 33, 32);
        let mask = key_mask(&[0, 7], t, &dev);
        let x = Tensor::<3>::random([b, t, 3 * n * d], Distribution::Normal(0.0, 1.0), &dev);
        let r = Tensor::<4>::random([b, n, t, t], Distribution::Normal(0.0, 2.0), &dev);
        let w = Tensor::<3>::random([b, t, n * d], Distribution::Default, &dev);
        let (xa, xb, ra, rb) = (leaf(&x), leaf(&x), leaf(&r), leaf(&r));
        // The bias is a function of a leaf, as DeBERTa's gathered terms are.
        let dropout = Some((0.1, 2));
        let bias = |r: &Tensor<4>| Some(r.clone() * 0.5);
        let oa = attention(split_qkv(&xa, n, d), (&mask, bias(&ra)), 3 * d, dropout);
        let ob = unfused(
            split_qkv(&xb, n, d),
            (mask.clone(), bias(&rb)),
            3 * d,
            dropout,
        );
        assert_eq!(vals(oa.clone()), vals(ob.clone()), "O");
        let ga = (oa * w.clone()).sum().backward();
        let gb = (ob * w).sum().backward();
        assert_eq!(
            vals(ra.grad(&ga).unwrap()),
            vals(rb.grad(&gb).unwrap()),
            "d bias"
        );
        assert_eq!(
            vals(xa.grad(&ga).unwrap()),
            vals(xb.grad(&gb).unwrap()),
            "dQKV"
        );
    }

    #[test]
    fn keep_mask_range_draws_what_the_whole_mask_draws() {
        let whole = host_keep_mask(100_003, 0.1, 42);
        for (first, len) in [(0, 17), (32_760, 20), (65_535, 3), (99_990, 13)] {
            let mut part = vec![0f32; len];
            crate::dropout::keep_mask_range(first, &mut part, 0.1, 42);
            assert_eq!(part, whole[first..first + len], "elements {first}..+{len}");
        }
    }

    #[test]
    fn untracked_inputs_give_the_tracked_output() {
        let dev = Device::flex();
        let q = Tensor::<4>::random([2, 2, 9, 32], Distribution::Normal(0.0, 1.0), &dev);
        let k = Tensor::<4>::random([2, 2, 9, 32], Distribution::Normal(0.0, 1.0), &dev);
        let v = Tensor::<4>::random([2, 2, 9, 32], Distribution::Normal(0.0, 1.0), &dev);
        let mask = key_mask(&[0, 4], 9, &dev);
        let plain = vals(attention(
            (q.clone(), k.clone(), v.clone()),
            (&mask, None),
            32,
            None,
        ));
        let ad = Device::flex().autodiff();
        let on = |x: &Tensor<4>| Tensor::<4>::from_data(x.to_data(), &ad).require_grad();
        let ad_mask = key_mask(&[0, 4], 9, &ad);
        let tracked = attention((on(&q), on(&k), on(&v)), (&ad_mask, None), 32, None);
        assert_eq!(plain, vals(tracked), "bit for bit");
    }
}
