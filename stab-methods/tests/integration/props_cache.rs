//! Property tests of the feature-cache reader: a valid cache with random byte edits, or
//! random bytes, is read back unchanged or reported damaged — never a panic, never a
//! huge allocation from a damaged size, and never wrong values read as valid (the
//! safetensors format of `features/3`, checksummed).

use proptest::prelude::*;
use stab_methods::engine::cache_file::Cached;
use stab_methods::engine::features::{FeatureSet, cache_path, load, save};

fn sets() -> impl Strategy<Value = Vec<FeatureSet>> {
    let pooled = (1usize..5, 0usize..6).prop_flat_map(|(dim, rows)| {
        proptest::collection::vec(-2.0f32..2.0, dim * rows)
            .prop_map(move |data| FeatureSet::Pooled { dim, data })
    });
    let spans = (1usize..3, 1usize..3, 0usize..4).prop_flat_map(|(dim, width, rows)| {
        (
            proptest::collection::vec(-2.0f32..2.0, rows * 2 * width * dim),
            proptest::collection::vec(0u32..=width as u32, rows * 2),
        )
            .prop_map(move |(data, lengths)| FeatureSet::Spans {
                dim,
                width,
                data,
                lengths,
            })
    });
    proptest::collection::vec(prop_oneof![pooled, spans], 1..4)
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    /// Overwrite 8 bytes with a huge little-endian count.
    Huge(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Edit::Flip(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Huge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn edited_caches_are_read_back_or_reported_damaged(sets in sets(), edits in proptest::collection::vec(edit(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), 7);
        save(&path, &sets, "test").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let original = bytes.clone();
        for e in &edits {
            let n = bytes.len().max(1);
            match *e {
                Edit::Flip(i, b) if !bytes.is_empty() => bytes[i % n] ^= b,
                Edit::Truncate(i) => bytes.truncate(i % n),
                Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
                Edit::Huge(i) if bytes.len() >= 8 => {
                    let at = i % (bytes.len() - 7);
                    bytes[at..at + 8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
                }
                _ => {}
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        match load(&path) {
            Cached::Valid(read) => {
                // A file reads as valid only with exactly the saved values (an edit of the
                // header's padding may leave the contents as they were).
                prop_assert_eq!(read, sets);
            }
            Cached::Damaged(_) => prop_assert_ne!(&bytes, &original),
            Cached::Missing => prop_assert!(false, "the file is there"),
        }
    }

    #[test]
    fn random_bytes_are_reported_damaged(bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), 8);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut content = if magic { b"STABFT02".to_vec() } else { Vec::new() };
        content.extend(bytes);
        std::fs::write(&path, content).unwrap();
        prop_assert!(matches!(load(&path), Cached::Damaged(_)));
    }
}
