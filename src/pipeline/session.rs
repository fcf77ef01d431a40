//! Session log: the audio the pipeline heard (WAV at the source's rate) and the JSON lines
//! it printed, side by side in one folder, written incrementally (the WAV header is
//! brought up to date every second) so a crash keeps everything up to the last second.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::{Error, Result};

/// A running session recorder: audio arrives on the channel given to `create`; JSON
/// lines are written with `line`.
pub struct SessionLog {
    pub dir: PathBuf,
    jsonl: std::io::BufWriter<std::fs::File>,
    writer: Option<JoinHandle<Result<u64>>>,
}

impl SessionLog {
    /// Creates `dir` (if needed) with `audio.wav` (mono 16-bit at `sample_rate`, fed from
    /// `audio`, e.g. the pipeline's tap) and `session.jsonl`.
    pub fn create(dir: &Path, sample_rate: u32, audio: Receiver<Vec<f32>>) -> Result<Self> {
        crate::util::create_dir_all(dir)?;
        let wav_path = dir.join("audio.wav");
        let jsonl_path = dir.join("session.jsonl");
        let jsonl = std::fs::File::create(&jsonl_path).map_err(|source| Error::Write {
            path: jsonl_path.clone(),
            source,
        })?;
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav = hound::WavWriter::create(&wav_path, spec).map_err(|e| Error::Write {
            path: wav_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let writer = std::thread::Builder::new()
            .name("emoscope-session".into())
            .spawn(move || write_audio(wav, &wav_path, audio))
            .map_err(|e| Error::Write {
                path: dir.to_path_buf(),
                source: e,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            jsonl: std::io::BufWriter::new(jsonl),
            writer: Some(writer),
        })
    }

    /// Appends one JSON line and flushes it to the file.
    pub fn line(&mut self, text: &str) -> Result<()> {
        let path = self.dir.join("session.jsonl");
        writeln!(self.jsonl, "{text}")
            .and_then(|_| self.jsonl.flush())
            .map_err(|source| Error::Write { path, source })
    }

    /// Waits for the audio channel to close (the pipeline stopped) and closes both files;
    /// returns the number of audio samples written.
    pub fn finish(mut self) -> Result<u64> {
        self.writer
            .take()
            .map(|w| w.join().unwrap_or_else(|_| Ok(0)))
            .unwrap_or(Ok(0))
    }
}

fn write_audio(
    mut wav: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: &Path,
    rx: Receiver<Vec<f32>>,
) -> Result<u64> {
    let werr = |e: hound::Error| Error::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(format!(
            "{e} (disk full?); audio up to the last second is kept"
        )),
    };
    let mut n = 0u64;
    let mut last_flush = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(chunk) => {
                for &x in &chunk {
                    wav.write_sample((x.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                        .map_err(werr)?;
                }
                n += chunk.len() as u64;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= Duration::from_secs(1) {
            wav.flush().map_err(werr)?;
            last_flush = Instant::now();
        }
    }
    wav.finalize().map_err(werr)?;
    Ok(n)
}
