//! One entry point for a recipe's task data, whatever its source (`[data] source`): the
//! official files in a directory, or the Hub through the Hugging Face cache.

use stab_core::{DataOrigin, InputError, stable_hash};

use crate::hub::{self, DatasetCache, HubDataset};
use crate::tasks::{TaskData, TaskDef};

/// A task's rows and the hash of the files they came from (a record's `inputs.data`).
#[derive(Debug, Clone)]
pub struct LoadedTask {
    pub data: TaskData,
    pub fingerprint: u64,
}

/// Read a task from its source. `cache` serves `source = "hub"`.
pub fn load_task(
    def: &TaskDef,
    origin: DataOrigin<'_>,
    cache: &DatasetCache,
) -> Result<LoadedTask, InputError> {
    match origin {
        DataOrigin::Dir(dir) => {
            let data = def.load(dir)?;
            Ok(LoadedTask {
                data,
                fingerprint: files_hash(def, dir)?,
            })
        }
        DataOrigin::Hub(overrides) => {
            let task = hub::load(def, &HubDataset::of(def, overrides), cache)?;
            Ok(LoadedTask {
                data: task.data,
                fingerprint: task.fingerprint,
            })
        }
    }
}

/// Hash of a task's train and test files, in that order, each with its length.
fn files_hash(def: &TaskDef, dir: &std::path::Path) -> Result<u64, InputError> {
    let mut bytes = Vec::new();
    for name in [def.files.0, def.files.1] {
        let path = def.path(dir, name);
        let content = std::fs::read(&path).map_err(|e| {
            InputError::new(format!("cannot read: {e}")).file(path.display().to_string())
        })?;
        bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&content);
    }
    Ok(stable_hash(&bytes))
}
