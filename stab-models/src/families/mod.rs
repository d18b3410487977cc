//! What each encoder family adds to the shared transformer of [`crate::encoder`]: its maths
//! (DeBERTa's relative attention, ModernBERT's rotations and window) and the map between
//! its Hugging Face tensor names and stab's module paths ([`crate::names`]).

pub mod deberta;
pub mod electra;
pub mod modernbert;

/// What `stab list models` says about a family.
#[derive(Debug, Clone, Copy)]
pub struct FamilyInfo {
    /// `model_type` in `config.json`.
    pub model_type: &'static str,
    pub name: &'static str,
    /// Hub ids of the usual base checkpoints.
    pub hub_ids: &'static [&'static str],
    /// What `pooling = "pooler"` computes.
    pub pooler: &'static str,
    /// The MLM head SURT re-trains.
    pub mlm: &'static str,
    /// What differs for the methods.
    pub notes: &'static str,
}

/// Every family with a port, in `stab list models` order.
pub const FAMILIES: &[FamilyInfo] = &[
    FamilyInfo {
        model_type: "bert",
        name: "BERT",
        hub_ids: &[
            "bert-base-uncased",
            "sentence-transformers/all-MiniLM-L6-v2",
        ],
        pooler: "tanh(W·h₀ + b), loaded when the checkpoint has it",
        mlm: "cls.predictions (drawn when absent)",
        notes: "every method",
    },
    FamilyInfo {
        model_type: "roberta",
        name: "RoBERTa",
        hub_ids: &["FacebookAI/roberta-base", "FacebookAI/roberta-large"],
        pooler: "tanh(W·h₀ + b), drawn (no pooler weights)",
        mlm: "lm_head",
        notes: "every method",
    },
    FamilyInfo {
        model_type: "electra",
        name: "ELECTRA",
        hub_ids: &[
            "google/electra-base-discriminator",
            "google/electra-large-discriminator",
        ],
        pooler: "gelu(W·h₀ + b), drawn (ElectraClassificationHead's dense layer)",
        mlm: "generator-shaped head (hidden → embedding_size), drawn: a discriminator has none",
        notes: "every method; MixOut also mixes embeddings_project",
    },
    FamilyInfo {
        model_type: "deberta-v2",
        name: "DeBERTa-v3",
        hub_ids: &["microsoft/deberta-v3-base", "microsoft/deberta-v3-large"],
        pooler: "pooler_hidden_act(W·h₀ + b), drawn (HF ContextPooler)",
        mlm: "lm_predictions.lm_head (enhanced-decoder names, legacy = false)",
        notes: "every method; needs tokenizer.json (convert spm.model once with transformers)",
    },
    FamilyInfo {
        model_type: "modernbert",
        name: "ModernBERT",
        hub_ids: &[
            "answerdotai/ModernBERT-base",
            "answerdotai/ModernBERT-large",
        ],
        pooler: "LN(act(W·p)), p = [CLS] or the mean (classifier_pooling), W and LN loaded from `head`",
        mlm: "head + decoder.bias",
        notes: "no biases: BitFit is refused; dropout 0 in the released configs (R-Drop's two passes coincide)",
    },
];
