//! Which run comes next. The runner asks its [`Schedule`] each time a worker is free and
//! tells it each run's outcome, so a schedule can add runs from what it has seen (a
//! sequential design adds seeds to undecided arms) or hold workers until a round ends.

use std::collections::VecDeque;

use stab_core::{RunRecord, RunSpec};

/// The answer to "what should a free worker do?".
#[derive(Debug)]
pub enum Next {
    /// Execute this run.
    Run(Box<RunSpec>),
    /// Nothing now; ask again when a run in flight ends.
    Wait,
    /// Nothing more will run.
    Done,
}

/// Decides the order of a grid's runs.
pub trait Schedule: Send {
    /// The next run for a free worker. `in_flight` runs are executing now.
    fn next(&mut self, in_flight: usize) -> Next;

    /// A run ended: its record, or `None` when it failed or was skipped.
    fn ended(&mut self, spec: &RunSpec, record: Option<&RunRecord>);

    /// Up to `most` runs handed out now, beside the one just given, that `matches` (a
    /// seed batch's other members); none by default.
    fn take_matching(
        &mut self,
        matches: &mut dyn FnMut(&RunSpec) -> bool,
        most: usize,
    ) -> Vec<RunSpec> {
        let _ = (matches, most);
        Vec::new()
    }
}

/// Take up to `most` runs that match out of a queue, keeping the others' order.
pub(crate) fn take_from(
    queue: &mut VecDeque<RunSpec>,
    matches: &mut dyn FnMut(&RunSpec) -> bool,
    most: usize,
) -> Vec<RunSpec> {
    let mut taken = Vec::new();
    let mut rest = VecDeque::with_capacity(queue.len());
    for spec in queue.drain(..) {
        if taken.len() < most && matches(&spec) {
            taken.push(spec);
        } else {
            rest.push_back(spec);
        }
    }
    *queue = rest;
    taken
}

/// The plan's order, each run once: what `stab run` does with a fixed grid.
#[derive(Debug, Default)]
pub struct PlanOrder {
    queue: VecDeque<RunSpec>,
}

impl PlanOrder {
    pub fn new(specs: impl IntoIterator<Item = RunSpec>) -> Self {
        Self {
            queue: specs.into_iter().collect(),
        }
    }
}

impl Schedule for PlanOrder {
    fn next(&mut self, _in_flight: usize) -> Next {
        self.queue
            .pop_front()
            .map_or(Next::Done, |spec| Next::Run(Box::new(spec)))
    }

    fn ended(&mut self, _spec: &RunSpec, _record: Option<&RunRecord>) {}

    fn take_matching(
        &mut self,
        matches: &mut dyn FnMut(&RunSpec) -> bool,
        most: usize,
    ) -> Vec<RunSpec> {
        take_from(&mut self.queue, matches, most)
    }
}
