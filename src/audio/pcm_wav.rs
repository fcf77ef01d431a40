//! PCM WAV read in place: hound parses the header, then any range of frames is read with
//! positioned reads and mixed to mono f32, so a long file never has to sit in memory whole.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A 16/32-bit integer or 32-bit float PCM WAV whose data can be read by frame range.
pub struct PcmWav {
    path: PathBuf,
    file: File,
    /// Byte offset of the first sample in the file.
    data_offset: u64,
    frames: usize,
    channels: usize,
    sample_rate: u32,
    bytes_per_sample: usize,
    is_float: bool,
}

impl PcmWav {
    /// Opens `path` if it is a PCM WAV of a layout read here; `None` for anything else
    /// (symphonia decodes those). Errors name the file: unreadable, truncated (the header
    /// promises more frames than the file holds) or without samples.
    pub fn open(path: &Path) -> Result<Option<Self>> {
        use std::io::Seek;
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        // Unbuffered, so the file position after the header is the first sample.
        let Ok(reader) = hound::WavReader::new(file) else {
            return Ok(None);
        };
        let spec = reader.spec();
        let (bytes_per_sample, is_float) = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => (2, false),
            (hound::SampleFormat::Int, 32) => (4, false),
            (hound::SampleFormat::Float, 32) => (4, true),
            _ => return Ok(None),
        };
        let channels = spec.channels.max(1) as usize;
        let declared = reader.len() as u64 / channels as u64;
        let mut file = reader.into_inner();
        let data_offset = file.stream_position().map_err(open_err)?;
        let file_len = file.metadata().map_err(open_err)?.len();
        let frame_bytes = (bytes_per_sample * channels) as u64;
        let available = file_len.saturating_sub(data_offset) / frame_bytes;
        if available < declared {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                expected: declared,
                got: available,
            });
        }
        if declared == 0 {
            return Err(Error::NoSamples {
                path: path.to_path_buf(),
            });
        }
        Ok(Some(Self {
            path: path.to_path_buf(),
            file,
            data_offset,
            frames: declared as usize,
            channels,
            sample_rate: spec.sample_rate,
            bytes_per_sample,
            is_float,
        }))
    }

    /// Frames (samples per channel) in the file.
    pub fn frames(&self) -> usize {
        self.frames
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Container and codec as symphonia names them, e.g. "wav/pcm_s16le".
    pub fn format(&self) -> String {
        format!(
            "wav/pcm_{}{}le",
            if self.is_float { "f" } else { "s" },
            8 * self.bytes_per_sample
        )
    }

    /// Mono samples of frames `start .. start + out.len()` into `out` (channels averaged),
    /// using `bytes` as the read buffer. Float files are checked for NaN and infinity.
    pub fn read_mono(&self, start: usize, out: &mut [f32], bytes: &mut Vec<u8>) -> Result<()> {
        let frame_bytes = self.bytes_per_sample * self.channels;
        bytes.resize(out.len() * frame_bytes, 0);
        read_exact_at(
            &self.file,
            bytes,
            self.data_offset + (start * frame_bytes) as u64,
        )
        .map_err(|source| Error::Open {
            path: self.path.clone(),
            source,
        })?;
        match (self.channels, self.bytes_per_sample, self.is_float) {
            (1, 2, _) => {
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = i16::from_le_bytes([b[0], b[1]]) as f32 * (1.0 / 32768.0);
                }
            }
            (channels, bytes_per, is_float) => {
                let convert = |b: &[u8]| -> f32 {
                    match (bytes_per, is_float) {
                        (2, _) => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
                        (_, false) => {
                            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2147483648.0
                        }
                        _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    }
                };
                let scale = 1.0 / channels as f32;
                for (o, frame) in out.iter_mut().zip(bytes.chunks_exact(frame_bytes)) {
                    *o = if channels == 1 {
                        convert(frame)
                    } else {
                        frame.chunks_exact(bytes_per).map(convert).sum::<f32>() * scale
                    };
                }
            }
        }
        if self.is_float {
            if let Some(i) = out.iter().position(|x| !x.is_finite()) {
                return Err(Error::NonFinite {
                    what: self.path.display().to_string(),
                    index: start + i,
                    value: out[i],
                });
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}
