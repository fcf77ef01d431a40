//! Audio in and out: decoding files (WAV/FLAC/MP3/OGG) to mono f32, band-limited
//! resampling, and writing WAV. Capture from a microphone lives here too once it exists.

pub mod capture;
mod decode;
mod pcm_wav;
pub mod playback;
mod resample;
mod wav;

pub use decode::{check_finite, decode_bytes, decode_file, AudioClip};

use std::path::Path;

/// The name that stands for the demo clip compiled into the binary (`assets/demo.flac`,
/// see assets/README.md), wherever an audio file path is taken: `emoscope analyze
/// builtin:demo`, `emoscope monitor --input builtin:demo`, the window's "play the demo".
pub const DEMO_CLIP: &str = "builtin:demo";
static DEMO_FLAC: &[u8] = include_bytes!("../../assets/demo.flac");

/// Decodes `path`, or the built-in demo clip for [`DEMO_CLIP`].
pub fn decode_input(path: &Path) -> crate::Result<AudioClip> {
    if path == Path::new(DEMO_CLIP) {
        return decode_bytes(Path::new("builtin:demo (demo.flac)"), DEMO_FLAC);
    }
    decode_file(path)
}
pub use pcm_wav::PcmWav;
pub use resample::{resample, StreamResampler};
pub use wav::{wav_i16_bytes, write_wav_f32, write_wav_i16};

/// Peak absolute sample value (linear, 0..=1 for normal audio).
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, &x| m.max(x.abs()))
}

/// Root-mean-square level (linear).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| (x as f64) * (x as f64)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// A linear level as dBFS (−inf for 0 is reported as −120).
pub fn dbfs(level: f32) -> f32 {
    if level <= 1e-6 {
        -120.0
    } else {
        20.0 * level.log10()
    }
}
