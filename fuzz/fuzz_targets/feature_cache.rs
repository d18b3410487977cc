//! The feature-cache reader: any bytes (raw, or framed with a correct length and CRC so
//! that the payload parser itself is reached) are reported damaged, or read as feature
//! sets that save back to exactly those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stab_methods::engine::cache_file::Cached;
use stab_methods::engine::features::{load, save};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("stab-fuzz-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("features.bin");
    let mut content = b"STABFT02".to_vec();
    content.extend_from_slice(bytes);
    if mode & 1 == 1 {
        content.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        content.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    }
    std::fs::write(&path, &content).unwrap();
    if let Cached::Valid(sets) = load(&path) {
        let again = dir.join("again.bin");
        save(&again, &sets, "fuzz").unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), content);
    }
});
