//! The library's error type: every variant names the file, device or parameter at fault
//! and, where there is one, what the user can do about it.

use std::path::PathBuf;

/// Everything that can go wrong in the emoscope library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the file is empty (0 bytes); record or export the audio again")]
    EmptyFile { path: PathBuf },
    #[error("{path}: not a recognised audio file ({reason}); emoscope reads WAV, FLAC, MP3 and OGG/Vorbis")]
    NotAudio { path: PathBuf, reason: String },
    #[error("{path}: cannot decode audio: {reason}")]
    Decode { path: PathBuf, reason: String },
    #[error(
        "{path}: truncated: the header promises {expected} frames but only {got} could be read"
    )]
    Truncated {
        path: PathBuf,
        expected: u64,
        got: u64,
    },
    #[error("{path}: contains no audio samples (zero-length stream)")]
    NoSamples { path: PathBuf },
    #[error("{what}: sample {index} is {value} (not a finite number); the audio is corrupt")]
    NonFinite {
        what: String,
        index: usize,
        value: f32,
    },
    #[error("invalid parameter {name} = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what}: signal of {len} samples is shorter than n_fft = {n_fft}; use a longer clip or a smaller --n-fft")]
    SignalTooShort {
        what: String,
        len: usize,
        n_fft: usize,
    },
    #[error("resampling {from} Hz -> {to} Hz failed: {reason}")]
    Resample { from: u32, to: u32, reason: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("audio device: {0}")]
    Device(String),
    #[error("model: {0}")]
    Model(String),
    #[error("corpus {path}: {reason}")]
    Corpus { path: PathBuf, reason: String },
    #[error("{0} was cancelled; nothing was saved")]
    Cancelled(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for an [`Error::InvalidParam`].
    pub fn param(name: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Error::InvalidParam {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
