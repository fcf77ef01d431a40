//! Signal processing that matches librosa 0.11: STFT power spectrogram, Slaney mel
//! filterbank, power_to_db and MFCC (orthonormal DCT-II). Plans and buffers are reused.

#[forbid(unsafe_code)]
mod db;
#[forbid(unsafe_code)]
mod mel;
#[forbid(unsafe_code)]
mod mfcc;
#[forbid(unsafe_code)]
pub mod prosody;
#[forbid(unsafe_code)]
mod stft;
#[forbid(unsafe_code)]
mod vad;

pub use db::{log10, power_to_db, power_to_db_in_place, AMIN, TOP_DB};
pub use mel::{hz_to_mel, mel_frequencies, mel_to_hz, MelFilterbank};
pub use mfcc::Dct2;
pub use stft::{n_frames, Stft, StftScratch, TileScratch};
pub use vad::Vad;

/// Frames processed side by side in a tile (`tile[row * LANES + lane]`): every filter
/// weight or DCT coefficient is then one multiply-add over `LANES` frames, which the
/// compiler turns into vector instructions.
pub const LANES: usize = 8;

/// Dot product with eight independent accumulators, so the compiler can vectorise it
/// (a plain `f32` fold cannot be reordered).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        for l in 0..8 {
            acc[l] += a[i * 8 + l] * b[i * 8 + l];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

/// Calls `f` from a function compiled for AVX2 when the CPU has it, so the loops inlined
/// into it are vectorised eight wide instead of the baseline four; otherwise calls it as
/// built. The result is the same either way (no fused multiply-add is enabled).
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        #[allow(unsafe_code)]
        unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has just been found to support AVX2, all `wide` is built for.
        #[allow(unsafe_code)]
        return unsafe { wide(f) };
    }
    f()
}
