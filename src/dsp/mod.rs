//! Signal processing that matches librosa 0.11: STFT power spectrogram, Slaney mel
//! filterbank, power_to_db and MFCC (orthonormal DCT-II). Plans and buffers are reused.

mod db;
mod mel;
mod mfcc;
mod stft;

pub use db::{power_to_db, power_to_db_in_place, AMIN, TOP_DB};
pub use mel::{hz_to_mel, mel_frequencies, mel_to_hz, MelFilterbank};
pub use mfcc::Dct2;
pub use stft::{n_frames, Stft};
