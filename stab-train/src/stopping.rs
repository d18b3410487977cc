//! Early stopping on the dev score (docs/methods.md §4.1): stop after `patience`
//! evaluations without a strict improvement; the earliest best evaluation wins ties.

/// Tracks the dev curve and the best evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    pub patience: u64,
    /// (update, dev score) of every evaluation.
    pub curve: Vec<(u64, f64)>,
    best: Option<(u64, f64)>,
    since_best: u64,
}

/// What an evaluation means for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A strictly better score: keep these weights.
    Improved,
    /// Not better; keep training.
    Continue,
    /// `patience` evaluations without improvement.
    Stop,
}

impl EarlyStopping {
    pub fn new(patience: u64) -> Self {
        Self {
            patience,
            curve: Vec::new(),
            best: None,
            since_best: 0,
        }
    }

    /// Record the dev score at `step`. A NaN score never improves.
    pub fn observe(&mut self, step: u64, score: f64) -> Verdict {
        self.curve.push((step, score));
        let better = match self.best {
            None => !score.is_nan(),
            Some((_, b)) => score > b,
        };
        if better {
            self.best = Some((step, score));
            self.since_best = 0;
            return Verdict::Improved;
        }
        self.since_best += 1;
        if self.since_best >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Continue
        }
    }

    /// (update, score) of the best evaluation.
    pub fn best(&self) -> Option<(u64, f64)> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_curve_stops_after_patience_and_keeps_the_earliest_best() {
        let mut s = EarlyStopping::new(3);
        let script = [
            (10, 0.5, Verdict::Improved),
            (20, 0.7, Verdict::Improved),
            (30, 0.7, Verdict::Continue),
            (40, 0.6, Verdict::Continue),
            (50, 0.7, Verdict::Stop),
        ];
        for (step, score, want) in script {
            assert_eq!(s.observe(step, score), want, "at {step}");
        }
        assert_eq!(s.best(), Some((20, 0.7)), "a tie does not move the best");
        assert_eq!(s.curve.len(), 5);
        let mut n = EarlyStopping::new(2);
        assert_eq!(n.observe(1, f64::NAN), Verdict::Continue);
        assert_eq!(n.observe(2, 0.1), Verdict::Improved);
    }
}
