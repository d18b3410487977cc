//! stab-methods' integration tests in one binary. Each file was a binary of its own, and
//! each compiled burn's generic tensor code for its backend again: the fourteen took about
//! 100 CPU-seconds to build on 2 cores. `tests/hollow.rs` stays a binary of its own: it
//! registers a method without an implementation, which every other test's registry would
//! then hold.

#[path = "../../../testsupport/assets.rs"]
mod assets;
/// Registers the `test-finetune-no-dropout` method (once for the binary: `inventory`).
#[path = "../../../testsupport/no_dropout.rs"]
mod no_dropout;
#[path = "../../../testsupport/tiny_cb.rs"]
mod tiny_cb;

mod checkpoint;
mod engine;
mod families;
mod method_train;
mod methods;
mod no_op;
mod parity_torch;
mod peft;
mod predictions;
mod props_cache;
mod records_golden;
mod seed_batch;
mod stabilisers;
mod stacks;
