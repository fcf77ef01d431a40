//! Writing WAV files through hound.

use std::path::Path;

use crate::{Error, Result};

fn werr(path: &Path, e: hound::Error) -> Error {
    let source = match e {
        hound::Error::IoError(io) => io,
        other => std::io::Error::other(other.to_string()),
    };
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Mono 16-bit PCM WAV file contents (samples clipped to [-1, 1]).
pub fn wav_i16_bytes(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = std::io::Cursor::new(Vec::with_capacity(44 + 2 * samples.len()));
    {
        // Writing to memory cannot fail.
        let mut w = hound::WavWriter::new(&mut buf, spec).expect("in-memory WAV");
        for &x in samples {
            let v = (x.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v).expect("in-memory WAV");
        }
        w.finalize().expect("in-memory WAV");
    }
    buf.into_inner()
}

/// Writes mono 16-bit PCM (samples clipped to [-1, 1]) atomically: a full disk or a
/// crash leaves either the old file or none, never half a file.
pub fn write_wav_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    crate::util::write_atomic(path, &wav_i16_bytes(samples, sample_rate))
}

/// Writes mono 32-bit float WAV, samples unchanged.
pub fn write_wav_f32(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| werr(path, e))?;
    for &x in samples {
        w.write_sample(x).map_err(|e| werr(path, e))?;
    }
    w.finalize().map_err(|e| werr(path, e))
}
