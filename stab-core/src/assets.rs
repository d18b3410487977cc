//! Where the shared test assets are (design.md §8): `shared/fixtures` (tiny models, golden
//! outputs) and `shared/data` (GLUE/SuperGLUE files), which live beside the repository.

use std::path::{Path, PathBuf};

/// The `shared` directory: `$STAB_SHARED`, else the first `shared/` holding `fixtures/` or
/// `data/` in `start` or one of its ancestors. Panics with instructions when absent, since
/// tests that need it cannot run without it.
pub fn shared_dir(start: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("STAB_SHARED") {
        return PathBuf::from(p);
    }
    start
        .ancestors()
        .map(|a| a.join("shared"))
        .find(|p| p.join("fixtures").is_dir() || p.join("data").is_dir())
        .unwrap_or_else(|| panic!("no shared/ directory above {}; set STAB_SHARED to the directory holding fixtures/ and data/", start.display()))
}
