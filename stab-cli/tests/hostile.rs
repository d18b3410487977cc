//! Hostile inputs, as a new user would try them: recipes, flags, data files, model
//! directories and stores. Every case must end with exit code 0, 1 or 2 and one clear
//! message, never a panic. The table of cases, codes and first message lines is printed
//! (`cargo test -p stab-cli --test hostile -- --nocapture`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../testsupport/assets.rs"]
mod assets;

fn stab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stab"));
    c.env("STAB_LOG", "warn");
    c
}

struct Case {
    what: &'static str,
    args: Vec<String>,
    code: i32,
    /// Words the message (stderr, or stdout on success) must contain.
    says: &'static str,
}

fn synthetic(extra: &str) -> String {
    format!(
        "name = \"h\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\ndatasets = 2\npoints = 20\nsteps = 5\n{extra}"
    )
}

fn finetune(model: &str, data: &str, extra_train: &str, tail: &str) -> String {
    format!(
        "name = \"f\"\n[model]\npath = \"{model}\"\nmax_len = 64\n[data]\ndir = \"{data}\"\ntasks = [\"cb\"]\n[train]\nmax_steps = 1\nseeds = 1\n{extra_train}\n[[methods]]\nname = \"finetune\"\n{tail}"
    )
}

#[test]
fn hostile_inputs_exit_0_1_or_2_with_one_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tiny = assets::fixtures().join("tiny-bert");
    let (tiny_s, data_s) = (
        tiny.display().to_string(),
        assets::slices().display().to_string(),
    );
    let mut n = 0;
    let mut file = |text: &[u8]| -> String {
        n += 1;
        let p = t.join(format!("case{n}.toml"));
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let out = |name: &str| t.join(name).display().to_string();
    let plan = |f: String| vec!["plan".to_string(), f];
    let run = |f: String, o: String| vec!["run".to_string(), f, "--out".to_string(), o];
    let ft = |extra_train: &str, tail: &str| finetune(&tiny_s, &data_s, extra_train, tail);
    let mut cases = vec![
        Case { what: "recipe: unknown key", args: plan(file(synthetic("datasetz = 3\n").as_bytes())), code: 2, says: "did you mean `datasets`" },
        Case { what: "recipe: wrong type", args: plan(file(synthetic("dim = \"two\"\n").as_bytes())), code: 2, says: "invalid type" },
        Case { what: "recipe: unknown factor", args: plan(file(b"name = \"h\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margn\"\n")), code: 2, says: "did you mean `margin`" },
        Case { what: "recipe: empty values", args: plan(file(synthetic("values = []\n").as_bytes())), code: 2, says: "`values` is empty" },
        Case { what: "recipe: margin ≥ bound", args: plan(file(b"name = \"h\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"samples\"\nmargin = 3.0\nbound = 2.0\n")), code: 2, says: "must be smaller than bound" },
        Case { what: "recipe: steps = 0", args: plan(file(b"name = \"h\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nsteps = 0\n")), code: 2, says: "nothing to compute" },
        Case { what: "recipe: loo_samples = 0", args: plan(file(synthetic("loo_samples = 0\n").as_bytes())), code: 2, says: "loo_samples = 0" },
        Case { what: "recipe: empty checkpoints", args: plan(file(synthetic("checkpoints = []\n").as_bytes())), code: 2, says: "`checkpoints` is empty" },
        Case { what: "recipe: datasets = 10⁹", args: plan(file(synthetic("datasets = 1000000000\n").replace("datasets = 2\n", "").as_bytes())), code: 2, says: "too large" },
        Case { what: "recipe: points = 10⁹", args: plan(file(synthetic("points = 1000000000\n").replace("points = 20\n", "").as_bytes())), code: 2, says: "too large" },
        Case { what: "recipe: values = [nan]", args: plan(file(synthetic("values = [nan]\n").as_bytes())), code: 2, says: "non-finite" },
        Case { what: "recipe: bound = inf", args: plan(file(b"name = \"h\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"samples\"\nbound = inf\n")), code: 2, says: "not a finite number" },
        Case { what: "recipe: heads = 0", args: plan(file(synthetic("heads = 0\n").as_bytes())), code: 2, says: "heads must be at least 1" },
        Case { what: "recipe: name with a newline", args: plan(file(b"name = \"a\\nb\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n")), code: 2, says: "control character" },
        Case { what: "recipe: name = \"../x\"", args: plan(file(b"name = \"../x\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n")), code: 2, says: "outside runs/" },
        Case { what: "recipe: name = \"/abs\"", args: plan(file(b"name = \"/abs\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n")), code: 2, says: "outside runs/" },
        Case { what: "recipe: out = \"\"", args: plan(file(b"name = \"x\"\nout = \"\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n")), code: 2, says: "`out` is empty" },
        Case { what: "recipe: TOML syntax error", args: plan(file(b"name = \"x\n")), code: 2, says: "r" },
        Case { what: "recipe: not UTF-8", args: plan(file(b"name = \"\xff\xfe\"\n")), code: 2, says: "recipe" },
        Case { what: "recipe: file missing", args: plan(out("nope.toml")), code: 2, says: "cannot read the recipe" },
        Case { what: "recipe: a directory", args: plan(t.display().to_string()), code: 2, says: "cannot read the recipe" },
        Case { what: "finetune: seeds = 0", args: plan(file(ft("", "").replace("seeds = 1", "seeds = 0").as_bytes())), code: 2, says: "train.seeds" },
        Case { what: "finetune: seeds = 10⁶", args: plan(file(ft("", "").replace("seeds = 1", "seeds = 1000000").as_bytes())), code: 2, says: "train.seeds" },
        Case { what: "finetune: lr = nan", args: plan(file(ft("lr = nan", "").as_bytes())), code: 2, says: "train.lr" },
        Case { what: "finetune: lr = -1", args: plan(file(ft("lr = -1.0", "").as_bytes())), code: 2, says: "train.lr" },
        Case { what: "finetune: warmup = 2", args: plan(file(ft("warmup = 2.0", "").as_bytes())), code: 2, says: "train.warmup" },
        Case { what: "finetune: batch_size = 0", args: plan(file(ft("batch_size = 0", "").as_bytes())), code: 2, says: "train.batch_size" },
        Case { what: "finetune: epochs = 0", args: plan(file(ft("epochs = 0", "").as_bytes())), code: 2, says: "train.epochs" },
        Case { what: "finetune: dev_fraction = 0", args: plan(file(ft("", "").replace("tasks = [\"cb\"]", "tasks = [\"cb\"]\ndev_fraction = 0.0").as_bytes())), code: 2, says: "data.dev_fraction" },
        Case { what: "finetune: drop_fraction = 1", args: plan(file(ft("", "").replace("tasks = [\"cb\"]", "tasks = [\"cb\"]\ndrop_fraction = 1.0").as_bytes())), code: 2, says: "data.drop_fraction" },
        Case { what: "finetune: unknown seed component", args: plan(file(ft("fixed_seeds = { order = 0 }", "").as_bytes())), code: 2, says: "unknown key" },
        Case { what: "finetune: pooling = \"max\"", args: plan(file(ft("", "").replace("max_len = 64", "max_len = 64\npooling = \"max\"").as_bytes())), code: 2, says: "unknown value" },
        Case { what: "finetune: unknown method", args: plan(file(ft("", "[[methods]]\nname = \"mmrr\"\n").as_bytes())), code: 2, says: "did you mean `mmr`" },
        Case { what: "finetune: mhloss heads = 0", args: plan(file(ft("", "[[methods]]\nname = \"mhloss\"\nheads = 0\n").as_bytes())), code: 2, says: "out of range" },
        Case { what: "finetune: swept lr = nan", args: plan(file(ft("", "[sweep]\n\"train.lr\" = [nan]\n").as_bytes())), code: 2, says: "sweep.train.lr" },
        Case { what: "finetune: swept task name", args: plan(file(ft("", "[sweep]\n\"data.tasks\" = [[\"rtee\"]]\n").as_bytes())), code: 2, says: "did you mean `rte`" },
        Case { what: "finetune: swept mixout.p = 1", args: plan(file(ft("", "[[methods]]\nname = \"mixout\"\n[sweep]\n\"mixout.p\" = [0.5, 1.0]\n").as_bytes())), code: 2, says: "p = 1" },
        Case { what: "finetune: max_len beyond the model", args: run(file(ft("", "").replace("max_len = 64", "max_len = 512").as_bytes()), out("o1")), code: 2, says: "does not fit the model" },
        Case { what: "finetune: model dir missing", args: run(file(finetune(&out("nomodel"), &data_s, "", "").as_bytes()), out("o2")), code: 2, says: "nomodel" },
        Case { what: "finetune: data dir missing", args: run(file(finetune(&tiny_s, &out("nodata"), "", "").as_bytes()), out("o3")), code: 2, says: "missing file" },
        Case { what: "finetune: reinit deeper than the model", args: run(file(ft("", "[[methods]]\nname = \"reinit\"\nk = 9\n").as_bytes()), out("o4")), code: 2, says: "k = 9 but the model has" },
        Case { what: "flag: --threads 0", args: vec!["run".into(), file(synthetic("").as_bytes()), "--threads".into(), "0".into()], code: 2, says: "--threads" },
        Case { what: "flag: --shard 3/2", args: vec!["run".into(), file(synthetic("").as_bytes()), "--shard".into(), "3/2".into()], code: 2, says: "shard" },
        Case { what: "flag: --shard abc", args: vec!["run".into(), file(synthetic("").as_bytes()), "--shard".into(), "abc".into()], code: 2, says: "shard" },
        Case { what: "flag: --device cuda:0 (not built)", args: vec!["run".into(), file(synthetic("").as_bytes()), "--device".into(), "cuda:0".into()], code: 2, says: "not available in this build" },
        Case { what: "flag: --device tpu", args: vec!["run".into(), file(synthetic("").as_bytes()), "--device".into(), "tpu".into()], code: 2, says: "unknown device" },
        Case { what: "flag: plan --shards 0", args: vec!["plan".into(), file(synthetic("").as_bytes()), "--shards".into(), "0".into()], code: 2, says: "--shards" },
        Case { what: "flag: plan --shards 10⁶", args: vec!["plan".into(), file(synthetic("").as_bytes()), "--shards".into(), "1000000".into()], code: 2, says: "--shards" },
        Case { what: "flag: data check --dev-fraction nan", args: vec!["data".into(), "check".into(), "--task".into(), "cb".into(), "--data-dir".into(), data_s.clone(), "--dev-fraction".into(), "NaN".into()], code: 2, says: "--dev-fraction" },
        Case { what: "flag: embed --max-len 100000", args: vec!["embed".into(), "--model".into(), tiny_s.clone(), "--text".into(), "hi".into(), "--max-len".into(), "100000".into()], code: 2, says: "--max-len" },
    ];
    // Data files.
    let bad_data = t.join("bad-data");
    let write = |rel: &str, bytes: &[u8]| {
        let p = bad_data.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    write(
        "glue/RTE/train.tsv",
        b"idx\tpremise\thypothesis\tlabel\n0\ta\tb\tentailment\n",
    );
    write(
        "glue/RTE/dev.tsv",
        b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
    );
    write(
        "superglue/CB/train.jsonl",
        b"{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\", \"idx\": 0}\n\xff\n",
    );
    write(
        "superglue/CB/val.jsonl",
        b"{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\", \"idx\": 0}\n",
    );
    write(
        "superglue/WSC/train.jsonl",
        b"{\"text\": \"a\", \"label\": true, \"idx\": 0\n",
    );
    write("superglue/WSC/val.jsonl", b"");
    let bom = bad_data.join("bom");
    std::fs::create_dir_all(bom.join("superglue/CB")).unwrap();
    let line = b"{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\", \"idx\": 0}\n";
    std::fs::write(
        bom.join("superglue/CB/train.jsonl"),
        [b"\xef\xbb\xbf".as_slice(), line, line, line].concat(),
    )
    .unwrap();
    std::fs::write(
        bom.join("superglue/CB/val.jsonl"),
        [b"\xef\xbb\xbf".as_slice(), line].concat(),
    )
    .unwrap();
    let check = |task: &str, dir: &Path| {
        vec![
            "data".into(),
            "check".into(),
            "--task".into(),
            task.into(),
            "--data-dir".into(),
            dir.display().to_string(),
        ]
    };
    cases.push(Case {
        what: "data: TSV header does not match",
        args: check("rte", &bad_data),
        code: 2,
        says: "unexpected header",
    });
    cases.push(Case {
        what: "data: invalid UTF-8 in JSONL",
        args: check("cb", &bad_data),
        code: 2,
        says: "train.jsonl:2: not UTF-8",
    });
    cases.push(Case {
        what: "data: truncated JSON line",
        args: check("wsc", &bad_data),
        code: 2,
        says: "invalid JSON",
    });
    cases.push(Case {
        what: "data: JSONL with a UTF-8 BOM",
        args: check("cb", &bom),
        code: 0,
        says: "cb",
    });
    cases.push(Case {
        what: "data: directory missing",
        args: check("cb", &t.join("nowhere")),
        code: 2,
        says: "missing file",
    });
    // Stores: garbage, torn and non-finite lines are skipped or read, never fatal.
    let store = t.join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("runs.jsonl"),
        b"not json\n\xff\xfe\n{\"run_id\": \"torn",
    )
    .unwrap();
    cases.push(Case {
        what: "store: only garbage lines, report",
        args: vec!["report".into(), store.display().to_string()],
        code: 2,
        says: "no finished runs",
    });
    cases.push(Case {
        what: "store: garbage lines, run resumes",
        args: vec![
            "run".into(),
            file(synthetic("values = [0.5]\n").as_bytes()),
            "--out".into(),
            store.display().to_string(),
        ],
        code: 0,
        says: "",
    });
    // Model directories.
    let no_weights = t.join("no-weights");
    std::fs::create_dir_all(&no_weights).unwrap();
    std::fs::copy(tiny.join("config.json"), no_weights.join("config.json")).unwrap();
    cases.push(Case {
        what: "model: no weights file",
        args: vec![
            "embed".into(),
            "--model".into(),
            no_weights.display().to_string(),
            "--text".into(),
            "hi".into(),
        ],
        code: 2,
        says: "no weights",
    });
    let corrupt = t.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::copy(tiny.join("config.json"), corrupt.join("config.json")).unwrap();
    std::fs::write(corrupt.join("model.safetensors"), b"garbage").unwrap();
    cases.push(Case {
        what: "model: corrupt safetensors",
        args: vec![
            "embed".into(),
            "--model".into(),
            corrupt.display().to_string(),
            "--text".into(),
            "hi".into(),
        ],
        code: 2,
        says: "cannot read the weights",
    });
    let inputs = t.join("inputs.jsonl");
    std::fs::write(&inputs, b"{\"text\": 3}\n").unwrap();
    cases.push(Case {
        what: "embed: --inputs with a bad line",
        args: vec![
            "embed".into(),
            "--model".into(),
            tiny_s.clone(),
            "--inputs".into(),
            inputs.display().to_string(),
        ],
        code: 2,
        says: "inputs.jsonl",
    });

    let mut table =
        String::from("| # | input | exit | first line of the message |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let o = stab().args(&c.args).current_dir(t).output().unwrap();
        let code = o.status.code().unwrap_or(-1);
        let (stderr, stdout) = (
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout),
        );
        let text = if code == 0 {
            format!("{stdout}{stderr}")
        } else {
            stderr.to_string()
        };
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(150)
            .collect::<String>();
        table.push_str(&format!(
            "| {} | {} | {code} | {} |\n",
            i + 1,
            c.what,
            first.replace('|', "\\|")
        ));
        if code != c.code
            || !text.contains(c.says)
            || text.contains("panicked")
            || text.contains("internal error")
        {
            failures.push(format!(
                "{}: exit {code} (want {}), wanted `{}` in:\n{text}",
                c.what, c.code, c.says
            ));
        }
    }
    eprintln!("{table}");
    if let Some(p) = std::env::var_os("STAB_HOSTILE_TABLE") {
        std::fs::write(PathBuf::from(p), &table).unwrap();
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
