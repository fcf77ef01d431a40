//! The recognition commands, one module each: `analyze`, `train`, `eval`, `finetune`,
//! `calibrate`, `ensemble`, and the model choice they share.

mod analyze;
mod calibrate;
mod ensemble;
mod eval;
mod finetune;
mod models;
mod train;

pub use analyze::*;
pub use calibrate::*;
pub use ensemble::*;
pub use eval::*;
pub use finetune::*;
pub use models::*;
pub use train::*;
