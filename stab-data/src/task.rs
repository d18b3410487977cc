//! The task a run trains: one of the 11 built-in GLUE/SuperGLUE definitions, or a task of
//! the user's own (`[data.custom.<name>]`, [`crate::custom`]).

use std::sync::Arc;

use crate::tasks::{HeadKind, TaskDef};

/// A task's name, classes, head and metric, whatever defined it.
#[derive(Debug, Clone)]
pub enum Task {
    Builtin(&'static TaskDef),
    Custom(Arc<CustomTask>),
}

/// What a custom task's table and its train file determine.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTask {
    pub name: String,
    /// Class names in label-id order.
    pub labels: Vec<String>,
    /// `stab_eval::PrimaryMetric`'s name.
    pub metric: String,
}

impl PartialEq for Task {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Task::Builtin(a), Task::Builtin(b)) => a.name == b.name,
            (Task::Custom(a), Task::Custom(b)) => a == b,
            _ => false,
        }
    }
}

impl Task {
    pub fn name(&self) -> &str {
        match self {
            Task::Builtin(def) => def.name,
            Task::Custom(c) => &c.name,
        }
    }

    /// The class names in label-id order.
    pub fn labels(&self) -> Vec<&str> {
        match self {
            Task::Builtin(def) => def.labels.to_vec(),
            Task::Custom(c) => c.labels.iter().map(String::as_str).collect(),
        }
    }

    /// How many classes the head predicts.
    pub fn classes(&self) -> usize {
        match self {
            Task::Builtin(def) => def.labels.len(),
            Task::Custom(c) => c.labels.len(),
        }
    }

    /// Custom tasks train a classification head on the pooled text.
    pub fn head(&self) -> HeadKind {
        match self {
            Task::Builtin(def) => def.head,
            Task::Custom(_) => HeadKind::Classification,
        }
    }

    /// The primary metric's name (`stab_eval::PrimaryMetric::parse`).
    pub fn metric(&self) -> &str {
        match self {
            Task::Builtin(def) => def.metric,
            Task::Custom(c) => &c.metric,
        }
    }

    /// The built-in definition, for what only the official layouts have (files, Hub
    /// mapping, the author's split files).
    pub fn builtin(&self) -> Option<&'static TaskDef> {
        match self {
            Task::Builtin(def) => Some(def),
            Task::Custom(_) => None,
        }
    }
}
