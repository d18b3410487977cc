//! Fine-tuning method plugins, one file each. Each declares its typed parameters
//! (`stab_core::method_params!`), implements [`Method`](stab_train::Method) and
//! [`MethodPlugin`](stab_train::MethodPlugin), and registers with one
//! `register_method!`; recipe validation, `stab list methods`, cost estimates and the
//! engine all read that one registration (docs/plugins.md).

pub mod adapter;
pub mod bitfit;
pub mod child_tuning;
pub mod ema;
pub mod finetune;
pub mod llrd;
pub mod lnsr;
pub mod lora;
pub mod mhloss;
pub mod mixout;
pub mod mmr;
pub mod noisytune;
pub mod r3f;
pub mod rdrop;
pub mod reinit;
pub mod sam;
pub mod surt;

pub use stab_train as engine;
pub use stab_train::{Engine, Method, MethodPlugin, register_method};
