//! Layer-wise learning-rate decay (Howard & Ruder 2018; used against fine-tuning
//! instability by Zhang et al. 2021): with L encoder layers indexed 0…L−1, layer l trains
//! at lr·ξ^(L−l), the embeddings at lr·ξ^(L+1), and the pooler and task head at lr, so
//! lower, more general layers move less.

use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use stab_train::{Capabilities, Method, MethodPlugin, SeedBatching};

stab_core::method_params! {
    /// lr·ξ^depth per layer.
    pub struct LayerwiseLrDecay {
        /// decay factor ξ per layer (1 = FineTune)
        pub xi: f64 = float(0.01, 1.0, 0.95),
    }
}

/// The learning-rate factor of the parameter at `path` in a model with `layers` layers.
pub fn layer_factor(xi: f64, path: &str, layers: usize) -> f64 {
    let Some(rest) = path.strip_prefix("encoder.") else {
        return 1.0; // the task head
    };
    // The embeddings, with DeBERTa's relative table and its norm (shared by every layer,
    // they sit below the first one).
    if rest.starts_with("embeddings.")
        || rest.starts_with("encoder.rel_embeddings.")
        || rest.starts_with("encoder.layer_norm.")
    {
        return xi.powi(layers as i32 + 1);
    }
    match rest
        .strip_prefix("encoder.layer.")
        .and_then(|r| r.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
    {
        Some(l) => xi.powi((layers - l.min(layers)) as i32),
        None => 1.0, // pooler (and the unused MLM head)
    }
}

impl Method for LayerwiseLrDecay {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        }
    }

    fn no_op(&self, mode: TrainMode) -> Option<&'static str> {
        (mode == TrainMode::Head).then_some(
            "it scales the learning rates of the encoder's layers, which head tuning freezes; the head keeps the base rate",
        )
    }

    fn lr_scale(&self, path: &str, layers: usize) -> f64 {
        layer_factor(self.xi, path, layers)
    }
}

impl MethodPlugin for LayerwiseLrDecay {
    const NAME: &'static str = "llrd";
    const SUMMARY: &'static str =
        "layer-wise learning-rate decay: layer l at lr·ξ^(L−l), embeddings ξ^(L+1), head lr";
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(LayerwiseLrDecay);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_depth() {
        let f = |p: &str| layer_factor(0.5, p, 6);
        assert_eq!(f("head.out.weight"), 1.0);
        assert_eq!(f("encoder.pooler.dense.weight"), 1.0);
        assert_eq!(f("encoder.encoder.layer.5.output.dense.weight"), 0.5);
        assert_eq!(
            f("encoder.encoder.layer.0.output.dense.weight"),
            0.5f64.powi(6)
        );
        assert_eq!(
            f("encoder.embeddings.word_embeddings.weight"),
            0.5f64.powi(7)
        );
        assert_eq!(
            layer_factor(1.0, "encoder.embeddings.layer_norm.gamma", 6),
            1.0
        );
    }
}
