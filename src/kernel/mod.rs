//! CPU kernels below the models and the encoder, which both run on them: the packed
//! AVX-512 matrix product ([`packed`]; the LSTM, the convolutions and the encoder's linear
//! layers) and the branch-free activations with their widest-vector dispatch
//! ([`activation`]; the LSTM's gates, the encoder's GELU). Nothing of emoscope below them.

pub mod activation;
pub mod packed;

pub(crate) use activation::widest;
