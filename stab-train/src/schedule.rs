//! The learning-rate schedule: Hugging Face `get_linear_schedule_with_warmup`.

/// Linear warmup over W updates from 0 to the peak, then linear decay to 0 at T.
///
/// The multiplier is evaluated at the number of updates done *before* the update
/// (update 0 has lr 0 when W > 0): `k/W` for k < W, else `(T − k)/(T − W)`, floored at 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearWarmupDecay {
    pub peak: f64,
    /// W = ⌊warmup·T⌋.
    pub warmup_steps: u64,
    /// T.
    pub total_steps: u64,
}

impl LinearWarmupDecay {
    /// T updates with a `warmup` fraction of them as warmup.
    pub fn new(peak: f64, warmup: f64, total_steps: u64) -> Self {
        let warmup_steps = (warmup * total_steps as f64).floor() as u64;
        Self {
            peak,
            warmup_steps,
            total_steps,
        }
    }

    /// The learning rate of update `k` (0-based).
    pub fn lr(&self, k: u64) -> f64 {
        let (w, t) = (self.warmup_steps, self.total_steps);
        let mult = if k < w {
            k as f64 / w.max(1) as f64
        } else {
            (t.saturating_sub(k)) as f64 / (t.saturating_sub(w)).max(1) as f64
        };
        self.peak * mult.max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_at_zero_warmup_end_and_total() {
        let s = LinearWarmupDecay::new(2e-5, 0.1, 1000);
        assert_eq!(s.warmup_steps, 100);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(50) - 1e-5).abs() < 1e-20);
        assert_eq!(s.lr(100), 2e-5);
        assert!((s.lr(550) - 1e-5).abs() < 1e-18);
        assert_eq!(s.lr(1000), 0.0);
        // ⌊0.1·T⌋ for a T that is not a multiple of 10.
        assert_eq!(LinearWarmupDecay::new(1.0, 0.1, 157).warmup_steps, 15);
        // No warmup: the first update has the peak.
        assert_eq!(LinearWarmupDecay::new(1.0, 0.0, 10).lr(0), 1.0);
    }
}
