//! The feature-cache reader: any bytes (raw, or after a valid safetensors header prefix
//! so that the metadata and checksum checks are reached) are reported damaged, or read as
//! feature sets that save and load back to the same sets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stab_methods::engine::cache_file::Cached;
use stab_methods::engine::features::{load, save};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("stab-fuzz-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("features.safetensors");
    std::fs::write(&path, data).unwrap();
    if let Cached::Valid(sets) = load(&path) {
        let again = dir.join("again.safetensors");
        save(&again, &sets, "fuzz").unwrap();
        match load(&again) {
            Cached::Valid(back) => assert_eq!(back, sets),
            other => panic!("a saved cache does not load: {other:?}"),
        }
    }
});
