"""Random-weight decoders of real shapes for bench/decoders_vs_pytorch.sh (the real
checkpoints cannot be downloaded here): SmolLM2-135M's (Llama: 30 layers, hidden 576, 9 heads,
3 KV heads, intermediate 1536, vocabulary 49,152, tied embeddings) and Qwen3-0.6B's with 4 of
its 28 layers (hidden 1024, 16 heads, 8 KV heads, head_dim 128, intermediate 3072,
vocabulary 151,936, tied). The tiny fixtures lend their tokenizers (ids below 1,000).

    python bench/make_decoder_models.py testdata/fixtures OUT_DIR
"""
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

torch.manual_seed(0)
fx, out = sys.argv[1], sys.argv[2]
smol = LlamaConfig(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                   num_key_value_heads=3, intermediate_size=1536, max_position_embeddings=8192,
                   rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
                   bos_token_id=996, eos_token_id=997, pad_token_id=998)
LlamaForCausalLM(smol).save_pretrained(f"{out}/smollm2-135m-shape")
qwen = Qwen3Config(vocab_size=151936, hidden_size=1024, num_hidden_layers=4, num_attention_heads=16,
                   num_key_value_heads=8, head_dim=128, intermediate_size=3072,
                   max_position_embeddings=40960, rms_norm_eps=1e-6, rope_theta=1000000.0,
                   tie_word_embeddings=True, bos_token_id=997, eos_token_id=999, pad_token_id=997)
Qwen3ForCausalLM(qwen).save_pretrained(f"{out}/qwen3-0.6b-shape-4l")
for src, dst in [("tiny-llama", "smollm2-135m-shape"), ("tiny-qwen3", "qwen3-0.6b-shape-4l")]:
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        try:
            shutil.copy(f"{fx}/{src}/{f}", f"{out}/{dst}/{f}")
        except FileNotFoundError:
            pass
