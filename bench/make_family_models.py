"""Random-weight DeBERTa-v3-base (4 of its 12 layers) and ModernBERT-base (6 of its 22) with
the real widths, vocabularies and attention settings, for bench/families_vs_pytorch.sh (the
real checkpoints cannot be downloaded here). The tiny fixtures lend their tokenizers.

    python bench/make_family_models.py testdata/fixtures OUT_DIR
"""
import shutil, torch
from transformers import DebertaV2Config, DebertaV2ForMaskedLM, ModernBertConfig, ModernBertForMaskedLM
torch.manual_seed(0)
import sys
fx = sys.argv[1] if len(sys.argv) > 1 else "testdata/fixtures"
out = sys.argv[2] if len(sys.argv) > 2 else "."
d = DebertaV2Config(vocab_size=128100, hidden_size=768, num_hidden_layers=4, num_attention_heads=12,
    intermediate_size=3072, max_position_embeddings=512, relative_attention=True, position_buckets=256,
    norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7,
    max_relative_positions=-1, position_biased_input=False, type_vocab_size=0, pad_token_id=0, legacy=False)
DebertaV2ForMaskedLM(d).save_pretrained(f"{out}/deberta-v3-base-4l")
m = ModernBertConfig(vocab_size=50368, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
    intermediate_size=1152, local_attention=128, global_attn_every_n_layers=3, max_position_embeddings=8192,
    pad_token_id=998, cls_token_id=996, sep_token_id=997, bos_token_id=996, eos_token_id=997)
ModernBertForMaskedLM(m).save_pretrained(f"{out}/modernbert-base-6l")
for src, dst in [("tiny-deberta-v3", "deberta-v3-base-4l"), ("tiny-modernbert", "modernbert-base-6l")]:
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copy(f"{fx}/{src}/{f}", f"{out}/{dst}/{f}")
