//! emoscope: a real-time speech emotion monitor. The library holds everything; `main.rs`
//! only parses the command line and prints errors.
//!
//! Unsafe code: forbidden in every module but seven sites, each allowed where it stands
//! with a `SAFETY:` comment giving its reason: the gemm call of the CPU convolution
//! (`model::conv`), the AVX-512 kernel of the packed products (`kernel::packed`), the
//! widest-instruction-set dispatch of the element-wise loops (`kernel::activation`'s
//! `widest!`: the LSTM's gates, the encoder's GELU), the AVX2 dispatch of the DSP loops
//! (`dsp::vectorised`), the `Send`
//! of the cpal stream handle (`pipeline::source`) and glibc's `mallopt` (twice:
//! `util::tune_allocator`, `util::keep_large_buffers`).
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
pub mod audio;
#[forbid(unsafe_code)]
pub mod cli;
pub mod dsp;
#[forbid(unsafe_code)]
pub mod encoder;
#[forbid(unsafe_code)]
pub mod error;
#[forbid(unsafe_code)]
pub mod features;
#[forbid(unsafe_code)]
pub mod font;
pub mod kernel;
#[forbid(unsafe_code)]
pub mod npy;

pub use error::{Error, Result};
#[forbid(unsafe_code)]
pub mod analysis;
#[forbid(unsafe_code)]
pub mod corpus;
#[forbid(unsafe_code)]
pub mod labels;
pub mod model;
pub mod pipeline;
#[forbid(unsafe_code)]
pub mod train;
#[forbid(unsafe_code)]
pub mod ui;
pub mod util;
