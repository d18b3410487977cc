//! The sequential schedule (`[seeds] policy = "sequential"`, docs/methods.md §13.6): rounds
//! of seeds, each round given only to the arms whose comparison with the baseline is
//! still undecided.
//!
//! The schedule keeps no state of its own beyond the store: before each round it replays
//! the rule ([`stab_eval::sequential::Rule`]) over the recorded scores of every arm in seed
//! order, so a killed grid, a resumed one and the shards of a Slurm array all compute the
//! same rounds. Seed `s` belongs to round `design.round_of(s)`; a run carries its round and
//! the design into its record ([`SequentialMark`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use stab_core::sequential::{SequentialDesign, SequentialMark};
use stab_core::{InputError, RunRecord, RunSpec, Shard};
use stab_eval::sequential::{Comparison, Outcome, Rule, score};

use crate::schedule::{Next, Schedule};

/// One arm: a method configuration's runs of one task and sweep cell, by seed.
#[derive(Debug, Clone)]
pub struct Arm {
    pub task: String,
    /// The method and its parameters as the plan names them (`mixout p=0.1`).
    pub label: String,
    pub runs: Vec<RunSpec>,
}

/// A baseline and the arms compared with it (one task, one sweep cell).
#[derive(Debug, Clone)]
pub struct Cell {
    pub baseline: Arm,
    pub arms: Vec<Arm>,
}

/// Where an arm stands after the rounds recorded so far.
#[derive(Debug, Clone)]
pub struct ArmState {
    pub task: String,
    pub label: String,
    /// One outcome per question asked.
    pub outcomes: Vec<Outcome>,
    /// Seeds run (recorded), diverged included.
    pub seeds_run: usize,
}

/// Hands out the runs of a sequential grid round by round.
pub struct SequentialSchedule {
    design: SequentialDesign,
    cells: Vec<Cell>,
    /// Score of each recorded run (`None`: recorded, but diverged).
    scores: HashMap<String, Option<f64>>,
    failed: HashSet<String>,
    queue: VecDeque<RunSpec>,
    /// Rounds handed out by this process.
    pub rounds_run: usize,
    /// Run only one round, only this shard's share of it (a Slurm array task).
    one_round: Option<Shard>,
}

impl SequentialSchedule {
    /// Group a plan's runs into cells and arms and read what the store already holds.
    pub fn new(
        design: &SequentialDesign,
        specs: &[&RunSpec],
        records: &[RunRecord],
        one_round: Option<Shard>,
    ) -> stab_core::Result<Self> {
        let cells = cells(design, specs)?;
        let ids: HashSet<&str> = specs.iter().map(|s| s.run_id.as_str()).collect();
        let scores = records
            .iter()
            .filter(|r| ids.contains(r.run_id.as_str()))
            .map(|r| (r.run_id.clone(), score(r)))
            .collect();
        Ok(Self {
            design: design.clone(),
            cells,
            scores,
            failed: HashSet::new(),
            queue: VecDeque::new(),
            rounds_run: 0,
            one_round,
        })
    }

    /// The scored prefix of an arm: scores of its seeds in order up to the first seed not
    /// yet recorded; `(scores, seeds recorded in that prefix)`.
    fn prefix(&self, arm: &Arm) -> (Vec<f64>, usize) {
        let mut scores = Vec::new();
        let mut n = 0;
        for run in &arm.runs {
            match self.scores.get(&run.run_id) {
                Some(Some(s)) => scores.push(*s),
                Some(None) => {}
                None => break,
            }
            n += 1;
        }
        (scores, n)
    }

    /// Every arm's decisions from the scores recorded so far.
    pub fn states(&self) -> Vec<ArmState> {
        let mut outcomes = self.outcomes(usize::MAX).into_iter();
        let mut states = Vec::new();
        for cell in &self.cells {
            for arm in &cell.arms {
                states.push(ArmState {
                    task: arm.task.clone(),
                    label: arm.label.clone(),
                    outcomes: outcomes.next().unwrap_or_default(),
                    seeds_run: self.prefix(arm).1,
                });
            }
        }
        states
    }

    /// The rule over the grid's first `upto` scores of every arm and baseline, all arms
    /// together (they share alpha): per arm in cell order, its outcome on each question.
    fn outcomes(&self, upto: usize) -> Vec<Vec<Outcome>> {
        let prefix = |arm: &Arm| {
            let (mut scores, _) = self.prefix(arm);
            scores.truncate(upto);
            scores
        };
        let sides: Vec<(Vec<f64>, Vec<f64>)> = self
            .cells
            .iter()
            .flat_map(|cell| {
                let base = prefix(&cell.baseline);
                cell.arms.iter().map(move |arm| (prefix(arm), base.clone()))
            })
            .collect();
        let questions = self.design.question.asked();
        let comparisons: Vec<Comparison> = sides
            .iter()
            .flat_map(|(arm, base)| {
                questions.iter().map(move |&question| Comparison {
                    question,
                    arm,
                    base,
                })
            })
            .collect();
        Rule::new(&self.design)
            .replay_grid(&comparisons)
            .chunks(questions.len())
            .map(<[Outcome]>::to_vec)
            .collect()
    }

    /// The round the grid is in and all of its runs (recorded or not): the first round
    /// with a run not yet recorded; `None` when every arm is decided or at `max`.
    ///
    /// Round `r` is decided from the first `n_{r−1}` scores of every arm only, which the
    /// complete rounds before it hold, so every process (a resumed grid, each shard of a
    /// Slurm array) computes the same round whatever part of it is recorded already.
    pub fn current_round(&self) -> Option<(usize, Vec<RunSpec>)> {
        for r in 0..self.design.looks().len() {
            let runs = self.round_runs(r);
            if runs.is_empty() {
                return None;
            }
            if runs
                .iter()
                .any(|run| !self.scores.contains_key(&run.run_id))
            {
                return Some((r, runs));
            }
        }
        None
    }

    /// The runs of round `r`: for every arm still undecided after the looks before it,
    /// the seeds that bring it from `n_{r−1}` to `n_r` scores (more where runs diverged),
    /// and the baseline's as far as its arms'.
    fn round_runs(&self, r: usize) -> Vec<RunSpec> {
        let looks = self.design.looks();
        let (before, target) = (
            if r == 0 { 0 } else { looks[r - 1] as usize },
            looks[r] as usize,
        );
        let outcomes = (r > 0).then(|| self.outcomes(before));
        let mut arm_index = 0;
        let mut out = Vec::new();
        for cell in &self.cells {
            let mut any = false;
            for arm in &cell.arms {
                let open = outcomes
                    .as_ref()
                    .is_none_or(|o| o[arm_index].iter().any(|o| o.next_n == Some(target)));
                arm_index += 1;
                if !open {
                    continue;
                }
                any = true;
                out.extend(self.window(arm, before, target, r));
            }
            if any {
                out.extend(self.window(&cell.baseline, before, target, r));
            }
        }
        out
    }

    /// An arm's runs that take its scored seeds from `from` to `to` (a diverged run is
    /// recorded without a score, so one more seed stands in for it), marked with round `r`.
    fn window(&self, arm: &Arm, from: usize, to: usize, r: usize) -> Vec<RunSpec> {
        let mut counted = 0;
        let mut out = Vec::new();
        for run in &arm.runs {
            if counted >= to {
                break;
            }
            if !matches!(self.scores.get(&run.run_id), Some(None)) {
                counted += 1;
            }
            if counted > from {
                let mut run = run.clone();
                run.sequential = Some(SequentialMark {
                    round: r,
                    design: self.design.clone(),
                });
                out.push(run);
            }
        }
        out
    }
}

impl Schedule for SequentialSchedule {
    fn next(&mut self, in_flight: usize) -> Next {
        if let Some(spec) = self.queue.pop_front() {
            return Next::Run(Box::new(spec));
        }
        if in_flight > 0 {
            return Next::Wait;
        }
        if self.one_round.is_some() && self.rounds_run > 0 {
            return Next::Done;
        }
        let Some((_, mut round)) = self.current_round() else {
            return Next::Done;
        };
        if let Some(shard) = self.one_round {
            // The shard's share of the whole round, so the shares do not depend on which
            // of the round's runs are recorded already.
            round = stab_core::cost::shard_of(&round, shard.index, shard.count)
                .into_iter()
                .cloned()
                .collect();
        }
        round.retain(|run| {
            !self.scores.contains_key(&run.run_id) && !self.failed.contains(&run.run_id)
        });
        self.rounds_run += 1;
        self.queue = round.into();
        match self.queue.pop_front() {
            Some(spec) => Next::Run(Box::new(spec)),
            None => Next::Done,
        }
    }

    fn take_matching(
        &mut self,
        matches: &mut dyn FnMut(&RunSpec) -> bool,
        most: usize,
    ) -> Vec<RunSpec> {
        crate::schedule::take_from(&mut self.queue, matches, most)
    }

    fn ended(&mut self, spec: &RunSpec, record: Option<&RunRecord>) {
        match record {
            Some(r) => {
                self.scores.insert(spec.run_id.clone(), score(r));
            }
            None => {
                self.failed.insert(spec.run_id.clone());
            }
        }
    }
}

/// ` key=value` for each setting: how a label names a method's parameters and sweep values.
pub(crate) fn settings_text<'a>(
    settings: impl IntoIterator<Item = (&'a String, &'a serde_json::Value)>,
) -> String {
    settings
        .into_iter()
        .map(|(k, v)| format!(" {k}={v}"))
        .collect()
}

/// The cell of a run: its task and the sweep values other than its own method's
/// parameters (FineTune has no `mhloss.heads`); the arm within it: method and parameters.
fn cells(design: &SequentialDesign, specs: &[&RunSpec]) -> stab_core::Result<Vec<Cell>> {
    let mut by_cell: BTreeMap<String, BTreeMap<String, Arm>> = BTreeMap::new();
    for spec in specs {
        let own = |k: &str| stab_core::plan::is_own_method_key(&spec.method, k);
        let sweep: BTreeMap<&String, &serde_json::Value> =
            spec.sweep.iter().filter(|(k, _)| !own(k)).collect();
        let cell = format!(
            "{} {}",
            spec.task,
            serde_json::to_string(&sweep).unwrap_or_default()
        );
        let label = format!(
            "{}{}{}",
            spec.method,
            settings_text(&spec.method_params),
            settings_text(spec.sweep.iter().filter(|(k, _)| own(k)))
        );
        by_cell
            .entry(cell)
            .or_default()
            .entry(label.clone())
            .or_insert_with(|| Arm {
                task: spec.task.clone(),
                label,
                runs: Vec::new(),
            })
            .runs
            .push((*spec).clone());
    }
    let mut cells = Vec::new();
    for (cell, arms) in by_cell {
        let (mut base, others): (Vec<Arm>, Vec<Arm>) = arms
            .into_values()
            .partition(|a| a.runs[0].method == design.baseline);
        if base.len() != 1 {
            return Err(InputError::new(format!(
                "the sequential grid's cell `{cell}` has {} configurations of the baseline `{}`; it needs exactly one",
                base.len(),
                design.baseline
            ))
            .key("seeds.baseline")
            .hint("every task and sweep cell needs one baseline arm: give the baseline method one [[methods]] table")
            .into());
        }
        let mut baseline = base.remove(0);
        baseline.runs.sort_by_key(|r| r.seed);
        let arms = others
            .into_iter()
            .map(|mut a| {
                a.runs.sort_by_key(|r| r.seed);
                a
            })
            .collect();
        cells.push(Cell { baseline, arms });
    }
    Ok(cells)
}
