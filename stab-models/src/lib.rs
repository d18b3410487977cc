//! # stab-models
//!
//! Pre-trained encoders for stab: Hugging Face configuration, BERT/RoBERTa layers in burn,
//! weight loading, tokenization and the task heads. Being built (see README "Status");
//! the synthetic studies do not use it.
