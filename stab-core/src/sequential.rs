//! The `[seeds]` table: how many seeds a grid spends, and when (docs/methods.md §13.6).
//!
//! `policy = "fixed"` (the default) runs `train.seeds` for every arm. `policy =
//! "sequential"` runs rounds: `min` seeds per arm, then `step` more for each arm whose
//! comparison with the baseline is still undecided, up to `max`. Look `k` (0-based) is made
//! at `n_k = min(min + k·step, max)` seeds; seed `s` belongs to the first round whose look
//! covers it. The statistics that decide live in `stab_eval::sequential`.

use serde::{Deserialize, Serialize};

use crate::error::InputError;

/// The `[seeds]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase")]
pub enum SeedPolicy {
    /// Every arm runs `train.seeds`.
    #[default]
    Fixed,
    /// Seeds are added round by round to the arms still undecided.
    Sequential(SequentialDesign),
}

/// Which difference an arm is tested for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Question {
    /// The SD of the test score over seeds (Brown–Forsythe), against the baseline's.
    #[default]
    Sd,
    /// The mean test score (Welch's t), against the baseline's.
    Mean,
    /// Both; an arm stops when both are decided.
    Both,
}

impl Question {
    /// The single questions asked (`both` asks `sd` and `mean`).
    pub fn asked(self) -> &'static [Question] {
        match self {
            Question::Sd => &[Question::Sd],
            Question::Mean => &[Question::Mean],
            Question::Both => &[Question::Sd, Question::Mean],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Question::Sd => "sd",
            Question::Mean => "mean",
            Question::Both => "both",
        }
    }
}

/// A sequential design (`[seeds] policy = "sequential"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequentialDesign {
    /// Seeds per arm before the first look.
    #[serde(default = "default_min")]
    pub min: u64,
    /// Seeds added to each undecided arm per round.
    #[serde(default = "default_step")]
    pub step: u64,
    /// Cap per arm: the last look.
    #[serde(default = "default_max")]
    pub max: u64,
    /// The method every other method is compared with (on the same task and sweep cell).
    #[serde(default = "default_baseline")]
    pub baseline: String,
    #[serde(default)]
    pub question: Question,
    /// The probability that the grid makes any wrong *lower*/*higher* decision, over all
    /// arms, questions and looks.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// An SD ratio in (`smallest_ratio`, 1/`smallest_ratio`) is no practical difference.
    #[serde(default = "default_smallest_ratio")]
    pub smallest_ratio: f64,
    /// A mean difference (score points, ×100) smaller than this is no practical
    /// difference; without it the mean question never stops for futility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smallest_difference: Option<f64>,
    /// Per arm and question, the probability of calling "no practical difference" when the
    /// true difference is exactly the smallest practical one.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// How `alpha` and `beta` are spent over the looks.
    #[serde(default)]
    pub spending: Spending,
}

/// An error-spending function `f(t)`, `t = n_k / max`: by look `k` a share `f(t_k)` of
/// `alpha` (and of `beta`) is spent; `f(0) = 0`, `f(1) = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spending {
    /// Lan & DeMets (1983), Pocock-type: `f(t) = ln(1 + (e − 1)·t)`. Spends early: 13 % of
    /// alpha at the first of twelve looks, where few seeds can reject anything.
    Pocock,
    /// Kim & DeMets (1987), the power family: `f(t) = t^ρ`. `ρ = 1` spends evenly; a larger
    /// ρ keeps more for the later looks, where the tests have their power.
    Power(f64),
}

impl Default for Spending {
    /// `t^1.5`: in the simulation of docs/methods.md §13.6 it has the most power at an SD
    /// ratio of 0.5 of the functions tried, for about the same seeds as Pocock's.
    fn default() -> Self {
        Spending::Power(1.5)
    }
}

impl std::fmt::Display for Spending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spending::Pocock => write!(f, "Lan–DeMets' Pocock-type function"),
            Spending::Power(rho) => write!(f, "t^{rho}"),
        }
    }
}

impl std::str::FromStr for Spending {
    type Err = String;

    /// `pocock` or `power=RHO`, as a command-line flag spells it.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a spending function; expected `pocock` or `power=RHO` (e.g. power=1.5)"
            )
        };
        match s.split_once('=') {
            None if s == "pocock" => Ok(Spending::Pocock),
            Some(("power", rho)) => match rho.parse::<f64>() {
                Ok(rho) if rho > 0.0 && rho.is_finite() => Ok(Spending::Power(rho)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl Spending {
    /// The share spent by information fraction `t` (clamped to [0, 1]).
    pub fn spent(self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Spending::Pocock => (1.0 + (std::f64::consts::E - 1.0) * t).ln(),
            Spending::Power(rho) => t.powf(rho),
        }
    }
}

fn default_min() -> u64 {
    5
}
fn default_step() -> u64 {
    5
}
fn default_max() -> u64 {
    60
}
fn default_baseline() -> String {
    "finetune".into()
}
fn default_alpha() -> f64 {
    0.05
}
fn default_smallest_ratio() -> f64 {
    0.7
}
fn default_beta() -> f64 {
    0.2
}

impl Default for SequentialDesign {
    fn default() -> Self {
        toml::from_str("").expect("every [seeds] key has a default")
    }
}

impl SequentialDesign {
    /// The seed counts at which looks are made: `min, min + step, …, max`.
    pub fn looks(&self) -> Vec<u64> {
        let mut n = self.min;
        let mut looks = Vec::new();
        loop {
            looks.push(n.min(self.max));
            if n >= self.max {
                return looks;
            }
            n += self.step;
        }
    }

    /// The round (0-based look) that seed `s` (0-based, in seed order) belongs to.
    pub fn round_of(&self, seed_index: u64) -> usize {
        self.looks()
            .iter()
            .position(|&n| seed_index < n)
            .unwrap_or(usize::MAX)
    }

    /// Check the values (types and unknown keys are serde's); `key` prefixes messages.
    pub fn check(&self) -> Result<(), InputError> {
        let bad = |key: &str, msg: String, hint: &str| {
            Err(InputError::new(msg)
                .key(format!("seeds.{key}"))
                .hint(hint.to_string()))
        };
        if !(3..=crate::limits::SEEDS.max).contains(&self.min) {
            return bad(
                "min",
                format!(
                    "seeds.min = {} is out of range; expected 3..={}",
                    self.min,
                    crate::limits::SEEDS.max
                ),
                "a first look needs a few seeds per arm: e.g. min = 5",
            );
        }
        if self.step == 0 {
            return bad(
                "step",
                "seeds.step = 0 adds no seeds".into(),
                "e.g. step = 5",
            );
        }
        if self.max < self.min || self.max > crate::limits::SEEDS.max {
            return bad(
                "max",
                format!(
                    "seeds.max = {} must be at least seeds.min = {} and at most {}",
                    self.max,
                    self.min,
                    crate::limits::SEEDS.max
                ),
                "e.g. min = 5, max = 60",
            );
        }
        if let Spending::Power(rho) = self.spending
            && !(rho > 0.0 && rho.is_finite())
        {
            return bad(
                "spending",
                format!("seeds.spending = {{ power = {rho} }} needs a positive exponent"),
                "spending = \"pocock\", or { power = 1.5 } (t^1.5; 1 spends evenly)",
            );
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad(
                "alpha",
                format!(
                    "seeds.alpha = {} is not a probability in (0, 1)",
                    self.alpha
                ),
                "e.g. alpha = 0.05",
            );
        }
        if !(self.beta > 0.0 && self.beta < 1.0) {
            return bad(
                "beta",
                format!("seeds.beta = {} is not a probability in (0, 1)", self.beta),
                "e.g. beta = 0.2",
            );
        }
        if !(self.smallest_ratio > 0.0 && self.smallest_ratio < 1.0) {
            return bad(
                "smallest_ratio",
                format!(
                    "seeds.smallest_ratio = {} must lie in (0, 1)",
                    self.smallest_ratio
                ),
                "an SD ratio between smallest_ratio and its inverse is no practical difference: e.g. 0.7",
            );
        }
        if let Some(d) = self.smallest_difference
            && !(d > 0.0 && d.is_finite())
        {
            return bad(
                "smallest_difference",
                format!(
                    "seeds.smallest_difference = {d} must be a positive number of score points"
                ),
                "e.g. smallest_difference = 1.0 (one point of accuracy ×100)",
            );
        }
        if self.baseline.trim().is_empty() {
            return bad(
                "baseline",
                "seeds.baseline is empty".into(),
                "name a method of the recipe, e.g. baseline = \"finetune\"",
            );
        }
        Ok(())
    }
}

/// What a run of a sequential grid carries into its record: the round it ran in and the
/// design that chose it, so reports and replays need nothing but the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialMark {
    pub round: usize,
    pub design: SequentialDesign,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_end_at_max_and_rounds_follow_seeds() {
        let d = SequentialDesign {
            min: 5,
            step: 5,
            max: 12,
            ..Default::default()
        };
        assert_eq!(d.looks(), vec![5, 10, 12]);
        assert_eq!(d.round_of(0), 0);
        assert_eq!(d.round_of(4), 0);
        assert_eq!(d.round_of(5), 1);
        assert_eq!(d.round_of(11), 2);
        assert_eq!(SequentialDesign::default().looks().len(), 12);
    }

    #[test]
    fn parses_the_contract_and_checks_values() {
        let p: SeedPolicy = toml::from_str(
            "policy = \"sequential\"\nmin = 5\nstep = 5\nmax = 60\nbaseline = \"finetune\"\nquestion = \"sd\"\nalpha = 0.05\nsmallest_ratio = 0.7\n",
        )
        .unwrap();
        let SeedPolicy::Sequential(d) = p else {
            panic!("sequential")
        };
        assert_eq!(d, SequentialDesign::default());
        let bad = SequentialDesign {
            smallest_ratio: 1.5,
            ..Default::default()
        };
        assert_eq!(
            bad.check().unwrap_err().key.as_deref(),
            Some("seeds.smallest_ratio")
        );
        assert!(toml::from_str::<SeedPolicy>("policy = \"sequential\"\nmaxx = 3\n").is_err());
        assert_eq!(
            toml::from_str::<SeedPolicy>("policy = \"fixed\"\n").unwrap(),
            SeedPolicy::Fixed
        );
    }

    #[test]
    fn spending_reads_as_a_name_or_a_power_and_checks_its_exponent() {
        let read = |t: &str| {
            toml::from_str::<SequentialDesign>(t)
                .map(|d| d.spending)
                .map_err(|e| e.to_string())
        };
        assert_eq!(read(""), Ok(Spending::Power(1.5)));
        assert_eq!(read("spending = \"pocock\""), Ok(Spending::Pocock));
        assert_eq!(read("spending = { power = 2.0 }"), Ok(Spending::Power(2.0)));
        assert!(read("spending = \"obrien\"").is_err());
        let bad: SequentialDesign = toml::from_str("spending = { power = -1.0 }").unwrap();
        assert_eq!(
            bad.check().unwrap_err().key.as_deref(),
            Some("seeds.spending")
        );
        assert_eq!("pocock".parse(), Ok(Spending::Pocock));
        assert_eq!("power=1".parse(), Ok(Spending::Power(1.0)));
        assert!("power=0".parse::<Spending>().is_err());
        assert!((Spending::Power(1.5).spent(0.25) - 0.125).abs() < 1e-15);
        assert!((Spending::Pocock.spent(1.0) - 1.0).abs() < 1e-15);
    }
}
