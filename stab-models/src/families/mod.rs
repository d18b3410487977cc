//! What each encoder family adds to the shared transformer of [`crate::encoder`]: its maths
//! (DeBERTa's relative attention, ModernBERT's rotations and window) and the map between
//! its Hugging Face tensor names and stab's module paths ([`crate::names`]).

pub mod deberta;
pub mod electra;
pub mod modernbert;
