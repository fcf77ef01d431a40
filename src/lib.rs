//! emoscope: a real-time speech emotion monitor. The library holds everything; `main.rs`
//! only parses the command line and prints errors.

pub mod audio;
pub mod cli;
pub mod dsp;
pub mod error;
pub mod features;
pub mod font;
pub mod npy;

pub use error::{Error, Result};
pub mod analysis;
pub mod corpus;
pub mod labels;
pub mod model;
pub mod pipeline;
pub mod train;
pub mod ui;
pub mod util;
