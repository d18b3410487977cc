//! Decoder parity with PyTorch (transformers 5.24) on the golden files of the four tiny
//! decoders (`testdata/fixtures/golden`, "Decoder files" in its README): token ids and
//! masks exact; every hidden state on the real tokens, the final norm's output and the
//! sequence-classification logits (a `score` head at HF's last token) within 1e-4; the
//! last-token index by HF's rule, also with an eos appended; and the left-padded batch
//! giving the right-padded logits (positions from the attention mask); and the recorded
//! three AdamW steps of sequence classification within 1e-5 relative on the losses.

use std::path::PathBuf;

use burn::module::{Module, Param};
use burn::nn::LinearConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde_json::Value;
use stab_models::{TextEncoder, TokenBatch, load_encoder, without_dropout};

use crate::assets;
use crate::golden_files;

use golden_files::{Classifier, floats, global_norm, golden, inputs, ints, to_vec};

const DECODERS: [&str; 4] = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"];

fn fixtures() -> PathBuf {
    assets::root().join("testdata/fixtures")
}

/// Max |a − b| over the real tokens of [B, T, H] layouts.
fn max_diff_real(a: &[f64], b: &[f64], mask: &[i64], h: usize) -> f64 {
    let mut worst: f64 = 0.0;
    for (k, &m) in mask.iter().enumerate() {
        if m == 0 {
            continue;
        }
        for j in 0..h {
            worst = worst.max((a[k * h + j] - b[k * h + j]).abs());
        }
    }
    worst
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// A batch of given ids and mask (no offsets: the forward pass does not read them).
fn batch_of(ids: Vec<i64>, mask: Vec<i64>, b: usize) -> TokenBatch {
    let t = ids.len() / b;
    TokenBatch {
        batch: b,
        seq_len: t,
        token_type_ids: vec![0; ids.len()],
        input_ids: ids,
        attention_mask: mask,
        offsets: vec![Vec::new(); b],
        sequence_ids: vec![Vec::new(); b],
    }
}

/// [`stab_models::Encoder::last_token_index`] as the golden files spell it.
fn last_token_index(encoder: &stab_models::Encoder, batch: &TokenBatch) -> Vec<i64> {
    let index = encoder.last_token_index(batch);
    index.into_iter().map(|i| i as i64).collect()
}

/// `score(h_last)`: the golden `score` weight [3, H] applied to vectors [B, H].
fn score(g: &Value, vectors: Tensor<2>, device: &Device) -> Vec<f64> {
    let w = floats(&g["sequence_classification"]["score_weight"]);
    let h = vectors.dims()[1];
    let w = Tensor::<2>::from_data(
        TensorData::new(w.iter().map(|&x| x as f32).collect(), [w.len() / h, h]),
        device,
    );
    to_vec(vectors.matmul(w.transpose()))
}

fn check(name: &str) {
    check_dir(name, &fixtures().join(name));
}

/// [`check`] on the weights and tokenizer in `dir`, against `name`'s golden file.
fn check_dir(name: &str, dir: &std::path::Path) {
    let g = golden(name);
    let dir = dir.to_path_buf();
    let device = Device::flex();
    let (encoder, report) = load_encoder(&dir, &device).unwrap();
    eprintln!("{name}: {report}");
    assert!(report.unexpected.is_empty(), "{name}: {report}");
    let encoder = encoder.valid();
    let tok = TextEncoder::from_dir(&dir, encoder.config.pad_id()).unwrap();
    let inputs = inputs(&g);
    let max_len = g["tokenizer_settings"]["max_length"].as_u64().unwrap() as usize;
    let batch = tok.encode(&inputs, max_len).unwrap();
    assert_eq!(batch.input_ids, ints(&g["input_ids"]), "{name}: input ids");
    assert_eq!(
        batch.attention_mask,
        ints(&g["attention_mask"]),
        "{name}: attention mask"
    );
    let h = encoder.config.hidden_size;
    let out = encoder.forward(&batch);
    let layers = g["hidden_states"].as_array().unwrap();
    for (l, want) in layers.iter().enumerate() {
        let d = max_diff_real(
            &to_vec(out.hidden_states[l].clone()),
            &floats(want),
            &batch.attention_mask,
            h,
        );
        eprintln!("{name}: hidden_states[{l}] max |Δ| = {d:.2e}");
        assert!(d < 1e-4, "{name}: hidden_states[{l}] differs by {d:e}");
    }
    let d = max_diff_real(
        &to_vec(out.last()),
        &floats(&g["last_hidden_state"]),
        &batch.attention_mask,
        h,
    );
    eprintln!("{name}: last_hidden_state max |Δ| = {d:.2e}");
    assert!(d < 1e-4, "{name}: last_hidden_state differs by {d:e}");

    assert_eq!(
        last_token_index(&encoder, &batch),
        ints(&g["last_token_index"]),
        "{name}: last token index"
    );
    let logits = score(&g, encoder.last_token(&out, &batch), &device);
    let d = max_diff(&logits, &floats(&g["sequence_classification"]["logits"]));
    eprintln!("{name}: classification logits max |Δ| = {d:.2e}");
    assert!(d < 1e-4, "{name}: classification logits differ by {d:e}");

    // Left padding, positions from the attention mask: the right-padded logits.
    let left = &g["left_padded"];
    let b = batch.batch;
    let lb = batch_of(ints(&left["input_ids"]), ints(&left["attention_mask"]), b);
    let want = floats(&left["sequence_classification_logits_positions_from_mask"]);
    let lout = encoder.forward(&lb);
    let left_logits = score(&g, encoder.last_token(&lout, &lb), &device);
    let d = max_diff(&left_logits, &want);
    eprintln!("{name}: left-padded logits max |Δ| = {d:.2e}");
    assert!(d < 1e-4, "{name}: left-padded logits differ by {d:e}");
    assert!(
        max_diff(&left_logits, &logits) < 1e-4,
        "{name}: left ≠ right"
    );

    // An eos after each row's last real token: HF's rule skips it when pad = eos.
    let eos = &g["last_token_index_eos_appended"];
    let t = batch.seq_len;
    let eos_id = eos["eos_token_id"].as_i64().unwrap();
    let pad = encoder.config.pad_id() as i64;
    let mut ids = Vec::with_capacity(b * (t + 1));
    for r in 0..b {
        let row = &batch.input_ids[r * t..(r + 1) * t];
        let len = batch.attention_mask[r * t..(r + 1) * t]
            .iter()
            .filter(|&&m| m != 0)
            .count();
        ids.extend_from_slice(&row[..len]);
        ids.push(eos_id);
        ids.extend(std::iter::repeat_n(pad, t - len));
    }
    let appended = batch_of(ids, vec![1; b * (t + 1)], b);
    assert_eq!(
        last_token_index(&encoder, &appended),
        ints(&eos["last_token_index"]),
        "{name}: last token index with an eos appended"
    );
}

/// The golden `train_step`: `AutoModelForSequenceClassification` (a bias-free `score`
/// head at HF's last token) trained by AdamW over every parameter for three steps on the
/// right-padded batch, dropout off; the losses within 1e-5 relative, the gradient's global
/// norm within 1e-4 relative.
fn check_train_step(name: &str) {
    let g = golden(name);
    let ts = &g["train_step"];
    let dir = fixtures().join(name);
    let device = Device::flex().autodiff();
    let (encoder, _) = load_encoder(&dir, &device).unwrap();
    let h = encoder.config.hidden_size;
    let w = floats(&ts["score_weight_init"]); // PyTorch [3, H]
    let classes = w.len() / h;
    let wt: Vec<f32> = (0..h)
        .flat_map(|i| (0..classes).map(move |o| (o, i)))
        .map(|(o, i)| w[o * h + i] as f32)
        .collect();
    let mut score = LinearConfig::new(h, classes).with_bias(false).init(&device);
    score.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(wt, [h, classes]),
        &device,
    ));
    let mut model = without_dropout(Classifier {
        encoder,
        head: score,
    });
    let tok = TextEncoder::from_dir(&dir, model.encoder.config.pad_id()).unwrap();
    let inputs = inputs(&g);
    let max_len = g["tokenizer_settings"]["max_length"].as_u64().unwrap() as usize;
    let batch = tok.encode(&inputs, max_len).unwrap();
    let labels = ints(&ts["labels"]);
    let targets =
        Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device);
    let opt = &ts["optimizer"];
    let mut optim = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(opt["eps"].as_f64().unwrap() as f32)
        .with_weight_decay(opt["weight_decay"].as_f64().unwrap() as f32)
        .init();
    let lr = opt["lr"].as_f64().unwrap();
    let want = floats(&ts["losses"]);
    for (k, want_loss) in want.iter().enumerate() {
        let out = model.encoder.forward(&batch);
        let logits = model.head.forward(model.encoder.last_token(&out, &batch));
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, targets.clone());
        let got = to_vec(loss.clone())[0];
        eprintln!("{name}: train step {k}: loss {got:.8} vs {want_loss:.8}");
        assert!(
            (got - want_loss).abs() <= 1e-5 * want_loss.abs(),
            "{name}: loss after {k} AdamW steps: {got} vs {want_loss}"
        );
        if k + 1 == want.len() {
            break;
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = global_norm(&model, &grads);
        let want_norm = ts["grad_global_l2_norm_per_step"][k].as_f64().unwrap();
        assert!(
            (norm - want_norm).abs() <= 1e-4 * want_norm,
            "{name}: grad norm at step {k}: {norm} vs {want_norm}"
        );
        model = optim.step(lr, model, grads);
    }
}

#[test]
fn decoders_adamw_runs_match_pytorch() {
    for name in DECODERS {
        check_train_step(name);
    }
}

#[test]
fn tiny_gpt2_matches_pytorch() {
    check(DECODERS[0]);
}

#[test]
fn tiny_llama_matches_pytorch() {
    check(DECODERS[1]);
}

#[test]
fn tiny_qwen2_matches_pytorch() {
    check(DECODERS[2]);
}

#[test]
fn tiny_qwen3_matches_pytorch() {
    check(DECODERS[3]);
}

/// A Mistral config (Llama's layout under another name, `sliding_window = null`) on
/// tiny-llama's weights gives tiny-llama's golden outputs; a sliding window is refused by
/// its key.
#[test]
fn mistral_configs_without_a_window_load_as_llama() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("tiny-llama");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, tmp.path().join(f.file_name().unwrap())).unwrap();
    }
    let config_path = tmp.path().join("config.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["model_type"] = "mistral".into();
    config["architectures"] = serde_json::json!(["MistralForCausalLM"]);
    config["sliding_window"] = Value::Null;
    std::fs::write(&config_path, config.to_string()).unwrap();
    check_dir("tiny-llama", tmp.path());
    config["sliding_window"] = 4096.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let err = load_encoder(tmp.path(), &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sliding_window") && err.contains("4096"),
        "{err}"
    );
}

/// GPT-2 from a PyTorch `pytorch_model.bin` (its Conv1D weights, tied embeddings; written
/// from the safetensors file by `tests/fixtures/make_pytorch_bin.py`) gives the golden
/// outputs the safetensors file gives.
#[test]
fn gpt2_from_a_pytorch_bin_matches_pytorch() {
    let tmp = tempfile::tempdir().unwrap();
    assets::copy_fixture("tiny-gpt2", tmp.path(), &["model.safetensors"]);
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-gpt2-pytorch_model.bin"),
        tmp.path().join("pytorch_model.bin"),
    )
    .unwrap();
    check_dir("tiny-gpt2", tmp.path());
}
