//! `FeatureSpec`, the one description of how audio becomes a model's input, and the
//! extractor that applies it; training, file analysis and live monitoring all call this.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dsp::{n_frames, power_to_db_in_place, Dct2, MelFilterbank, Stft, TOP_DB};
use crate::{Error, Result};

/// What kind of feature matrix to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Mel spectrogram: power, or dB when `db` is set.
    Mel,
    /// MFCC: orthonormal DCT-II of the dB mel spectrogram.
    Mfcc,
}

/// How a window's feature matrix is normalised before it reaches a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// Values as computed.
    #[default]
    None,
    /// Each row (mel band or coefficient) has its mean over the window subtracted and is
    /// divided by the standard deviation of the whole matrix: level and channel
    /// colouring cancel out, relative dynamics stay.
    Utterance,
    /// The mean of the whole matrix is subtracted and it is divided by its standard
    /// deviation: level cancels out, the spectral shape (tilt, formants) stays.
    Level,
}

/// The parameters that turn audio into a feature matrix, stored with every model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub kind: FeatureKind,
    /// Rate (Hz) the audio is resampled to before analysis.
    pub sample_rate: u32,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub n_mfcc: usize,
    /// Lowest mel filter edge, Hz.
    pub fmin: f32,
    /// Highest mel filter edge, Hz; `None` means `sample_rate / 2`.
    pub fmax: Option<f32>,
    /// Mel only: convert power to dB (`power_to_db`, ref 1, amin 1e-10, top_db 80).
    pub db: bool,
    /// Analysis window length in seconds (models see windows of this length).
    #[serde(default = "default_window")]
    pub window_seconds: f32,
    #[serde(default)]
    pub normalisation: Normalisation,
}

fn default_window() -> f32 {
    3.0
}

impl Default for FeatureSpec {
    /// librosa's defaults: 22.05 kHz, n_fft 2048, hop 512, 128 mels, 20 MFCCs, power mel.
    fn default() -> Self {
        Self {
            kind: FeatureKind::Mel,
            sample_rate: 22050,
            n_fft: 2048,
            hop_length: 512,
            n_mels: 128,
            n_mfcc: 20,
            fmin: 0.0,
            fmax: None,
            db: false,
            window_seconds: default_window(),
            normalisation: Normalisation::None,
        }
    }
}

impl FeatureSpec {
    /// Upper mel edge in Hz.
    pub fn fmax_hz(&self) -> f32 {
        self.fmax.unwrap_or(self.sample_rate as f32 / 2.0)
    }

    /// Rows of the output matrix: `n_mels` for mel, `n_mfcc` for MFCC.
    pub fn n_rows(&self) -> usize {
        match self.kind {
            FeatureKind::Mel => self.n_mels,
            FeatureKind::Mfcc => self.n_mfcc,
        }
    }

    /// Samples in one analysis window.
    pub fn window_samples(&self) -> usize {
        (self.window_seconds as f64 * self.sample_rate as f64).round() as usize
    }

    /// Frames in the feature matrix of one analysis window.
    pub fn window_frames(&self) -> usize {
        n_frames(self.window_samples(), self.hop_length)
    }

    /// Checks every parameter, naming the first that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.sample_rate < 1000 {
            return Err(Error::param(
                "sample_rate",
                self.sample_rate,
                "must be at least 1000 Hz",
            ));
        }
        if self.n_fft < 16 {
            return Err(Error::param("n_fft", self.n_fft, "must be at least 16"));
        }
        if self.hop_length == 0 {
            return Err(Error::param("hop_length", 0, "must be positive"));
        }
        if self.n_fft < self.hop_length {
            return Err(Error::param(
                "n_fft",
                self.n_fft,
                format!(
                    "is smaller than hop_length = {}; frames would skip audio",
                    self.hop_length
                ),
            ));
        }
        if self.n_mels == 0 {
            return Err(Error::param("n_mels", 0, "must be positive"));
        }
        let n_bins = self.n_fft / 2 + 1;
        if self.n_mels > n_bins {
            return Err(Error::param(
                "n_mels",
                self.n_mels,
                format!(
                    "exceeds the {n_bins} FFT bins of n_fft = {}; lower --n-mels or raise --n-fft",
                    self.n_fft
                ),
            ));
        }
        if self.kind == FeatureKind::Mfcc && (self.n_mfcc == 0 || self.n_mfcc > self.n_mels) {
            return Err(Error::param(
                "n_mfcc",
                self.n_mfcc,
                format!("must be between 1 and n_mels = {}", self.n_mels),
            ));
        }
        let nyquist = self.sample_rate as f32 / 2.0;
        if !(self.fmin >= 0.0 && self.fmin < self.fmax_hz()) {
            return Err(Error::param(
                "fmin",
                self.fmin,
                format!("must be >= 0 and below fmax = {}", self.fmax_hz()),
            ));
        }
        if self.fmax_hz().is_nan() || self.fmax_hz() > nyquist {
            return Err(Error::param(
                "fmax",
                self.fmax_hz(),
                format!("must not exceed the Nyquist frequency {nyquist} Hz"),
            ));
        }
        if !(self.window_seconds > 0.0 && self.window_seconds <= 60.0) {
            return Err(Error::param(
                "window_seconds",
                self.window_seconds,
                "must be in (0, 60]",
            ));
        }
        Ok(())
    }
}

/// A feature matrix, row-major: `rows` (mel bands or coefficients) by `frames`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub frames: usize,
    pub data: Vec<f32>,
}

impl FeatureMatrix {
    pub fn get(&self, row: usize, frame: usize) -> f32 {
        self.data[row * self.frames + frame]
    }
}

/// Applies a [`FeatureSpec`] to signals already at its sample rate. Build once, reuse:
/// it owns the FFT plan, the filterbank and the DCT matrix.
pub struct FeatureExtractor {
    spec: FeatureSpec,
    stft: Stft,
    mel: MelFilterbank,
    dct: Option<Dct2>,
}

/// Frames handed to one parallel task.
const FRAMES_PER_TASK: usize = 256;

impl FeatureExtractor {
    pub fn new(spec: &FeatureSpec) -> Result<Self> {
        spec.validate()?;
        let stft = Stft::new(spec.n_fft, spec.hop_length);
        let mel = MelFilterbank::new(
            spec.sample_rate,
            spec.n_fft,
            spec.n_mels,
            spec.fmin as f64,
            spec.fmax_hz() as f64,
        );
        let dct = (spec.kind == FeatureKind::Mfcc).then(|| Dct2::new(spec.n_mels, spec.n_mfcc));
        Ok(Self {
            spec: spec.clone(),
            stft,
            mel,
            dct,
        })
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Mel band power of every frame, frame-major (`frames x n_mels`), frames computed in
    /// parallel on the rayon pool.
    fn mel_power_frames(&self, signal: &[f32]) -> (usize, Vec<f32>) {
        let frames = n_frames(signal.len(), self.spec.hop_length);
        let n_mels = self.spec.n_mels;
        let mut out = vec![0.0f32; frames * n_mels];
        out.par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .for_each(|(task, block)| {
                let mut scratch = self.stft.scratch();
                let mut power = vec![0.0f32; self.stft.n_bins()];
                for (i, row) in block.chunks_exact_mut(n_mels).enumerate() {
                    let t = task * FRAMES_PER_TASK + i;
                    self.stft.power_frame(signal, t, &mut scratch, &mut power);
                    self.mel.apply(&power, row);
                }
            });
        (frames, out)
    }

    /// Checks `signal` (long enough, finite) and returns its mel band power, frame-major.
    fn checked_mel_frames(&self, what: &str, signal: &[f32]) -> Result<(usize, Vec<f32>)> {
        if signal.len() < self.spec.n_fft {
            return Err(Error::SignalTooShort {
                what: what.into(),
                len: signal.len(),
                n_fft: self.spec.n_fft,
            });
        }
        crate::audio::check_finite(what, signal)?;
        Ok(self.mel_power_frames(signal))
    }

    /// MFCCs (frame-major, `n_mfcc` per frame) of frame-major dB mel bands.
    fn dct_frames(&self, db_frames: &[f32]) -> (usize, Vec<f32>) {
        let dct = self.dct.as_ref().expect("built for mfcc");
        let (n_mels, n_mfcc) = (self.spec.n_mels, dct.n_out());
        let frames = db_frames.len() / n_mels;
        let mut out = vec![0.0f32; frames * n_mfcc];
        out.par_chunks_mut(FRAMES_PER_TASK * n_mfcc)
            .zip(db_frames.par_chunks(FRAMES_PER_TASK * n_mels))
            .for_each(|(o, m)| {
                for (orow, mrow) in o.chunks_exact_mut(n_mfcc).zip(m.chunks_exact(n_mels)) {
                    dct.apply(mrow, orow);
                }
            });
        (n_mfcc, out)
    }

    /// Computes the feature matrix of `signal` (samples at `spec.sample_rate`), before
    /// normalisation. `what` names the signal in errors.
    pub fn compute(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        let (frames, mut fm) = self.checked_mel_frames(what, signal)?;
        if self.spec.kind == FeatureKind::Mfcc || self.spec.db {
            power_to_db_in_place(&mut fm, Some(TOP_DB));
        }
        let (rows, frame_major) = match self.spec.kind {
            FeatureKind::Mel => (self.spec.n_mels, fm),
            FeatureKind::Mfcc => self.dct_frames(&fm),
        };
        Ok(FeatureMatrix {
            rows,
            frames,
            data: transpose(&frame_major, frames, rows),
        })
    }

    /// The dB mel spectrogram (`n_mels x frames`, top_db applied), whatever the spec's kind:
    /// the stored form from which [`finish`](Self::finish) makes a model's input.
    pub fn db_mel(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        let (frames, mut fm) = self.checked_mel_frames(what, signal)?;
        power_to_db_in_place(&mut fm, Some(TOP_DB));
        let n_mels = self.spec.n_mels;
        Ok(FeatureMatrix {
            rows: n_mels,
            frames,
            data: transpose(&fm, frames, n_mels),
        })
    }

    /// Turns a window of dB mel (as from [`db_mel`](Self::db_mel), possibly cropped,
    /// padded or augmented) into the model's input: top_db re-applied against the window's
    /// own maximum, DCT for MFCC specs, then the spec's normalisation. Training, `analyze`
    /// and the live monitor all end here.
    pub fn finish(&self, mut db_mel: FeatureMatrix) -> FeatureMatrix {
        let max = db_mel.data.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let floor = max - TOP_DB;
        db_mel.data.iter_mut().for_each(|x| *x = x.max(floor));
        let mut m = match self.spec.kind {
            FeatureKind::Mfcc => {
                let frames = db_mel.frames;
                let (rows, out) = self.dct_frames(&transpose(&db_mel.data, db_mel.rows, frames));
                FeatureMatrix {
                    rows,
                    frames,
                    data: transpose(&out, frames, rows),
                }
            }
            FeatureKind::Mel => db_mel,
        };
        normalise(&mut m, self.spec.normalisation);
        m
    }

    /// The model input for exactly one window of samples (shorter input is zero-padded at
    /// the end to the spec's window length, longer input is cut).
    pub fn model_input(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        let n = self.spec.window_samples();
        let db = if signal.len() == n {
            self.db_mel(what, signal)?
        } else {
            let mut w = signal[..signal.len().min(n)].to_vec();
            w.resize(n, 0.0);
            self.db_mel(what, &w)?
        };
        Ok(self.finish(db))
    }
}

impl FeatureMatrix {
    /// Frames `start..start+len` of a frame-wise matrix; frames past the end are filled
    /// with `fill` (for dB mel: the floor, i.e. silence).
    pub fn crop(&self, start: usize, len: usize, fill: f32) -> FeatureMatrix {
        let mut data = vec![fill; self.rows * len];
        for r in 0..self.rows {
            let src = &self.data[r * self.frames..(r + 1) * self.frames];
            let avail = src.len().saturating_sub(start).min(len);
            data[r * len..r * len + avail]
                .copy_from_slice(&src[start.min(src.len())..start.min(src.len()) + avail]);
        }
        FeatureMatrix {
            rows: self.rows,
            frames: len,
            data,
        }
    }

    /// Smallest value (the dB floor for dB mel).
    pub fn min(&self) -> f32 {
        self.data.iter().fold(f32::INFINITY, |m, &x| m.min(x))
    }
}

/// Applies a [`Normalisation`] in place.
pub fn normalise(m: &mut FeatureMatrix, how: Normalisation) {
    match how {
        Normalisation::None => {}
        Normalisation::Utterance => {
            let f = m.frames.max(1);
            for row in m.data.chunks_exact_mut(f) {
                let mean = row.iter().sum::<f32>() / f as f32;
                row.iter_mut().for_each(|x| *x -= mean);
            }
            scale_to_unit_rms(&mut m.data);
        }
        Normalisation::Level => {
            let mean = m.data.iter().sum::<f32>() / m.data.len().max(1) as f32;
            m.data.iter_mut().for_each(|x| *x -= mean);
            scale_to_unit_rms(&mut m.data);
        }
    }
}

fn scale_to_unit_rms(data: &mut [f32]) {
    let n = data.len().max(1) as f32;
    let var = data.iter().map(|x| x * x).sum::<f32>() / n;
    let inv = 1.0 / (var.sqrt() + 1e-3);
    data.iter_mut().for_each(|x| *x *= inv);
}

fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0.0f32; src.len()];
    const B: usize = 32;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    dst
}
