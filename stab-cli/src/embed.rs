//! `stab embed --model DIR_OR_HUB_ID (--text A [--pair B] | --inputs FILE.jsonl) [--max-len N] [--json] [--device D]`
//!
//! Encodes the inputs as one batch (padded to the longest, truncated `longest_first` to
//! `--max-len`) in eval mode and prints the encoder outputs (docs/design.md §3).

use std::path::PathBuf;

use anyhow::Context as _;
use burn::module::Module;
use clap::Args;
use serde_json::json;
use stab_core::InputError;
use stab_models::{TextEncoder, TextInput, load_encoder, resolve_model};

#[derive(Args)]
pub struct EmbedArgs {
    /// A Hugging Face model directory or hub id.
    #[arg(long)]
    model: String,
    /// A single text (or the first text of a pair).
    #[arg(long, conflicts_with = "inputs")]
    text: Option<String>,
    /// The second text of a pair.
    #[arg(long, requires = "text")]
    pair: Option<String>,
    /// JSON lines {"text": ..., "text_pair": ... | null}.
    #[arg(long)]
    inputs: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    max_len: usize,
    /// Print one JSON object with ids, masks, cls, the last token (a decoder's sentence
    /// vector: HF's last non-pad token) and last_hidden_state.
    #[arg(long)]
    json: bool,
    /// cpu, wgpu[:N] or cuda:N (`stab list devices`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn embed(args: EmbedArgs) -> stab_core::Result<()> {
    let inputs = match (&args.text, &args.inputs) {
        (Some(t), None) => vec![TextInput {
            text: t.clone(),
            text_pair: args.pair.clone(),
        }],
        (None, Some(p)) => stab_models::tokenizer::read_inputs(p)?,
        _ => {
            return Err(InputError::new(
                "give --text (with an optional --pair) or --inputs FILE.jsonl",
            )
            .into());
        }
    };
    stab_core::limits::MAX_LEN
        .check_usize("--max-len", args.max_len)
        .map_err(|e| e.hint("e.g. --max-len 128; the model's position embeddings bound it too"))?;
    stab_core::limits::EMBED_INPUTS.check_usize("inputs", inputs.len())?;
    let device = crate::device::parse(&args.device)?.device;
    let dir = resolve_model(&args.model)?;
    let (encoder, report) = load_encoder(&dir, &device)?;
    tracing::info!("{report}");
    let tok = TextEncoder::for_model(&dir, &encoder.config)?;
    encoder.config.check_tokens("--max-len", args.max_len)?;
    let batch = tok.encode(&inputs, args.max_len)?;
    let encoder = encoder.valid();
    let out = encoder.forward(&batch);
    let h = encoder.config.hidden_size;
    let t = batch.seq_len;
    let last: Vec<f32> = out
        .last()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .context("reading the outputs")?;
    let last_index = encoder.last_token_index(&batch);
    let decoder = encoder.config.family.is_decoder();
    let rows: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(r, input)| {
            let states: Vec<&[f32]> = (0..t)
                .map(|k| &last[(r * t + k) * h..(r * t + k + 1) * h])
                .collect();
            let k = last_index[r];
            json!({
                "text": input.text,
                "text_pair": input.text_pair,
                "input_ids": batch.row(&batch.input_ids, r),
                "attention_mask": batch.row(&batch.attention_mask, r),
                "token_type_ids": batch.row(&batch.token_type_ids, r),
                "cls": states[0],
                "last_token_index": k,
                "last_token": states[k],
                "last_hidden_state": states,
            })
        })
        .collect();
    if args.json {
        outln!(
            "{}",
            json!({ "model": args.model, "max_len": args.max_len, "inputs": rows })
        );
    } else {
        for (r, input) in inputs.iter().enumerate() {
            let cls = &last[r * t * h..r * t * h + h];
            outln!(
                "input {r}: {:?}{}",
                input.text,
                input
                    .text_pair
                    .as_ref()
                    .map_or(String::new(), |p| format!(" / {p:?}"))
            );
            outln!(
                "  tokens: {}",
                tok.tokens(&batch, r)[..batch.lengths()[r]].join(" ")
            );
            if decoder {
                let k = (r * t + last_index[r]) * h;
                outln!("  last token[..8]: {:?}", &last[k..k + 8.min(h)]);
            } else {
                outln!("  cls[..8]: {:?}", &cls[..8.min(h)]);
            }
        }
    }
    Ok(())
}
