//! Scoring a model on a part of the task: predicted labels in eval-mode batches, from
//! token rows (the encoder runs) or cached features, and the task's metrics on them.

use anyhow::Context as _;
use burn::tensor::{Device, Tensor};
use stab_data::encode::EncodedRow;
use stab_eval::metrics::PrimaryMetric;
use stab_models::{HeadInput, HostReads};

use crate::features::{self, FeatureSet};
use crate::model::{Forward, TaskModel, TokenInput};
use crate::session::PreparedTask;

/// Evaluation batch size (jiant: twice the training batch of 16).
const EVAL_BATCH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Dev,
    Test,
}

/// Where a run's examples come from: token rows (the encoder runs) or cached features.
pub(super) enum Source<'a> {
    Tokens {
        train: &'a [EncodedRow],
        dev: &'a [EncodedRow],
        test: &'a [EncodedRow],
        pad_id: i64,
    },
    Features {
        train: &'a FeatureSet,
        dev: &'a FeatureSet,
        test: &'a FeatureSet,
        train_rows: &'a [usize],
    },
}

/// A training batch as the model read it.
#[allow(clippy::large_enum_variant)]
pub(super) enum Batch {
    Tokens(TokenInput),
    Features(HeadInput),
}

impl Batch {
    pub(super) fn tokens(&self) -> Option<&TokenInput> {
        match self {
            Batch::Tokens(t) => Some(t),
            Batch::Features(_) => None,
        }
    }

    pub(super) fn features(&self) -> Option<&HeadInput> {
        match self {
            Batch::Features(f) => Some(f),
            Batch::Tokens(_) => None,
        }
    }
}

impl Source<'_> {
    /// The training rows `rows` (indices into the run's rows) as a batch, and the
    /// model's forward on it.
    pub(super) fn forward_train(
        &self,
        model: &TaskModel,
        rows: &[usize],
        device: &Device,
    ) -> (Forward, Batch) {
        match self {
            Source::Tokens { train, pad_id, .. } => {
                let refs: Vec<&EncodedRow> = rows.iter().map(|&i| &train[i]).collect();
                let input = TokenInput::new(&refs, *pad_id, None);
                (model.forward_tokens(&input, device), Batch::Tokens(input))
            }
            Source::Features {
                train, train_rows, ..
            } => {
                let idx: Vec<usize> = rows.iter().map(|&i| train_rows[i]).collect();
                let features = train.batch(&idx, device);
                (
                    model.forward_features(features.clone()),
                    Batch::Features(features),
                )
            }
        }
    }

    /// Predicted label ids of every row of a part (eval mode, batches of 32).
    fn predict(&self, model: &TaskModel, part: Part) -> Vec<usize> {
        let mut out = Vec::new();
        match self {
            Source::Tokens {
                dev, test, pad_id, ..
            } => {
                let rows = if part == Part::Dev { dev } else { test };
                let device = model.head.out_layers().weight.val().device();
                out = vec![0; rows.len()];
                for chunk in features::by_length(rows).chunks(EVAL_BATCH) {
                    let refs: Vec<&EncodedRow> = chunk.iter().map(|&i| &rows[i]).collect();
                    let input = TokenInput::new(&refs, *pad_id, None);
                    for (&i, p) in chunk.iter().zip(argmax(
                        model.forward_tokens(&input, &device).head.mean_logits(),
                    )) {
                        out[i] = p;
                    }
                }
            }
            Source::Features { dev, test, .. } => {
                let set = if part == Part::Dev { dev } else { test };
                let device = model.head.out_layers().weight.val().device();
                let all: Vec<usize> = (0..set.rows()).collect();
                for chunk in all.chunks(256) {
                    out.extend(argmax(
                        model
                            .forward_features(set.batch(chunk, &device))
                            .head
                            .mean_logits(),
                    ));
                }
            }
        }
        out
    }

    /// Every metric of the task on a part.
    pub(super) fn metrics(
        &self,
        model: &TaskModel,
        part: Part,
        task: &PreparedTask,
    ) -> stab_core::Result<std::collections::BTreeMap<String, f64>> {
        Ok(self.metrics_and_predictions(model, part, task)?.0)
    }

    /// Every metric of the task on a part, and the predicted label of each row.
    pub(super) fn metrics_and_predictions(
        &self,
        model: &TaskModel,
        part: Part,
        task: &PreparedTask,
    ) -> stab_core::Result<(std::collections::BTreeMap<String, f64>, Vec<usize>)> {
        let rows = if part == Part::Dev {
            &task.dev
        } else {
            &task.test
        };
        let pred = self.predict(model, part);
        Ok((score_rows(&pred, rows, task)?, pred))
    }

    /// The primary metric on a part.
    pub(super) fn score(
        &self,
        model: &TaskModel,
        part: Part,
        task: &PreparedTask,
    ) -> stab_core::Result<f64> {
        Ok(self.metrics(model, part, task)?["primary"])
    }
}

/// The task's metrics of predictions `pred` on `rows`.
fn score_rows(
    pred: &[usize],
    rows: &[EncodedRow],
    task: &PreparedTask,
) -> stab_core::Result<std::collections::BTreeMap<String, f64>> {
    let metric = PrimaryMetric::parse(task.def.metric())
        .with_context(|| format!("unknown metric {}", task.def.metric()))?;
    let gold: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let questions: Option<Vec<u64>> = rows.iter().map(|r| r.question).collect();
    Ok(metric.evaluate(pred, &gold, task.def.classes(), questions.as_deref()))
}

/// The primary metric of always predicting the most frequent label of the test split
/// (the lowest label id among ties): the score at or below which a run has failed
/// (Mosbach et al. 2021; MCC gives 0).
pub(super) fn majority_score(task: &PreparedTask) -> stab_core::Result<f64> {
    majority_on(&task.test, task)
}

/// The same on the dev split: the line a run's dev score must rise above
/// (`stop_failed`).
pub(super) fn majority_dev_score(task: &PreparedTask) -> stab_core::Result<f64> {
    majority_on(&task.dev, task)
}

fn majority_on(rows: &[EncodedRow], task: &PreparedTask) -> stab_core::Result<f64> {
    let metric = PrimaryMetric::parse(task.def.metric())
        .with_context(|| format!("unknown metric {}", task.def.metric()))?;
    let gold: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let questions: Option<Vec<u64>> = rows.iter().map(|r| r.question).collect();
    Ok(metric.majority(&gold, task.def.classes(), questions.as_deref()))
}

fn argmax(logits: Tensor<2>) -> Vec<usize> {
    let [b, _] = logits.dims();
    let ids = logits.argmax(1).reshape([b]);
    HostReads::data(ids)
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("int ids")
        .into_iter()
        .map(|v| v as usize)
        .collect()
}
