//! LoRA, low-rank adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
//! Models"; docs/methods.md §11.1): every target Linear W of the encoder is frozen and gets a
//! trainable low-rank update,
//!
//! W' = W + (α/r)·A·B, A `[d_in, r]` Kaiming-uniform, B `[r, d_out]` zero,
//!
//! applied as `xW + b + (α/r)·dropout(x)·A·B` in training (so the first forward equals
//! FineTune's). Only the updates and the task head train: r·(d_in + d_out) parameters per
//! target and layer. At every evaluation the update is merged into W (W* = W + (α/r)·A·B),
//! so the scored and saved model is a plain encoder; a checkpoint also carries the update
//! itself in HF PEFT's format, in `peft/` (`adapter_model.safetensors` +
//! `adapter_config.json`), which `peft.PeftModel.from_pretrained(pre_trained, "<ckpt>/peft")`
//! loads on top of the pre-trained model. (Not beside `model.safetensors`: with peft
//! installed, transformers' `from_pretrained` applies an adapter it finds in a model
//! directory to that directory's weights, which are merged already.)
//!
//! In head tuning the encoder is frozen and LoRA adds nothing (the run equals FineTune's).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stab_core::Refusal;
use stab_core::derive_seed;
use stab_core::recipe::TrainMode;
use stab_models::peft::merge_low_rank;
use stab_models::{EncoderConfig, LowRank, NamedTensor, TensorFile};

use stab_train::{
    AdaptContext, CheckpointFile, ExportContext, Method, MethodPlugin, StepContext, TaskModel,
    params,
};

/// A Linear layer LoRA may update, in every family's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoraTarget {
    Query,
    Key,
    Value,
    /// The attention block's output projection.
    AttentionOutput,
    /// The FFN's first layer (a gated FFN's gate).
    Intermediate,
    /// A gated FFN's separate up projection (Llama's `up_proj`).
    Up,
    /// The FFN's second layer.
    Output,
}

/// A name in `targets`: stab's names, which mean the same layers in every family, or the
/// module names Hugging Face PEFT users write for the decoders (Llama, Mistral, Qwen:
/// `q_proj` … `down_proj`; GPT-2: `c_attn` = query, key and value, `c_proj` = both output
/// projections, `c_fc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTargetName {
    Query,
    Key,
    Value,
    AttentionOutput,
    Intermediate,
    Up,
    Output,
    QProj,
    KProj,
    VProj,
    OProj,
    GateProj,
    UpProj,
    DownProj,
    CAttn,
    CProj,
    CFc,
}

/// The choices of `targets`, in [`LoraTargetName`]'s order.
const TARGET_NAMES: &[&str] = &[
    "query",
    "key",
    "value",
    "attention_output",
    "intermediate",
    "up",
    "output",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "c_attn",
    "c_proj",
    "c_fc",
];

impl LoraTargetName {
    /// The layers the name updates.
    pub fn targets(self) -> &'static [LoraTarget] {
        use LoraTarget::*;
        match self {
            Self::Query | Self::QProj => &[Query],
            Self::Key | Self::KProj => &[Key],
            Self::Value | Self::VProj => &[Value],
            Self::AttentionOutput | Self::OProj => &[AttentionOutput],
            Self::Intermediate | Self::GateProj | Self::CFc => &[Intermediate],
            Self::Up | Self::UpProj => &[Up],
            Self::Output | Self::DownProj => &[Output],
            Self::CAttn => &[Query, Key, Value],
            Self::CProj => &[AttentionOutput, Output],
        }
    }

    /// The family whose module the name is (`None`: stab's own name, good everywhere).
    fn family(self) -> Option<&'static str> {
        match self {
            Self::QProj
            | Self::KProj
            | Self::VProj
            | Self::OProj
            | Self::GateProj
            | Self::UpProj
            | Self::DownProj => Some("Llama, Mistral, Qwen2 and Qwen3"),
            Self::CAttn | Self::CProj | Self::CFc => Some("GPT-2"),
            _ => None,
        }
    }

    /// Whether the name is a module of `family`'s: stab's own names always are; a PEFT
    /// name when the family's Hugging Face name of every layer it stands for has it as a
    /// segment (`layers.0.self_attn.q_proj.weight`, `h.0.attn.c_attn.weight`).
    fn fits(self, family: stab_models::ModelFamily) -> bool {
        if self.family().is_none() {
            return true;
        }
        let peft = self.as_str();
        self.targets().iter().all(|t| {
            let weight = format!("encoder.layer.0.{}.weight", t.stab_linear());
            stab_models::names::hf_name(family, &weight)
                .is_some_and(|hf| hf.name.split('.').any(|segment| segment == peft))
        })
    }

    fn as_str(self) -> &'static str {
        TARGET_NAMES[self as usize]
    }
}

impl LoraTarget {
    /// Every target.
    pub const ALL: [LoraTarget; 7] = [
        Self::Query,
        Self::Key,
        Self::Value,
        Self::AttentionOutput,
        Self::Intermediate,
        Self::Up,
        Self::Output,
    ];

    /// The Linear the update belongs to, under a stab layer (`encoder.layer.N.<this>`);
    /// the family's name map gives its Hugging Face module.
    fn stab_linear(self) -> &'static str {
        match self {
            Self::Query => "attention.self_attn.query",
            Self::Key => "attention.self_attn.key",
            Self::Value => "attention.self_attn.value",
            Self::AttentionOutput => "attention.output.dense",
            Self::Intermediate => "intermediate.dense",
            Self::Up => "intermediate.up",
            Self::Output => "output.dense",
        }
    }

    /// The slot's path under a stab layer (`encoder.layer.N.<this>`).
    fn stab_slot(self) -> &'static str {
        match self {
            Self::Query => "attention.self_attn.lora_query",
            Self::Key => "attention.self_attn.lora_key",
            Self::Value => "attention.self_attn.lora_value",
            Self::AttentionOutput => "attention.output.lora",
            Self::Intermediate => "intermediate.lora",
            Self::Up => "intermediate.lora_up",
            Self::Output => "output.lora",
        }
    }

    /// The target's (input, output) width; grouped-query attention's keys and values
    /// are `kv_heads × head_dim` wide, a decoder's queries `heads × head_dim`.
    fn dims(self, c: &EncoderConfig) -> (usize, usize) {
        let (h, i, d) = (c.hidden_size, c.intermediate_size, c.head_dim());
        match self {
            Self::Intermediate => (h, c.intermediate_width()),
            Self::Up => (h, i),
            Self::Output => (i, h),
            Self::Query => (h, c.num_attention_heads * d),
            Self::Key | Self::Value => (h, c.kv_heads() * d),
            Self::AttentionOutput => (c.num_attention_heads * d, h),
        }
    }
}

stab_core::method_params! {
    /// LoRA's parameters.
    pub struct LowRankAdaptation {
        /// rank r of the update A·B
        pub r: usize = int(1, 4096, 8),
        /// scale α: the update is (α/r)·A·B
        pub alpha: f64 = float(0.0, 1e6, 16.0),
        /// dropout on the update's input
        pub dropout: f64 = float(0.0, 0.99, 0.1),
        /// the Linear layers updated in every layer: stab's names (any family) or the decoders' PEFT module names
        pub targets: Vec<LoraTargetName> = names(TARGET_NAMES, &["query", "value"]),
    }
}

/// The slots of one layer, by target.
fn slot(layer: &mut stab_models::encoder::Layer, t: LoraTarget) -> &mut Option<LowRank> {
    match t {
        LoraTarget::Query => &mut layer.attention.self_attn.lora_query,
        LoraTarget::Key => &mut layer.attention.self_attn.lora_key,
        LoraTarget::Value => &mut layer.attention.self_attn.lora_value,
        LoraTarget::AttentionOutput => &mut layer.attention.output.lora,
        LoraTarget::Intermediate => &mut layer.intermediate.lora,
        LoraTarget::Up => &mut layer.intermediate.lora_up,
        LoraTarget::Output => &mut layer.output.lora,
    }
}

/// The Linear a target updates.
fn linear(layer: &mut stab_models::encoder::Layer, t: LoraTarget) -> &mut burn::nn::Linear {
    match t {
        LoraTarget::Query => &mut layer.attention.self_attn.query,
        LoraTarget::Key => &mut layer.attention.self_attn.key,
        LoraTarget::Value => &mut layer.attention.self_attn.value,
        LoraTarget::AttentionOutput => &mut layer.attention.output.dense,
        LoraTarget::Intermediate => &mut layer.intermediate.dense,
        LoraTarget::Up => layer
            .intermediate
            .up
            .as_mut()
            .expect("check_model refuses `up` without an up projection"),
        LoraTarget::Output => &mut layer.output.dense,
    }
}

impl LowRankAdaptation {
    /// The layers `targets` names, each once, in [`LoraTarget`]'s order.
    pub fn resolved_targets(&self) -> Vec<LoraTarget> {
        let mut all: Vec<LoraTarget> = self
            .targets
            .iter()
            .flat_map(|n| n.targets().iter().copied())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

impl Method for LowRankAdaptation {
    fn capabilities(&self) -> stab_train::Capabilities {
        stab_train::Capabilities {
            chooses_trainable: true,
            ..Default::default()
        }
    }

    fn check_model(&self, config: &EncoderConfig) -> Result<(), Refusal> {
        let family = config.family;
        if let Some(name) = self.targets.iter().find(|n| !n.fits(family)) {
            return Err(format!(
                "target `{}` is a module name of {}, and this model is {}; stab's names (query, key, value, attention_output, intermediate, up, output) work on every family",
                name.as_str(),
                name.family().unwrap_or("another family"),
                family.name()
            )
            .into());
        }
        let split = family.spec().layout().split_gate;
        if !split && self.resolved_targets().contains(&LoraTarget::Up) {
            return Err(format!(
                "target `up` is a gated feed-forward's separate up projection (Llama's up_proj), which {} has not; use intermediate and output",
                family.name()
            )
            .into());
        }
        let smallest = self
            .resolved_targets()
            .iter()
            .map(|t| {
                let (a, b) = t.dims(config);
                a.min(b)
            })
            .min()
            .unwrap_or(usize::MAX);
        if self.r > smallest {
            return Err(format!(
                "r = {} exceeds the smallest target dimension {smallest}; use r in 1..={smallest}",
                self.r
            )
            .into());
        }
        Ok(())
    }

    fn adapt(&self, mut model: TaskModel, ctx: &AdaptContext) -> TaskModel {
        let Some(encoder) = model.encoder.as_mut() else {
            return model;
        };
        if ctx.mode == TrainMode::Head {
            return model;
        }
        let targets = self.resolved_targets();
        for (i, layer) in encoder.encoder.layer.iter_mut().enumerate() {
            for &t in &targets {
                let (d_in, d_out) = t.dims(ctx.config);
                let seed = derive_seed(ctx.seed, &["lora", &i.to_string(), t.stab_slot()]);
                *slot(layer, t) = Some(LowRank::new(
                    d_in,
                    d_out,
                    (self.r, self.alpha, self.dropout),
                    seed,
                    ctx.noise,
                    ctx.device,
                ));
            }
        }
        model
    }

    fn trains(&self, path: &str) -> bool {
        path.starts_with("head.") || path.contains(".lora")
    }

    fn eval_model(&self, mut model: TaskModel, _: &StepContext) -> TaskModel {
        if let Some(encoder) = model.encoder.as_mut() {
            for layer in &mut encoder.encoder.layer {
                for t in LoraTarget::ALL {
                    if t == LoraTarget::Up && layer.intermediate.up.is_none() {
                        continue;
                    }
                    if let Some(update) = slot(layer, t).take() {
                        let w = linear(layer, t).clone();
                        *linear(layer, t) = merge_low_rank(w, &update);
                    }
                }
            }
        }
        model
    }

    fn checkpoint_files(
        &self,
        trained: &TaskModel,
        ctx: &ExportContext,
    ) -> stab_core::Result<Vec<(String, CheckpointFile)>> {
        let Some(encoder) = &trained.encoder else {
            return Ok(Vec::new());
        };
        // A decoder's checkpoint is a `*ForSequenceClassification`: the adapter then wraps
        // that model (PEFT's SEQ_CLS task), its modules under the task model's prefix and
        // the `score` head saved whole (`modules_to_save`).
        let score = stab_train::checkpoint::hf_score(trained)?;
        let prefix = match score {
            Some(_) => encoder.config.family.spec().info().prefix,
            None => "",
        };
        let modules: BTreeMap<String, ModuleUpdate> = self
            .peft_modules(encoder)?
            .into_iter()
            .map(|(m, u)| (format!("{prefix}{m}"), u))
            .collect();
        let mut tensors = self.peft_tensors(&modules);
        if let Some(score) = &score {
            tensors
                .tensors
                .insert("base_model.model.score.weight".into(), score.clone());
        }
        let conv1d = modules.values().any(|u| u.conv1d);
        let config = self.peft_config(ctx, &modules, score.is_some(), conv1d);
        Ok(vec![
            (
                "peft/adapter_model.safetensors".into(),
                CheckpointFile::Tensors(tensors),
            ),
            (
                "peft/adapter_config.json".into(),
                CheckpointFile::Bytes(config.into_bytes()),
            ),
        ])
    }
}

/// One LoRA update in torch layouts: A `[r, d_in]`, B `[d_out, r]`.
struct Update {
    a: Vec<f32>,
    b: Vec<f32>,
    d_in: usize,
    d_out: usize,
    /// Which block of a fused module's rows it updates (ModernBERT's `Wqkv`): (k, n).
    part: Option<(usize, usize)>,
    /// The module is a `Conv1D`: a joined block one (`hf.conv1d`), or a whole weight kept
    /// in burn's [in, out] layout (not `transposed`, unlike every Linear).
    conv1d: bool,
}

/// The updates of one Hugging Face module, and the rank and α PEFT must give it.
struct ModuleUpdate {
    a: NamedTensor,
    b: NamedTensor,
    /// Updates fused into this module (1, or 2 for query and value in `Wqkv`).
    count: usize,
    /// The module is a GPT-2 `Conv1D` (its weight stored [in, out]): PEFT's
    /// `fan_in_fan_out`.
    conv1d: bool,
}

impl LowRankAdaptation {
    /// The updates under HF PEFT's names for the model's family:
    /// `base_model.model.<module>.lora_A.weight` `[r, d_in]` and `lora_B.weight`
    /// `[d_out, r]`, where `<module>` is the family's Hugging Face module of the updated
    /// Linear (`attention.self.query_proj` in DeBERTa). Updates of the row blocks of one
    /// fused module (ModernBERT's query and value in `attn.Wqkv`) become one update of
    /// rank r·m: A stacks their A's, B places each B in its rows and rank columns, and
    /// α·m keeps the scale α/r (PEFT's `rank_pattern` / `alpha_pattern`).
    fn peft_modules(
        &self,
        encoder: &stab_models::Encoder,
    ) -> stab_core::Result<BTreeMap<String, ModuleUpdate>> {
        let all = params::collect(encoder);
        let family = encoder.config.family;
        let mut grouped: BTreeMap<String, Vec<Update>> = BTreeMap::new();
        for i in 0..encoder.encoder.layer.len() {
            for &t in &self.resolved_targets() {
                let at = |m: &str| format!("encoder.layer.{i}.{}.{m}", t.stab_slot());
                let (Some(a), Some(b)) = (all.get(&at("a")), all.get(&at("b"))) else {
                    return Err(stab_core::internal!(
                        "layer {i} has no LoRA update of {}",
                        t.stab_linear()
                    ));
                };
                let weight = format!("encoder.layer.{i}.{}.weight", t.stab_linear());
                let hf = stab_models::names::hf_name(family, &weight).ok_or_else(|| {
                    stab_core::internal!("{weight} has no Hugging Face name in this family")
                })?;
                let module = hf
                    .name
                    .strip_suffix(".weight")
                    .unwrap_or(&hf.name)
                    .to_string();
                let torch = |p: &params::FlatParam| -> stab_core::Result<Vec<f32>> {
                    let values = p
                        .values
                        .clone()
                        .into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .map_err(|e| stab_core::internal!("{e:?}"))?;
                    Ok(stab_models::checkpoint::transpose(
                        &values, p.shape[0], p.shape[1],
                    ))
                };
                grouped.entry(module).or_default().push(Update {
                    a: torch(a)?,
                    b: torch(b)?,
                    d_in: a.shape[0],
                    d_out: b.shape[1],
                    part: hf.part,
                    conv1d: hf.conv1d || !hf.transposed,
                });
            }
        }
        Ok(grouped
            .into_iter()
            .map(|(module, updates)| (module, fuse(self.r, &updates)))
            .collect())
    }

    fn peft_tensors(&self, modules: &BTreeMap<String, ModuleUpdate>) -> TensorFile {
        let mut file = TensorFile::default();
        for (module, u) in modules {
            let name = |m: &str| format!("base_model.model.{module}.{m}.weight");
            file.tensors.insert(name("lora_A"), u.a.clone());
            file.tensors.insert(name("lora_B"), u.b.clone());
        }
        file
    }

    /// HF PEFT's `adapter_config.json` for these updates: every updated module by its full
    /// name (PEFT matches a name exactly), fused modules with their rank and α; for a
    /// sequence classifier (`seq_cls`) PEFT's `SEQ_CLS` task with `score` saved whole;
    /// `fan_in_fan_out` for GPT-2's Conv1D modules (weights stored `[in, out]`; the update's
    /// A and B keep Linear's layout either way).
    fn peft_config(
        &self,
        ctx: &ExportContext,
        modules: &BTreeMap<String, ModuleUpdate>,
        seq_cls: bool,
        conv1d: bool,
    ) -> String {
        let fused = || modules.iter().filter(|(_, u)| u.count > 1);
        let ranks: serde_json::Map<String, serde_json::Value> = fused()
            .map(|(m, u)| (m.clone(), serde_json::json!(self.r * u.count)))
            .collect();
        let alphas: serde_json::Map<String, serde_json::Value> = fused()
            .map(|(m, u)| (m.clone(), serde_json::json!(self.alpha * u.count as f64)))
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "peft_type": "LORA",
            "base_model_name_or_path": ctx.model_dir.display().to_string(),
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": modules.keys().collect::<Vec<_>>(),
            "rank_pattern": ranks,
            "alpha_pattern": alphas,
            "bias": "none",
            "fan_in_fan_out": conv1d,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": if seq_cls { serde_json::json!(["score"]) } else { serde_json::Value::Null },
            "task_type": if seq_cls { serde_json::json!("SEQ_CLS") } else { serde_json::Value::Null },
        }))
        .expect("json")
    }
}

/// The updates of one module as one PEFT update (see [`LowRankAdaptation::peft_modules`]).
fn fuse(r: usize, updates: &[Update]) -> ModuleUpdate {
    let m = updates.len();
    let d_in = updates[0].d_in;
    let (parts, d_part) = match updates[0].part {
        Some((_, n)) => (n, updates[0].d_out),
        None => (1, updates[0].d_out),
    };
    let d_out = parts * d_part;
    let mut a = Vec::with_capacity(r * m * d_in);
    let mut b = vec![0.0f32; d_out * r * m];
    for (j, u) in updates.iter().enumerate() {
        a.extend_from_slice(&u.a);
        let block = u.part.map_or(0, |(k, _)| k);
        for row in 0..d_part {
            let to = (block * d_part + row) * r * m + j * r;
            b[to..to + r].copy_from_slice(&u.b[row * r..(row + 1) * r]);
        }
    }
    ModuleUpdate {
        a: NamedTensor {
            shape: vec![r * m, d_in],
            values: a,
        },
        b: NamedTensor {
            shape: vec![d_out, r * m],
            values: b,
        },
        count: m,
        conv1d: updates.iter().any(|u| u.conv1d),
    }
}

impl MethodPlugin for LowRankAdaptation {
    const NAME: &'static str = "lora";
    const SUMMARY: &'static str = "LoRA (Hu et al. 2021): frozen encoder, W + (α/r)·A·B on the targets, merged for evaluation";
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(LowRankAdaptation);

#[cfg(test)]
mod tests {
    use super::*;

    /// `targets`' choices are the enum's serde names, in its order (`as_str` indexes them).
    #[test]
    fn target_names_are_the_enums_serde_names() {
        for &name in TARGET_NAMES {
            let parsed: LoraTargetName = serde_json::from_value(serde_json::json!(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(parsed.as_str(), name);
            assert_eq!(serde_json::to_value(parsed).unwrap(), name);
        }
    }
}
