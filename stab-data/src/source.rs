//! One entry point for a recipe's task data, whatever its source: a custom task's own
//! files (`[data.custom.<name>]`), or a built-in task's (`[data] source`) official files in
//! a directory or the Hub through the Hugging Face cache.

use stab_core::{DataOrigin, DataSection, InputError, stable_hash};

use crate::custom::{self, HeldOutTest};
use crate::hub::{self, DatasetCache, HubDataset};
use crate::tasks::{TaskData, TaskDef, task_def};

/// A task's rows and the hash of the files they came from (a record's `inputs.data`).
#[derive(Debug, Clone)]
pub struct LoadedTask {
    pub data: TaskData,
    pub fingerprint: u64,
    /// The train rows a custom task holds out as test (written beside the store).
    pub held_out: Option<HeldOutTest>,
}

/// Read the task `name` of a recipe's `[data]`: its own table's files, or a built-in task
/// from the section's source.
pub fn load_recipe_task(
    name: &str,
    data: &DataSection,
    cache: &DatasetCache,
) -> Result<LoadedTask, InputError> {
    match data.custom_task(name) {
        Some(spec) => {
            let c = custom::load(name, spec, cache)?;
            Ok(LoadedTask {
                data: c.data,
                fingerprint: c.fingerprint,
                held_out: c.held_out,
            })
        }
        None => load_task(task_def(name)?, data.origin(), cache),
    }
}

/// Read a task from its source. `cache` serves `source = "hub"`.
pub fn load_task(
    def: &'static TaskDef,
    origin: DataOrigin<'_>,
    cache: &DatasetCache,
) -> Result<LoadedTask, InputError> {
    match origin {
        DataOrigin::Dir(dir) => {
            let data = def.load(dir)?;
            Ok(LoadedTask {
                data,
                fingerprint: files_hash(def, dir)?,
                held_out: None,
            })
        }
        DataOrigin::Hub(overrides) => {
            let task = hub::load(def, &HubDataset::of(def, overrides), cache)?;
            Ok(LoadedTask {
                data: task.data,
                fingerprint: task.fingerprint,
                held_out: None,
            })
        }
    }
}

/// Hash of a task's train and test files, in that order, each with its length.
fn files_hash(def: &TaskDef, dir: &std::path::Path) -> Result<u64, InputError> {
    hash_files([def.files.0, def.files.1].map(|name| def.path(dir, name)))
}

/// A record's `inputs.data`: the hash of the files' bytes, in order, each preceded by its
/// length.
pub(crate) fn hash_files<P: AsRef<std::path::Path>>(
    paths: impl IntoIterator<Item = P>,
) -> Result<u64, InputError> {
    let mut bytes = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let content = std::fs::read(path).map_err(|e| {
            InputError::new(format!("cannot read: {e}")).file(path.display().to_string())
        })?;
        bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&content);
    }
    Ok(stable_hash(&bytes))
}
