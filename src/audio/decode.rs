//! File decoding through symphonia: any supported container and codec, any channel count,
//! mixed down to mono f32 at the file's own sample rate.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_FLAC, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::PcmWav;
use crate::{Error, Result};

/// A decoded clip: mono samples in [-1, 1] at `sample_rate`, plus what the file said.
#[derive(Debug, Clone)]
pub struct AudioClip {
    pub path: PathBuf,
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channel count of the file before the mono mix-down.
    pub channels: usize,
    /// Container and codec, e.g. "wav/pcm_s24le".
    pub format: String,
}

impl AudioClip {
    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Fails with [`Error::NonFinite`] at the first NaN or infinite sample.
pub fn check_finite(what: &str, samples: &[f32]) -> Result<()> {
    match samples.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what: what.to_string(),
            index,
            value: samples[index],
        }),
    }
}

fn codec_name(codec: symphonia::core::codecs::CodecType) -> String {
    symphonia::default::get_codecs()
        .get_codec(codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| format!("{codec}"))
}

/// Decodes `path` to mono f32 at its own sample rate.
///
/// Errors name the file: missing, empty, not audio, truncated (WAV/FLAC whose header
/// promises more frames than the file holds), zero-length, or holding NaN/inf samples.
pub fn decode_file(path: &Path) -> Result<AudioClip> {
    let file = File::open(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    if let Some(clip) = decode_pcm_wav_fast(path)? {
        return Ok(clip);
    }
    let mut file = file;
    check_metadata_lengths(&mut file, len).map_err(|reason| Error::NotAudio {
        path: path.to_path_buf(),
        reason,
    })?;
    file.seek(SeekFrom::Start(0))
        .map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
    decode_source(path, Box::new(file))
}

/// Refuses FLAC and Ogg metadata whose length fields claim more bytes than hold them.
/// symphonia allocates a Vorbis comment (and a FLAC picture) at its declared length before
/// reading it, so a 16 kB file claiming a 1.7 GB comment made it allocate 1.7 GB (found by
/// fuzz/decode_features; the file is tests/fixtures/fuzz/flac_comment_claims_1.7GB.flac).
fn check_metadata_lengths(f: &mut File, file_len: u64) -> std::result::Result<(), String> {
    let mut head = [0u8; 4];
    if f.read_exact(&mut head).is_err() {
        return Ok(());
    }
    let u32_le = |b: &[u8], at: usize| -> Option<u64> {
        b.get(at..at + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as u64)
    };
    match &head {
        b"fLaC" => {
            let mut at = 4u64;
            for _ in 0..4096 {
                let mut h = [0u8; 4];
                if f.read_exact(&mut h).is_err() {
                    return Ok(()); // truncated: the decoder says so
                }
                let (last, kind) = (h[0] & 0x80 != 0, h[0] & 0x7f);
                let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as u64;
                if at + 4 + len > file_len {
                    return Err(format!(
                        "corrupt FLAC metadata: a block at byte {at} claims {len} bytes, past the end of the file"
                    ));
                }
                if kind == 4 || kind == 6 {
                    let mut block = vec![0u8; len as usize];
                    if f.read_exact(&mut block).is_err() {
                        return Ok(());
                    }
                    let bad = |what: &str, n: u64| {
                        format!(
                            "corrupt FLAC metadata: {what} claims {n} bytes in a block of {len}"
                        )
                    };
                    if kind == 4 {
                        // Vorbis comment: vendor string, count, then length-prefixed comments.
                        let vendor = u32_le(&block, 0).ok_or_else(|| bad("a comment block", 4))?;
                        let mut p = 4 + vendor;
                        if p + 4 > len {
                            return Err(bad("the vendor string", vendor));
                        }
                        let count = u32_le(&block, p as usize).unwrap_or(0);
                        p += 4;
                        for _ in 0..count {
                            let n =
                                u32_le(&block, p as usize).ok_or_else(|| bad("a comment", 4))?;
                            if p + 4 + n > len {
                                return Err(bad("a comment", n));
                            }
                            p += 4 + n;
                        }
                    } else {
                        // Picture (big-endian): type, MIME type, description, four
                        // sizes, then the data.
                        let u32_be = |at: u64| {
                            block
                                .get(at as usize..at as usize + 4)
                                .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]) as u64)
                        };
                        let mut p = 4u64;
                        for what in ["the MIME type", "the description", "the picture"] {
                            let n = u32_be(p).ok_or_else(|| bad(what, 4))?;
                            if p + 4 + n > len {
                                return Err(bad(what, n));
                            }
                            p += 4 + n;
                            if what == "the description" {
                                p += 16; // width, height, depth, colours
                            }
                        }
                    }
                } else if f.seek(SeekFrom::Current(len as i64)).is_err() {
                    return Ok(());
                }
                at += 4 + len;
                if last {
                    break;
                }
            }
            Ok(())
        }
        b"OggS" => {
            // The Vorbis comment header (packet type 3) sits in the first pages; its vendor
            // length comes right after the marker. (Later fields may cross a page boundary,
            // so only this one is checked.)
            let mut buf = vec![0u8; 65536];
            let n = f.read(&mut buf).unwrap_or(0);
            let buf = &buf[..n];
            if let Some(i) = buf.windows(7).position(|w| w == b"\x03vorbis") {
                if let Some(vendor) = u32_le(buf, i + 7) {
                    if vendor > file_len {
                        return Err(format!(
                            "corrupt Ogg Vorbis comment header: the vendor string claims {vendor} bytes in a {file_len}-byte file"
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Decodes an audio file held in memory (e.g. the built-in demo clip); `name` stands for
/// it in errors and its extension hints at the format.
pub fn decode_bytes(name: &Path, bytes: &'static [u8]) -> Result<AudioClip> {
    if bytes.is_empty() {
        return Err(Error::EmptyFile {
            path: name.to_path_buf(),
        });
    }
    decode_source(name, Box::new(std::io::Cursor::new(bytes)))
}

fn decode_source(
    path: &Path,
    source: Box<dyn symphonia::core::io::MediaSource>,
) -> Result<AudioClip> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions {
                enable_gapless: true,
                ..Default::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| Error::NotAudio {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Error::NotAudio {
            path: path.to_path_buf(),
            reason: "no audio track".into(),
        })?
        .clone();
    let params = track.codec_params.clone();
    let sample_rate = params.sample_rate.ok_or_else(|| Error::Decode {
        path: path.to_path_buf(),
        reason: "the stream does not state its sample rate".into(),
    })?;
    let mut channels = params.channels.map(|c| c.count()).unwrap_or(0);
    let codec = codec_name(params.codec);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("?")
        .to_ascii_lowercase();
    // Lossless codecs state an exact frame count: fewer decoded frames means truncation.
    let exact_frames = if codec.starts_with("pcm") || params.codec == CODEC_TYPE_FLAC {
        params.n_frames
    } else {
        None
    };
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| Error::Decode {
            path: path.to_path_buf(),
            reason: format!("unsupported codec {codec}: {e}"),
        })?;

    let mut samples: Vec<f32> = Vec::with_capacity(
        params
            .n_frames
            .map(|n| n.min(1 << 28) as usize)
            .unwrap_or(1 << 16),
    );
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut frames: u64 = 0;
    let mut decode_error: Option<String> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                decode_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id() != track.id {
            continue;
        }
        // Gapless playback: encoder delay and padding are marked on packets, not removed.
        let (trim_start, trim_end) = (packet.trim_start() as usize, packet.trim_end() as usize);
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                decode_error = Some(e.to_string());
                continue;
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => {
                decode_error = Some(e.to_string());
                break;
            }
        };
        let spec = *decoded.spec();
        let n = decoded.frames();
        if n == 0 {
            continue;
        }
        channels = spec.channels.count();
        let sb = buf.get_or_insert_with(|| SampleBuffer::new(decoded.capacity() as u64, spec));
        if sb.capacity() < n * channels {
            *sb = SampleBuffer::new(decoded.capacity() as u64, spec);
        }
        sb.copy_interleaved_ref(decoded);
        let keep_from = trim_start.min(n);
        let keep_to = n.saturating_sub(trim_end).max(keep_from);
        let inter = &sb.samples()[keep_from * channels..keep_to * channels];
        if channels == 1 {
            samples.extend_from_slice(inter);
        } else {
            let scale = 1.0 / channels as f32;
            samples.extend(
                inter
                    .chunks_exact(channels)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
        frames += (keep_to - keep_from) as u64;
    }

    // Some readers (OGG/Vorbis) state the gapless length and the encoder delay but do not
    // mark packets: remove the delay and the padding here.
    if let (Some(n), Some(delay)) = (params.n_frames, params.delay) {
        if exact_frames.is_none() && frames > n {
            let skip = (delay as usize).min(samples.len());
            samples.drain(..skip);
            samples.truncate(n as usize);
        }
    }
    if let Some(expected) = exact_frames {
        if frames < expected {
            return Err(Error::Truncated {
                path: path.to_path_buf(),
                expected,
                got: frames,
            });
        }
    }
    if samples.is_empty() {
        return Err(match decode_error {
            Some(reason) => Error::Decode {
                path: path.to_path_buf(),
                reason,
            },
            None => Error::NoSamples {
                path: path.to_path_buf(),
            },
        });
    }
    check_finite(&path.display().to_string(), &samples)?;
    Ok(AudioClip {
        path: path.to_path_buf(),
        samples,
        sample_rate,
        channels: channels.max(1),
        format: format!("{ext}/{codec}"),
    })
}

/// Fast path for the most common files, PCM WAV with 16/32-bit integer or 32-bit float
/// samples ([`PcmWav`]): read and converted in parallel blocks straight from the file.
/// Returns `None` for anything else (symphonia then decodes it).
fn decode_pcm_wav_fast(path: &Path) -> Result<Option<AudioClip>> {
    use rayon::prelude::*;

    let Some(wav) = PcmWav::open(path)? else {
        return Ok(None);
    };
    const BLOCK: usize = 1 << 16;
    let mut samples = vec![0.0f32; wav.frames()];
    samples
        .par_chunks_mut(BLOCK)
        .enumerate()
        .try_for_each_init(Vec::new, |bytes, (i, out)| {
            wav.read_mono(i * BLOCK, out, bytes)
        })?;
    Ok(Some(AudioClip {
        path: path.to_path_buf(),
        samples,
        sample_rate: wav.sample_rate(),
        channels: wav.channels(),
        format: wav.format(),
    }))
}
