//! Hostile inputs, as a new user would try them: recipes, flags, data files, model
//! directories and stores. Every case must end with exit code 0, 1 or 2 and one clear
//! message, never a panic. The table of cases, codes and first message lines is printed
//! (`cargo test -p stab-cli --test integration hostile -- --nocapture`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::assets;

/// The binary under test; `STAB_HOSTILE_BIN` runs the table against another build (for
/// instance an older one, to see which cases it fails).
fn stab() -> Command {
    let bin = std::env::var_os("STAB_HOSTILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stab")));
    let mut c = Command::new(bin);
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
        Case { what: "finetune: a method stacked twice", args: plan(file(ft("", "[[methods]]\nname = \"mmr\"\nstack = [{ name = \"mmr\" }]\n").as_bytes())), code: 2, says: "stacks `mmr` twice" },
        Case { what: "finetune: stack of two encoder changes", args: run(file(ft("", "[[methods]]\nname = \"reinit\"\nstack = [{ name = \"surt\" }]\n").as_bytes()), out("o5")), code: 2, says: "change the encoder" },
        Case { what: "finetune: three bad values at once", args: plan(file(ft("lr = -1\nwarmup = 2\nbatch_size = 0", "").as_bytes())), code: 2, says: "expected a number in [0, 1]\n  hint: a fraction of the updates in [0, 1], e.g. 0.1\nerror: " },
        Case { what: "finetune: lora stacked with bitfit (plan, located)", args: plan(file(ft("", "[[methods]]\nname = \"lora\"\nstack = [{ name = \"bitfit\" }]\n").as_bytes())), code: 2, says: ":14: key `methods[1].stack`: impossible method stack: lora and bitfit each choose which parameters train" },
        Case { what: "finetune: lora with mode = \"head\"", args: plan(file(ft("mode = \"head\"", "[[methods]]\nname = \"lora\"\n").as_bytes())), code: 2, says: ":11: key `train.mode`: `lora` chooses which encoder parameters train, but mode = \"head\" freezes the encoder" },
        Case { what: "finetune: stack is not a list", args: plan(file(ft("", "[[methods]]\nname = \"reinit\"\nstack = \"llrd\"\n").as_bytes())), code: 2, says: "must be a list" },
        Case { what: "finetune: unknown lora target", args: plan(file(ft("", "[[methods]]\nname = \"lora\"\ntargets = [\"qeury\"]\n").as_bytes())), code: 2, says: "did you mean `query`" },
        Case { what: "finetune: lora rank beyond the model", args: run(file(ft("", "[[methods]]\nname = \"lora\"\nr = 4000\n").as_bytes()), out("o6")), code: 2, says: "exceeds the smallest target dimension" },
        Case { what: "finetune: reinit deeper than the model", args: run(file(ft("", "[[methods]]\nname = \"reinit\"\nk = 9\n").as_bytes()), out("o4")), code: 2, says: "k = 9 but the model has" },
        Case { what: "flag: --threads 0", args: vec!["run".into(), file(synthetic("").as_bytes()), "--threads".into(), "0".into()], code: 2, says: "--threads" },
        Case { what: "flag: --shard 3/2", args: vec!["run".into(), file(synthetic("").as_bytes()), "--shard".into(), "3/2".into()], code: 2, says: "shard" },
        Case { what: "flag: --shard abc", args: vec!["run".into(), file(synthetic("").as_bytes()), "--shard".into(), "abc".into()], code: 2, says: "shard" },
        Case { what: "flag: --device cuda:0 (not built)", args: vec!["run".into(), file(synthetic("").as_bytes()), "--device".into(), "cuda:0".into()], code: 2, says: "not available in this build" },
        Case { what: "flag: --device wgpu:99 (no such adapter)", args: vec!["embed".into(), "--model".into(), "m".into(), "--text".into(), "a".into(), "--device".into(), "wgpu:99".into()], code: 2, says: "no such wgpu adapter" },
        Case { what: "bench: --seq beyond the positions", args: vec!["bench".into(), "step".into(), "--model".into(), tiny_s.clone(), "--seq".into(), "600".into()], code: 2, says: "exceeds the model's 64 positions" },
        Case { what: "bench: model missing", args: vec!["bench".into(), "step".into(), "--model".into(), out("nomodel")], code: 2, says: "config.json" },
        Case { what: "flag: --device tpu:0 (unknown)", args: vec!["analyze".into(), "distance".into(), "c".into(), "--device".into(), "tpu:0".into()], code: 2, says: "unknown device `tpu:0`" },
        Case { what: "flag: --device tpu", args: vec!["run".into(), file(synthetic("").as_bytes()), "--device".into(), "tpu".into()], code: 2, says: "unknown device" },
        Case { what: "flag: plan --shards 0", args: vec!["plan".into(), file(synthetic("").as_bytes()), "--shards".into(), "0".into()], code: 2, says: "--shards" },
        Case { what: "flag: plan --shards 10⁶", args: vec!["plan".into(), file(synthetic("").as_bytes()), "--shards".into(), "1000000".into()], code: 2, says: "--shards" },
        Case { what: "flag: data check --dev-fraction nan", args: vec!["data".into(), "check".into(), "--task".into(), "cb".into(), "--data-dir".into(), data_s.clone(), "--dev-fraction".into(), "NaN".into()], code: 2, says: "--dev-fraction" },
        Case { what: "flag: embed --max-len 100000", args: vec!["embed".into(), "--model".into(), tiny_s.clone(), "--text".into(), "hi".into(), "--max-len".into(), "100000".into()], code: 2, says: "--max-len" },
        // Round 4: files the user named are never replaced unasked.
        Case { what: "flag: plan --slurm onto the recipe itself", args: { let f = file(synthetic("").as_bytes()); vec!["plan".into(), f.clone(), "--slurm".into(), f] }, code: 2, says: "--overwrite" },
        Case { what: "flag: bench step --repeats 0", args: vec!["bench".into(), "step".into(), "--model".into(), tiny_s.clone(), "--repeats".into(), "0".into()], code: 2, says: "e.g. --repeats 10" },
        Case { what: "flag: plan --slurm onto a directory", args: vec!["plan".into(), file(synthetic("").as_bytes()), "--slurm".into(), t.display().to_string()], code: 2, says: "a directory" },
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

    let before = cases.len();
    let (round3, avoid) = round3_cases(t, &tiny, &data_s);
    cases.extend(round3);
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
        let forbidden = avoid
            .iter()
            .find(|(what, bad)| *what == c.what && text.contains(bad));
        if code != c.code
            || !text.contains(c.says)
            || text.contains("panicked")
            || text.contains("internal error")
            || forbidden.is_some()
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
    eprintln!("{before} cases before round 3, {} now", cases.len());
    assert!(cases.len() >= 90, "{} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    after_round3(t);
}

fn s(x: &Path) -> String {
    x.display().to_string()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// A copy of a model directory with `config.json` edited by `edit`.
fn model_with(t: &Path, name: &str, tiny: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = t.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(tiny).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let path = dir.join("config.json");
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&path, c.to_string()).unwrap();
    dir
}

fn recipe(t: &Path, name: &str, model: &Path, data: &str, train: &str, tail: &str) -> String {
    let p = t.join(format!("{name}.toml"));
    std::fs::write(&p, finetune(&s(model), data, train, tail)).unwrap();
    s(&p)
}

fn setup_run(a: &[String]) -> String {
    let o = stab().args(a).output().unwrap();
    assert!(
        o.status.success(),
        "setup {a:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Flip one byte in the data of every file in `dir` named `prefix*.safetensors` (the
/// middle of the file's second half: past the JSON header).
fn flip_payloads(dir: &Path, prefix: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with(prefix) && name.ends_with(".safetensors") {
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() * 3 / 4;
            b[at] ^= 0x20;
            std::fs::write(&p, b).unwrap();
            n += 1;
        }
    }
    n
}

/// Round 3 (reliability issue): configs, vocabularies, sizes, caches, run identity,
/// races, leftovers, invalid values and messages. Returns the cases and, per case, a
/// text its output must not contain.
fn round3_cases(
    t: &Path,
    tiny: &Path,
    data_s: &str,
) -> (Vec<Case>, Vec<(&'static str, &'static str)>) {
    let mut cases = Vec::new();
    let mut avoid = Vec::new();
    let out = |name: &str| s(&t.join(name));
    let run = |recipe: String, o: String| vec!["run".to_string(), recipe, "--out".to_string(), o];
    let embed = |model: &Path, extra: &[&str]| {
        let mut a = args(&["embed", "--model", &s(model)]);
        a.extend(args(extra));
        a
    };

    // Model configurations: one validation pass, before anything is written.
    let dropout = model_with(t, "m-dropout", tiny, |c| {
        c["hidden_dropout_prob"] = 1.5.into()
    });
    cases.push(Case {
        what: "config: hidden_dropout_prob = 1.5",
        args: run(
            recipe(t, "r-dropout", &dropout, data_s, "", ""),
            out("o-dropout"),
        ),
        code: 2,
        says: "hidden_dropout_prob = 1.5 is not a probability",
    });
    // A model whose embedding table (config and weights alike) is smaller than the ids
    // its tokenizer produces.
    let vocab = model_with(t, "m-vocab", tiny, |c| c["vocab_size"] = 50.into());
    let weights = vocab.join("model.safetensors");
    let mut file = stab_models::read_safetensors(&weights).unwrap();
    for (name, t) in file.tensors.iter_mut() {
        if t.shape.first() == Some(&1000) {
            let row: usize = t.shape[1..].iter().product();
            t.values.truncate(50 * row);
            t.shape[0] = 50;
            assert!(
                name.contains("word_embeddings") || name.contains("bias"),
                "{name}"
            );
        }
    }
    stab_models::write_safetensors(&weights, &file).unwrap();
    cases.push(Case {
        what: "config: vocab_size below the tokenizer's ids (run)",
        args: run(recipe(t, "r-vocab", &vocab, data_s, "", ""), out("o-vocab")),
        code: 2,
        says: "vocab_size",
    });
    cases.push(Case {
        what: "config: vocab_size below the tokenizer's ids (head run)",
        args: run(
            recipe(t, "r-vocab-h", &vocab, data_s, "mode = \"head\"", ""),
            out("o-vocab-h"),
        ),
        code: 2,
        says: "the tokenizer produces ids up to",
    });
    cases.push(Case {
        what: "config: vocab_size below the tokenizer's ids (embed)",
        args: embed(&vocab, &["--text", "hello world", "--max-len", "16"]),
        code: 2,
        says: "the tokenizer produces ids up to",
    });
    let positions = model_with(t, "m-positions", tiny, |c| {
        c["max_position_embeddings"] = 2.into()
    });
    cases.push(Case {
        what: "config: max_position_embeddings = 2",
        args: embed(&positions, &["--text", "hi"]),
        code: 2,
        says: "leaves room for 2 tokens; stab needs at least 8",
    });
    let huge = model_with(t, "m-huge", tiny, |c| {
        c["hidden_size"] = 65536.into();
        c["intermediate_size"] = 262144.into();
    });
    cases.push(Case {
        what: "config: an encoder of 10¹¹ parameters",
        args: embed(&huge, &["--text", "hi"]),
        code: 2,
        says: "parameters, more than stab can hold",
    });
    // Round 4: a config value the port does not implement is refused with its key, as
    // written, never taken as another value.
    let modern = assets::fixtures().join("tiny-modernbert");
    let electra = assets::fixtures().join("tiny-electra");
    for (name, base, what, edit, says) in [
        (
            "m-yarn",
            &modern,
            "config: ModernBERT RoPE scaling yarn",
            (|c: &mut serde_json::Value| {
                c["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0})
            }) as fn(&mut serde_json::Value),
            "rope_scaling",
        ),
        (
            "m-every0",
            &modern,
            "config: ModernBERT global_attn_every_n_layers = 0",
            |c| c["global_attn_every_n_layers"] = 0.into(),
            "global_attn_every_n_layers",
        ),
        (
            "m-types",
            &modern,
            "config: ModernBERT layer_types of the wrong length",
            |c| c["layer_types"] = serde_json::json!(["full_attention"]),
            "layer_types",
        ),
        (
            "m-emb",
            &electra,
            "config: ELECTRA embedding_size = -16",
            |c| c["embedding_size"] = (-16).into(),
            "-16",
        ),
    ] {
        let dir = model_with(t, name, base, edit);
        cases.push(Case {
            what,
            args: embed(&dir, &["--text", "hi", "--max-len", "32"]),
            code: 2,
            says,
        });
    }
    // Weights that pass the config check: read whole before the first run.
    let shape = model_with(t, "m-shape", tiny, |c| c["intermediate_size"] = 40.into());
    cases.push(Case {
        what: "model: weights of another shape than config.json",
        args: run(recipe(t, "r-shape", &shape, data_s, "", ""), out("o-shape")),
        code: 2,
        says: "config.json and the weights do not belong together",
    });
    let mismatch = model_with(t, "m-mismatch", tiny, |c| c["vocab_size"] = 50.into());
    cases.push(Case {
        what: "model: vocab_size of config.json against the weights",
        args: run(
            recipe(t, "r-mismatch", &mismatch, data_s, "mode = \"head\"", ""),
            out("o-mismatch"),
        ),
        code: 2,
        says: "the tokenizer produces ids up to",
    });
    let torn = model_with(t, "m-torn", tiny, |_| {});
    let w = std::fs::read(torn.join("model.safetensors")).unwrap();
    std::fs::write(torn.join("model.safetensors"), &w[..w.len() / 2]).unwrap();
    cases.push(Case {
        what: "model: truncated weights file",
        args: run(recipe(t, "r-torn", &torn, data_s, "", ""), out("o-torn")),
        code: 2,
        says: "cannot read the weights",
    });
    // Weights holding a NaN: refused when the model is read, for a run and for embed.
    let nan = model_with(t, "m-nan", tiny, |_| {});
    let nan_weights = nan.join("model.safetensors");
    let mut file = stab_models::read_safetensors(&nan_weights).unwrap();
    let query = file
        .tensors
        .iter_mut()
        .find(|(n, _)| n.contains("layer.0.attention.self.query.weight"))
        .expect("tiny-bert has a query weight")
        .1;
    query.values[3] = f32::NAN;
    stab_models::write_safetensors(&nan_weights, &file).unwrap();
    cases.push(Case {
        what: "model: a NaN weight (run)",
        args: run(recipe(t, "r-nan", &nan, data_s, "", ""), out("o-nan")),
        code: 2,
        says: "holds a non-finite value",
    });
    cases.push(Case {
        what: "model: a NaN weight (embed)",
        args: embed(&nan, &["--text", "hi", "--max-len", "32"]),
        code: 2,
        says: "holds a non-finite value",
    });
    // config.json with fewer layers than the weights: not a silently dropped layer.
    let layers = model_with(t, "m-layers", tiny, |c| c["num_hidden_layers"] = 1.into());
    cases.push(Case {
        what: "config: num_hidden_layers = 1 with 2-layer weights",
        args: embed(&layers, &["--text", "hi", "--max-len", "32"]),
        code: 2,
        says: "num_hidden_layers = 1, but the weights hold layer 1",
    });

    // embed --max-len: the recipes' range, and never more ids than asked for.
    let long_pair = [
        "--text",
        "a rather long first text with many words in it",
        "--pair",
        "and a second text that is long too",
    ];
    for (what, m) in [
        ("embed: --max-len 2 with a long pair", "2"),
        ("embed: --max-len 3 with a long pair", "3"),
    ] {
        let mut extra = long_pair.to_vec();
        extra.extend(["--max-len", m]);
        cases.push(Case {
            what,
            args: embed(tiny, &extra),
            code: 2,
            says: "--max-len",
        });
    }
    cases.push(Case {
        what: "embed: --max-len 2 with a short text",
        args: embed(tiny, &["--text", "hi", "--max-len", "2"]),
        code: 2,
        says: "expected 8..=8192",
    });

    // Sizes far beyond a documented limit get the range error, not an allocation abort.
    let synth = t.join("r-synth.toml");
    std::fs::write(&synth, synthetic("")).unwrap();
    let seeds = t.join("r-seeds.toml");
    std::fs::write(
        &seeds,
        finetune(&s(tiny), data_s, "", "").replace("seeds = 1", "seeds = 1000000000000"),
    )
    .unwrap();
    cases.push(Case {
        what: "size: seeds = 10¹²",
        args: args(&["plan", &s(&seeds)]),
        code: 2,
        says: "train.seeds = 1000000000000 is too large",
    });
    let ft_recipe = recipe(t, "r-ft", tiny, data_s, "mode = \"head\"", "");
    let loo = |extra: &[&str]| {
        let mut a = args(&["analyze", "loo", &ft_recipe]);
        a.extend(args(extra));
        a
    };
    cases.push(Case {
        what: "analyze loo --steps 0",
        args: loo(&["--steps", "0"]),
        code: 2,
        says: "--steps = 0 is out of range",
    });
    cases.push(Case {
        what: "analyze loo --heads 10¹²",
        args: loo(&["--heads", "1000000000000"]),
        code: 2,
        says: "--heads = 1000000000000 is too large",
    });
    cases.push(Case {
        what: "analyze loo --points 10¹²",
        args: loo(&["--points", "1000000000000"]),
        code: 2,
        says: "--points",
    });
    cases.push(Case {
        what: "analyze loo on a synthetic recipe",
        args: args(&["analyze", "loo", &s(&synth)]),
        code: 2,
        says: "a synthetic recipe",
    });
    let taylor = |extra: &[&str]| {
        let mut a = args(&["analyze", "taylor", &s(tiny), "--data-dir", data_s]);
        a.extend(args(extra));
        a
    };
    for (what, ps) in [
        ("analyze taylor --ps NaN", "NaN"),
        ("analyze taylor --ps inf", "inf"),
        ("analyze taylor --ps 0", "0"),
        ("analyze taylor --ps -0.1", "-0.1"),
    ] {
        cases.push(Case {
            what,
            args: taylor(&[&format!("--ps={ps}")]),
            code: 2,
            says: "perturbation sizes must be finite and positive",
        });
    }
    cases.push(Case {
        what: "analyze taylor --repeats 10¹²",
        args: taylor(&["--repeats", "1000000000000"]),
        code: 2,
        says: "--repeats",
    });
    cases.push(Case {
        what: "analyze taylor --batch 10⁶",
        args: taylor(&["--batch", "1000000"]),
        code: 2,
        says: "--batch = 1000000 is too large",
    });
    let bounds = |flag: &str| args(&["analyze", "bounds", &s(t), flag]);
    for (what, flag, v) in [
        ("analyze bounds --delta 2", "--delta", "2"),
        ("analyze bounds --delta NaN", "--delta", "NaN"),
        ("analyze bounds --c -1", "--c", "-1"),
        ("analyze bounds --svm-c 0", "--svm-c", "0"),
        (
            "analyze bounds --mu-over-beta -0.5",
            "--mu-over-beta",
            "-0.5",
        ),
    ] {
        cases.push(Case {
            what,
            args: bounds(&format!("{flag}={v}")),
            code: 2,
            says: "is out of range",
        });
    }

    // Readers: indices from the file are checked, never trusted.
    let idx = t.join("d-idx");
    std::fs::create_dir_all(idx.join("superglue/WSC")).unwrap();
    let wsc = "{\"text\": \"Mark told Pete he was late.\", \"target\": {\"span1_index\": 18446744073709551615, \"span1_text\": \"Mark\", \"span2_index\": 3, \"span2_text\": \"he\"}, \"label\": true, \"idx\": 0}\n";
    std::fs::write(idx.join("superglue/WSC/train.jsonl"), wsc).unwrap();
    std::fs::write(idx.join("superglue/WSC/val.jsonl"), wsc).unwrap();
    cases.push(Case {
        what: "data: WSC span index 2⁶⁴ − 1",
        args: args(&["data", "check", "--task", "wsc", "--data-dir", &s(&idx)]),
        code: 2,
        says: "is beyond the text's",
    });
    std::fs::create_dir_all(idx.join("superglue/MultiRC")).unwrap();
    let mrc = "{\"idx\": 1000000000000000, \"passage\": {\"text\": \"A b.\", \"questions\": [{\"question\": \"Q?\", \"idx\": 0, \"answers\": [{\"text\": \"a\", \"label\": 1, \"idx\": 0}]}]}}\n";
    std::fs::write(idx.join("superglue/MultiRC/train.jsonl"), mrc).unwrap();
    std::fs::write(idx.join("superglue/MultiRC/val.jsonl"), mrc).unwrap();
    cases.push(Case {
        what: "data: MultiRC passage idx 10¹⁵",
        args: args(&["data", "check", "--task", "multirc", "--data-dir", &s(&idx)]),
        code: 2,
        says: "is not a row number",
    });

    // Memory: a 5 MB line is truncated before it is tokenized (the run's memory stays small).
    let big = t.join("d-big");
    std::fs::create_dir_all(big.join("superglue/CB")).unwrap();
    let line = |p: &str| {
        format!(
            "{{\"premise\": \"{p}\", \"hypothesis\": \"b\", \"label\": \"neutral\", \"idx\": 0}}\n"
        )
    };
    std::fs::write(
        big.join("superglue/CB/train.jsonl"),
        line(&"word ".repeat(1_000_000)) + &line("a") + &line("c"),
    )
    .unwrap();
    std::fs::write(big.join("superglue/CB/val.jsonl"), line("a")).unwrap();
    cases.push(Case {
        what: "data: a 5 MB line in a task file (head run)",
        args: run(
            recipe(t, "r-big", tiny, &s(&big), "mode = \"head\"", ""),
            out("o-big"),
        ),
        code: 0,
        says: "done",
    });

    // Split files.
    let splits = |name: &str, body: &str| {
        let d = t.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cb.json"), body).unwrap();
        s(&d)
    };
    let with_splits = |name: &str, dir: &str| {
        let p = t.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            finetune(&s(tiny), data_s, "", "").replace(
                "tasks = [\"cb\"]",
                &format!("tasks = [\"cb\"]\nsplits = \"{dir}\""),
            ),
        )
        .unwrap();
        s(&p)
    };
    let all: Vec<String> = (0..160).map(|i| i.to_string()).collect();
    let empty = splits(
        "sp-empty",
        "{\"train_rows\": 160, \"dev_rows\": 0, \"dev\": []}",
    );
    cases.push(Case {
        what: "split: an empty dev split",
        args: run(with_splits("r-sp-empty", &empty), out("o-sp-empty")),
        code: 2,
        says: "the dev split is empty",
    });
    let full = splits(
        "sp-all",
        &format!(
            "{{\"train_rows\": 0, \"dev_rows\": 160, \"dev\": [{}]}}",
            all.join(",")
        ),
    );
    cases.push(Case {
        what: "split: dev covers every row",
        args: run(with_splits("r-sp-all", &full), out("o-sp-all")),
        code: 2,
        says: "leaving none to train on",
    });
    cases.push(Case {
        what: "split: data.splits does not exist",
        args: run(
            with_splits("r-sp-none", &s(&t.join("no-such-splits"))),
            out("o-sp-none"),
        ),
        code: 2,
        says: "does not exist",
    });

    // Run identity: a changed split file is not resumed as the old experiment.
    let ident = t.join("d-ident");
    assets::copy_tree(&assets::slices(), &ident);
    let ident_recipe = recipe(t, "r-ident", tiny, &s(&ident), "mode = \"head\"", "");
    setup_run(&run(ident_recipe.clone(), out("o-ident")));
    let split_path = ident.join("splits/cb.json");
    let mut split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&split_path).unwrap()).unwrap();
    split["dev"][0] = 1.into();
    std::fs::write(&split_path, split.to_string()).unwrap();
    cases.push(Case {
        what: "resume: the split file changed since the runs",
        args: run(ident_recipe.clone(), out("o-ident")),
        code: 2,
        says: "read other files than this recipe reads now",
    });
    cases.push(Case {
        what: "resume: --fresh after a split change",
        args: {
            let mut a = run(ident_recipe, out("o-ident"));
            a.push("--fresh".into());
            a
        },
        code: 0,
        says: "done",
    });

    // Caches: flipped payload bytes are detected, warned about and rebuilt.
    let head_recipe = recipe(t, "r-cache", tiny, data_s, "mode = \"head\"", "");
    setup_run(&run(head_recipe.clone(), out("o-cache")));
    assert_eq!(flip_payloads(&t.join("o-cache/cache"), "features-"), 1);
    cases.push(Case {
        what: "cache: a flipped byte in the feature cache",
        args: {
            let mut a = run(head_recipe, out("o-cache"));
            a.push("--fresh".into());
            a
        },
        code: 0,
        says: "cannot be used (its checksum does not match",
    });
    let surt_recipe = recipe(
        t,
        "r-surt",
        tiny,
        data_s,
        "mode = \"head\"",
        "[[methods]]\nname = \"surt\"\nmlm_max_steps = 2\n",
    );
    setup_run(&run(surt_recipe.clone(), out("o-surt")));
    assert!(flip_payloads(&t.join("o-surt/cache"), "encoder-") >= 1);
    // Without the features encoded from it, the prepared encoder must be read back.
    for e in std::fs::read_dir(t.join("o-surt/cache")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("features-")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    cases.push(Case {
        what: "cache: a flipped byte in the prepared-encoder cache",
        args: {
            let mut a = run(surt_recipe, out("o-surt"));
            a.push("--fresh".into());
            a
        },
        code: 0,
        // The features were removed, so this warning can only be the encoder cache's.
        says: "cannot be used (its checksum does not match",
    });

    // Races: --jobs 2 in head mode encodes each task once, with no temporary clash.
    let jobs_recipe = t.join("r-jobs.toml");
    std::fs::write(
        &jobs_recipe,
        finetune(&s(tiny), data_s, "mode = \"head\"", "").replace("seeds = 1", "seeds = 4"),
    )
    .unwrap();
    cases.push(Case {
        what: "jobs: --jobs 2 in head mode",
        args: {
            let mut a = run(s(&jobs_recipe), out("o-jobs"));
            a.extend(args(&["--threads", "2", "--jobs", "2"]));
            a
        },
        code: 0,
        says: "features memory",
    });
    avoid.push(("jobs: --jobs 2 in head mode", "could not write"));
    cases.push(Case {
        what: "flag: --threads 1 --jobs 2",
        args: {
            let mut a = run(s(&jobs_recipe), out("o-jobs1"));
            a.extend(args(&["--threads", "1", "--jobs", "2"]));
            a
        },
        code: 2,
        says: "--jobs 2 needs at least 2 threads",
    });

    // Leftovers of killed writers, and model directories are input.
    let ckpt_recipe = recipe(t, "r-ckpt", tiny, data_s, "save_best = true", "");
    setup_run(&run(ckpt_recipe, out("o-ckpt")));
    let ckpts = t.join("o-ckpt/checkpoints");
    let real = std::fs::read_dir(&ckpts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assets::copy_tree(&real, &ckpts.join(".tmp-checkpoint-killed"));
    cases.push(Case {
        what: "analyze distance with a killed run's temporary checkpoint",
        args: args(&["analyze", "distance", &out("o-ckpt")]),
        code: 0,
        says: "appended to",
    });
    avoid.push((
        "analyze distance with a killed run's temporary checkpoint",
        ".tmp-checkpoint",
    ));
    let model_copy = model_with(t, "m-plain", tiny, |_| {});
    cases.push(Case {
        what: "analyze distance <model dir> without --out",
        args: args(&[
            "analyze",
            "distance",
            &s(&model_copy),
            "--pretrained",
            &s(tiny),
        ]),
        code: 2,
        says: "pass --out DIR",
    });
    cases.push(Case {
        what: "analyze distance CKPT --pretrained OTHER-ARCH",
        args: args(&[
            "analyze",
            "distance",
            &s(&real),
            "--pretrained",
            &s(&assets::fixtures().join("tiny-roberta")),
        ]),
        code: 2,
        says: "in the fine-tuned model but",
    });
    cases.push(Case {
        what: "analyze taylor --batch beyond the task's rows",
        args: args(&[
            "analyze",
            "taylor",
            &s(&real),
            "--data-dir",
            data_s,
            "--batch",
            "4000",
            "--ps",
            "0.01",
            "--repeats",
            "1",
            "--out",
            &out("o-taylor"),
        ]),
        code: 0,
        says: "the batch is all 160",
    });

    // Stores and output paths.
    let store_dir = t.join("o-storedir");
    std::fs::create_dir_all(store_dir.join("runs.jsonl")).unwrap();
    cases.push(Case {
        what: "store: runs.jsonl is a directory",
        args: run(s(&synth), s(&store_dir)),
        code: 2,
        says: "runs.jsonl",
    });
    let a_file = t.join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    cases.push(Case {
        what: "store: --out inside a regular file",
        args: run(s(&synth), s(&a_file.join("sub"))),
        code: 2,
        says: "a-file",
    });
    cases.push(Case {
        what: "report: --plots names a file",
        args: args(&["report", &out("o-cache"), "--plots", &s(&a_file)]),
        code: 2,
        says: "a-file",
    });
    cases.push(Case {
        what: "report: one seed has no SD",
        args: args(&["report", &out("o-cache")]),
        code: 0,
        says: "±n/a (n=1",
    });
    avoid.push(("report: one seed has no SD", "±0.00 (n=1)"));
    let diverged = t.join("o-diverged");
    std::fs::create_dir_all(&diverged).unwrap();
    let rec = std::fs::read_to_string(t.join("o-cache/runs.jsonl")).unwrap();
    let mut lines: Vec<serde_json::Value> = rec
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines[0]["metrics"]["primary"] = "NaN".into();
    lines[0]["diverged"] = true.into();
    std::fs::write(
        diverged.join("runs.jsonl"),
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    cases.push(Case {
        what: "report: a diverged run in the expected-max table",
        args: args(&["report", &s(&diverged)]),
        code: 0,
        says: "diverged run",
    });
    avoid.push(("report: a diverged run in the expected-max table", "NaN±"));

    // Recipe messages say what a key accepts, and --set errors point at the recipe.
    let ft = |train: &str, tail: &str| finetune(&s(tiny), data_s, train, tail);
    let write = |name: &str, text: String| {
        let p = t.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        s(&p)
    };
    cases.push(Case {
        what: "recipe: pooling = 1",
        args: args(&[
            "plan",
            &write(
                "r-pool",
                ft("", "").replace("max_len = 64", "max_len = 64\npooling = 1"),
            ),
        ]),
        code: 2,
        says: "expected one of the strings \"pooler\", \"cls\", \"mean\"",
    });
    cases.push(Case {
        what: "recipe: seeds = [-1]",
        args: args(&[
            "plan",
            &write("r-neg", ft("", "").replace("seeds = 1", "seeds = [-1]")),
        ]),
        code: 2,
        says: "not a non-negative integer",
    });
    cases.push(Case {
        what: "recipe: seeds = -3",
        args: args(&[
            "plan",
            &write("r-neg2", ft("", "").replace("seeds = 1", "seeds = -3")),
        ]),
        code: 2,
        says: "seeds = -3 is negative",
    });
    let warm = write("r-warm", ft("warmup = 2.0", ""));
    cases.push(Case {
        what: "recipe: --set beside a bad key of the file",
        args: args(&["plan", &warm, "--set", "train.seeds=2"]),
        code: 2,
        says: "r-warm.toml:11: key `train.warmup`",
    });
    avoid.push(("recipe: --set beside a bad key of the file", "with --set"));
    // --set messages (round 4): a method's parameter by name or by place, a key of
    // another tool, a method given as a value, a training key inside a method.
    let two = write(
        "r-set",
        ft(
            "",
            "[[methods]]\nname = \"sam\"\n[[methods]]\nname = \"lora\"\n",
        ),
    );
    for (what, set, code, says) in [
        ("recipe: --set METHOD.PARAM", "sam.rho=0.1", 0, "cb-sam-s0"),
        (
            "recipe: --set methods[i].PARAM",
            "methods[2].r=4",
            0,
            "cb-lora-s0",
        ),
        (
            "recipe: --set methods[i].PARAM out of range",
            "methods[2].r=-4",
            2,
            "--set methods[2].r=-4: key `methods[2].r`",
        ),
        (
            "recipe: --set an unknown method",
            "sma.rho=2",
            2,
            "`sma` is neither a table of the recipe nor one of its [[methods]]; did you mean `sam`?",
        ),
        (
            "recipe: --set learning_rate",
            "train.learning_rate=1e-3",
            2,
            "unknown key `learning_rate` in [train]; did you mean `lr`?",
        ),
        (
            "recipe: --set train.mode = a method",
            "train.mode=lora",
            2,
            "key `train.mode`: unknown value `lora`",
        ),
        (
            "recipe: --set a [train] key in a method",
            "lora.lr=1e-3",
            2,
            "--set lora.lr=1e-3: key `methods[2].lr`: `lr` is a [train] key, not a parameter of methods[2] (lora)",
        ),
    ] {
        cases.push(Case {
            what,
            args: args(&["plan", &two, "--set", set]),
            code,
            says,
        });
    }
    (cases, avoid)
}

/// Checks after the table ran: nothing half-written by refused runs, one encoding per
/// task under --jobs, analyses without leftovers, no file written into a model
/// directory, and one mode for every cache file.
fn after_round3(t: &Path) {
    for o in [
        "o-dropout",
        "o-vocab",
        "o-vocab-h",
        "o-shape",
        "o-mismatch",
        "o-torn",
        "o-sp-empty",
        "o-sp-all",
        "o-sp-none",
    ] {
        assert!(!t.join(o).exists(), "{o}: a refused run left {o}/ behind");
    }
    let jobs = std::fs::read_to_string(t.join("o-jobs/runs.jsonl")).unwrap();
    let encoded = jobs.matches("\"feature_cache\":\"encoded\"").count();
    assert_eq!(
        (jobs.lines().count(), encoded),
        (4, 1),
        "--jobs 2: one encoding of the task"
    );
    let distance = std::fs::read_to_string(t.join("o-ckpt/analyses.jsonl")).unwrap();
    assert_eq!(
        distance.lines().count(),
        1,
        "one checkpoint, one row: {distance}"
    );
    assert!(!t.join("m-plain/analyses.jsonl").exists() && !t.join("m-plain/plots").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let modes: std::collections::BTreeSet<u32> = std::fs::read_dir(t.join("o-surt/cache"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().permissions().mode() & 0o777)
            .collect();
        assert_eq!(
            modes.len(),
            1,
            "cache files with different modes: {modes:?}"
        );
    }
}

/// Read-only locations (a results directory, the plots of a report) are exit-2 errors
/// naming the path, before anything runs or prints. Root ignores permissions, so as root
/// the commands run as `nobody` through setpriv (util-linux).
#[cfg(unix)]
#[test]
fn read_only_locations_exit_2_naming_the_path() {
    use std::os::unix::fs::PermissionsExt;
    let root = is_root();
    let as_user = |a: &[String]| -> std::process::Output {
        if root {
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_stab"))
                .args(a)
                .env("STAB_LOG", "warn")
                .output()
                .unwrap()
        } else {
            stab().args(a).output().unwrap()
        }
    };
    if root && Command::new("setpriv").arg("--version").output().is_err() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (read_only_locations: root without setpriv)"
        );
        return;
    }
    // A world-readable place outside the 0700 temporary directories.
    let base = std::env::temp_dir().join(format!("stab-ro-{}", std::process::id()));
    let ro = base.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let recipe = base.join("r.toml");
    std::fs::write(&recipe, synthetic("values = [0.5]\n")).unwrap();
    let o = stab()
        .args(args(&["run", &s(&recipe), "--out", &s(&ro.join("rep"))]))
        .output()
        .unwrap();
    assert!(o.status.success());
    for p in [&base, &ro, &ro.join("rep")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&recipe, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        ro.join("rep/runs.jsonl"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    if !root {
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::set_permissions(ro.join("rep"), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    for (a, path) in [
        (
            args(&["run", &s(&recipe), "--out", &s(&ro.join("out"))]),
            ro.join("out"),
        ),
        (args(&["report", &s(&ro.join("rep"))]), ro.join("rep/plots")),
    ] {
        let o = as_user(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
        assert!(
            err.contains(&s(&path)) && err.contains("Permission denied"),
            "{a:?}: {err}"
        );
        assert!(
            o.stdout.is_empty(),
            "nothing printed before the error: {a:?}"
        );
    }
    assert!(!ro.join("out").exists());
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = std::fs::remove_dir_all(&base);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
