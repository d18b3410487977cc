//! Property tests of the results store: any bytes in a store file read back without a
//! panic or an error (unreadable lines are skipped and named), and any record, non-finite
//! metrics included, round-trips.

use proptest::prelude::*;
use stab_core::{ResultsStore, RunRecord};

fn record(id: &str, metric: f64, dev: Option<f64>) -> RunRecord {
    let mut r: RunRecord = serde_json::from_str(&format!(
        "{{\"run_id\":\"{id}\",\"recipe\":\"r\",\"task\":\"t\",\"method\":\"m\",\"method_params\":{{}},\"seed\":1,\"mode\":null,\"sweep\":{{}},\"metrics\":{{}},\"dev_best\":null,\"best_step\":null,\"steps\":1,\"wall_s\":0.5,\"stab_version\":\"x\"}}"
    ))
    .unwrap();
    r.metrics.insert("primary".into(), metric);
    r.dev_best = dev;
    r
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_read_back_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), good_first in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut data = Vec::new();
        if good_first {
            data.extend(serde_json::to_string(&record("ok", 0.5, None)).unwrap().into_bytes());
            data.push(b'\n');
        }
        data.extend(&bytes);
        std::fs::write(dir.path().join("runs.jsonl"), &data).unwrap();
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        if good_first {
            prop_assert!(c.records.iter().any(|r| r.run_id == "ok"));
        }
        // Opening for append terminates a torn tail and never rewrites earlier bytes.
        let mut s = ResultsStore::open(dir.path(), None).unwrap();
        s.append(&record("new", 1.0, None)).unwrap();
        let after = std::fs::read(dir.path().join("runs.jsonl")).unwrap();
        prop_assert!(after.starts_with(&data));
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        prop_assert!(c.records.iter().any(|r| r.run_id == "new"));
    }

    #[test]
    fn any_metric_round_trips(m in prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
                              d in proptest::option::of(any::<f64>())) {
        let r = record("x", m, d);
        let back: RunRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        prop_assert!(same(back.metrics["primary"], m));
        prop_assert_eq!(back.dev_best.is_some(), d.is_some());
        if let (Some(a), Some(b)) = (back.dev_best, d) {
            prop_assert!(same(a, b));
        }
    }
}
