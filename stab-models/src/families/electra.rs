//! ELECTRA (`model_type = "electra"`; Clark et al., ICLR 2020), the discriminator as an
//! encoder: BERT's layers over embeddings `embedding_size` wide. When `embedding_size` ≠
//! `hidden_size` (electra-small), `embeddings_project` (a Linear with bias, no LayerNorm
//! after it) maps the embedding output, after its dropout, to the hidden size:
//!
//! ```text
//! x₀ = W_p · drop(LN_E(word[ids] + pos[p] + type[τ])) + b_p
//! ```
//!
//! HF names: `electra.embeddings.*` (BERT's), `electra.embeddings_project`,
//! `electra.encoder.layer.N.*` (BERT's), and the replaced-token head
//! `discriminator_predictions.{dense, dense_prediction}`:
//! `logit = dense_prediction(gelu(dense(h)))` per token. A discriminator checkpoint has no
//! MLM head; SURT draws one of the generator's shape (`hidden → embedding_size`, LayerNorm,
//! decoder tied to the word embeddings).
