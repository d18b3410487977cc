//! stab-models' integration tests in one binary. Each test file used to be a binary of its
//! own, and each compiled burn's generic tensor code for its backend again: the eight took
//! 368 s to build on 2 cores, as one they compile it once.

#[path = "../../../testsupport/assets.rs"]
mod assets;
#[path = "../../../testsupport/golden.rs"]
mod golden_files;

mod bad_inputs;
mod bounded_tokenize;
mod golden;
mod golden_decoders;
mod hub_families;
mod props;
mod props_config;
mod tokenizer;
