//! `FeatureSpec`, the one description of how audio becomes a model's input, and the
//! extractor that applies it; training, file analysis and live monitoring all call this.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dsp::prosody::{self, ProsodyAnalyser, MEL_LLDS, WAVE_LLDS};
use crate::dsp::{
    log10, n_frames, vectorised, Dct2, MelFilterbank, Stft, TileScratch, AMIN, LANES, TOP_DB,
};
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
    /// Each mel band has the speaker's mean subtracted and is divided by the speaker's
    /// standard deviation, both over the speech heard from that speaker so far (a
    /// [`SpeakerProfile`]: a live session, a file, or a corpus speaker's clips). The
    /// speaker's voice and microphone cancel out; how this moment differs from their
    /// usual voice (louder, brighter, flatter) stays.
    Speaker,
}

/// Frames within this many dB of the loudest frame (mean over bands) of what is added to
/// a [`SpeakerProfile`] count as speech.
const PROFILE_SPEECH_DB: f32 = 30.0;

/// The smallest per-band standard deviation (dB) [`Normalisation::Speaker`] divides by.
const PROFILE_MIN_STD_DB: f64 = 1.0;

/// Per-band statistics of one speaker's speech frames in dB mel, accumulated over
/// everything heard from them: what [`Normalisation::Speaker`] removes.
#[derive(Debug, Clone, Default)]
pub struct SpeakerProfile {
    frames: usize,
    sum: Vec<f64>,
    sumsq: Vec<f64>,
    /// Prosody descriptors: per row, frames where it applies, sum and sum of squares.
    lld_n: Vec<u64>,
    lld_sum: Vec<f64>,
    lld_sumsq: Vec<f64>,
}

impl SpeakerProfile {
    /// The profile of one dB mel matrix alone.
    pub fn of(db_mel: &FeatureMatrix) -> Self {
        let mut p = Self::default();
        p.add(db_mel);
        p
    }

    /// Adds the speech frames of a dB mel matrix (those within 30 dB of its loudest).
    pub fn add(&mut self, db_mel: &FeatureMatrix) {
        let (rows, frames) = (db_mel.rows, db_mel.frames);
        if self.sum.len() != rows {
            assert_eq!(
                self.frames,
                0,
                "a speaker profile mixes {} and {rows} bands",
                self.sum.len()
            );
            self.sum = vec![0.0; rows];
            self.sumsq = vec![0.0; rows];
        }
        let mut level = vec![0.0f32; frames];
        for row in db_mel.data.chunks_exact(frames.max(1)) {
            level.iter_mut().zip(row).for_each(|(l, x)| *l += x);
        }
        let top = level.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let gate = top - PROFILE_SPEECH_DB * rows as f32;
        let speech: Vec<usize> = (0..frames).filter(|&f| level[f] >= gate).collect();
        for (r, row) in db_mel.data.chunks_exact(frames.max(1)).enumerate() {
            for &f in &speech {
                let x = row[f] as f64;
                self.sum[r] += x;
                self.sumsq[r] += x * x;
            }
        }
        self.frames += speech.len();
    }

    /// Speech frames seen so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Adds a window or clip heard from the speaker: its speech frames of dB mel and, for
    /// a prosody spec, its descriptors (as from [`FeatureExtractor::llds`]).
    pub fn add_window(&mut self, db_mel: &FeatureMatrix, llds: Option<&FeatureMatrix>) {
        self.add(db_mel);
        if let Some(l) = llds {
            self.add_llds(l);
        }
    }

    /// Adds the frames of prosody descriptors (rows of [`N_LLDS`]) where each applies.
    pub fn add_llds(&mut self, llds: &FeatureMatrix) {
        if self.lld_n.len() != llds.rows {
            self.lld_n = vec![0; llds.rows];
            self.lld_sum = vec![0.0; llds.rows];
            self.lld_sumsq = vec![0.0; llds.rows];
        }
        for (r, row) in llds.data.chunks_exact(llds.frames.max(1)).enumerate() {
            for &x in row.iter().filter(|x| x.is_finite()) {
                self.lld_n[r] += 1;
                self.lld_sum[r] += x as f64;
                self.lld_sumsq[r] += x as f64 * x as f64;
            }
        }
    }

    /// Frames of prosody descriptors seen (the most of any row).
    pub fn lld_frames(&self) -> usize {
        self.lld_n.iter().copied().max().unwrap_or(0) as usize
    }

    /// Z-scores each descriptor row by this profile's mean and standard deviation of it
    /// (by the matrix's own where the profile has fewer than two frames of that row),
    /// clamped to ±10; NaN (not applicable) stays NaN.
    pub fn normalise_llds(&self, mut llds: FeatureMatrix) -> FeatureMatrix {
        let frames = llds.frames.max(1);
        for (r, row) in llds.data.chunks_exact_mut(frames).enumerate() {
            let stats = |n: f64, s: f64, q: f64| {
                let m = s / n;
                let sd = (q / n - m * m).max(0.0).sqrt();
                (m, sd.max(1e-6 + 0.01 * m.abs()))
            };
            let (m, sd) = match self.lld_n.get(r) {
                Some(&n) if n >= 2 => stats(n as f64, self.lld_sum[r], self.lld_sumsq[r]),
                _ => {
                    let v: Vec<f64> = row
                        .iter()
                        .filter(|x| x.is_finite())
                        .map(|&x| x as f64)
                        .collect();
                    let s: f64 = v.iter().sum();
                    let q: f64 = v.iter().map(|x| x * x).sum();
                    stats(v.len().max(1) as f64, s, q)
                }
            };
            for x in row.iter_mut().filter(|x| x.is_finite()) {
                *x = (((*x as f64 - m) / sd) as f32).clamp(-10.0, 10.0);
            }
        }
        llds
    }

    /// Per-band mean and standard deviation (at least 1 dB).
    pub fn mean_std(&self) -> (Vec<f32>, Vec<f32>) {
        let n = self.frames.max(1) as f64;
        self.sum
            .iter()
            .zip(&self.sumsq)
            .map(|(s, q)| {
                let m = s / n;
                let var = (q / n - m * m).max(0.0);
                (m as f32, var.sqrt().max(PROFILE_MIN_STD_DB) as f32)
            })
            .unzip()
    }

    /// Z-scores each band of `m` (dB mel) by this profile.
    fn normalise(&self, m: &mut FeatureMatrix) {
        let (mean, std) = self.mean_std();
        for (r, row) in m.data.chunks_exact_mut(m.frames.max(1)).enumerate() {
            let inv = 1.0 / std[r];
            row.iter_mut().for_each(|x| *x = (*x - mean[r]) * inv);
        }
    }
}

/// Prosody descriptor rows: the waveform's ([`WAVE_LLDS`]) then the spectrogram's
/// ([`MEL_LLDS`]).
pub const N_LLDS: usize = WAVE_LLDS.len() + MEL_LLDS.len();
/// Per descriptor: mean, standard deviation, 20th, 50th and 80th percentile.
const STATS_PER_LLD: usize = 5;
/// Functionals of a window: five statistics of each descriptor, then voiced fraction,
/// voiced segments per second, mean voiced and unvoiced segment length (s), loudness
/// peaks per second.
pub const N_FUNCTIONALS: usize = N_LLDS * STATS_PER_LLD + 5;

/// Where the functionals row holds, after the functionals, how much speech the profile
/// it was normalised by holds: at `PROFILE_FRAMES_AT` the profile's descriptor frames
/// ([`SpeakerProfile::lld_frames`], 0 without a profile), at `PROFILE_FRAMES_AT + 1` the
/// window's own. No model reads them as features; an ensemble weighs a member whose
/// z-scores mean little against a profile of the window alone by them
/// ([`crate::model::Member::profile_ramp`]).
pub const PROFILE_FRAMES_AT: usize = N_FUNCTIONALS;
/// Values a prosody spec's extra row holds: the functionals and the two profile counts.
pub const FUNCTIONALS_ROW_VALUES: usize = N_FUNCTIONALS + 2;

/// An encoder spec's model input: one row of the window's pooled vector `llds` (rows of
/// one frame), the same z-scored by `profile` (by the profile's statistics once it holds
/// two windows; zeros before), then how many windows the profile and the window hold.
pub fn encoder_row(
    llds: Option<FeatureMatrix>,
    profile: &SpeakerProfile,
    blocks: usize,
) -> FeatureMatrix {
    let d = crate::encoder::pooled_len(blocks);
    let mut data = vec![0.0f32; 2 * d + 2];
    if let Some(v) = llds.filter(|v| v.rows == d && v.frames == 1) {
        data[..d].copy_from_slice(&v.data);
        let z = profile.normalise_llds(v);
        data[d..2 * d].copy_from_slice(&z.data);
        data[2 * d + 1] = 1.0;
    }
    data[2 * d] = profile.lld_frames() as f32;
    FeatureMatrix {
        rows: 1,
        frames: 2 * d + 2,
        data,
    }
}

/// Frames where any descriptor row of `llds` applies (the most of any row).
fn lld_frames_of(llds: &FeatureMatrix) -> usize {
    llds.data
        .chunks_exact(llds.frames.max(1))
        .map(|row| row.iter().filter(|x| x.is_finite()).count())
        .max()
        .unwrap_or(0)
}

/// The functionals of a window's speaker-normalised descriptors (`N_LLDS` rows, NaN where
/// a descriptor does not apply); statistics of a descriptor that never applies are 0
/// (the speaker's mean).
pub fn functionals(z: &FeatureMatrix, frame_seconds: f32) -> Vec<f32> {
    let frames = z.frames.max(1);
    let mut out = Vec::with_capacity(N_FUNCTIONALS);
    for row in z.data.chunks_exact(frames).take(N_LLDS) {
        let mut v: Vec<f32> = row.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            out.extend([0.0; STATS_PER_LLD]);
            continue;
        }
        v.sort_by(f32::total_cmp);
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let sd = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n).sqrt();
        let pct = |q: f32| v[((v.len() - 1) as f32 * q).round() as usize];
        out.extend([mean, sd, pct(0.2), pct(0.5), pct(0.8)]);
    }
    let row = |r: usize| &z.data[r * frames..(r + 1) * frames];
    let voiced: Vec<bool> = row(0).iter().map(|x| x.is_finite()).collect();
    let loud = row(WAVE_LLDS.len());
    let speech = loud.iter().filter(|x| x.is_finite()).count();
    let n_voiced = voiced.iter().filter(|&&v| v).count();
    // Runs of voiced frames, and the unvoiced gaps between them.
    let mut runs = Vec::new();
    let mut gaps = Vec::new();
    let mut t = 0;
    while t < frames {
        let v = voiced[t];
        let start = t;
        while t < frames && voiced[t] == v {
            t += 1;
        }
        if v {
            runs.push(t - start);
        } else if start > 0 && t < frames {
            gaps.push(t - start);
        }
    }
    let mean_s = |r: &[usize]| {
        if r.is_empty() {
            0.0
        } else {
            r.iter().sum::<usize>() as f32 / r.len() as f32 * frame_seconds
        }
    };
    let secs = frames as f32 * frame_seconds;
    let peaks = (1..frames.saturating_sub(1))
        .filter(|&t| {
            // A peak: above the speaker's mean, higher than the frame before and no lower
            // than the one after (a neighbour without a value does not count against it).
            use std::cmp::Ordering::{Equal, Greater};
            loud[t].is_finite()
                && loud[t] > 0.0
                && !matches!(loud[t - 1].partial_cmp(&loud[t]), Some(Greater | Equal))
                && loud[t + 1].partial_cmp(&loud[t]) != Some(Greater)
        })
        .count();
    out.extend([
        if speech > 0 {
            n_voiced as f32 / speech as f32
        } else {
            0.0
        },
        runs.len() as f32 / secs,
        mean_s(&runs),
        mean_s(&gaps),
        peaks as f32 / secs,
    ]);
    debug_assert_eq!(out.len(), N_FUNCTIONALS);
    out
}

/// The largest sample rate a feature spec may ask for (Hz).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// The largest FFT a feature spec may ask for.
pub const MAX_N_FFT: usize = 32_768;
/// The most mel bands a feature spec may ask for.
pub const MAX_N_MELS: usize = 512;
/// The most values (rows x frames) one window of model input may hold (16 MiB of f32).
pub const MAX_WINDOW_VALUES: usize = 1 << 22;

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
    /// Also compute prosody and voice quality ([`crate::dsp::prosody`]): the model input
    /// then carries one more row after the spectrogram, the window's
    /// [`N_FUNCTIONALS`] functionals of the speaker-normalised descriptors.
    #[serde(default)]
    pub prosody: bool,
    /// A pretrained encoder ([`crate::encoder`]) reads the window's dB mel (which must be
    /// the encoder's front end, [`crate::encoder::whisper_spec`]); the model input is then
    /// one row: the window's pooled encoder vector as it is, the same z-scored by the
    /// speaker profile, and the profile's and the window's counts of windows. Such a spec
    /// keeps a speaker profile only with `normalisation: speaker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderSpec>,
}

/// Which pretrained encoder a [`FeatureSpec`] runs, and how far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// "whisper_base": the built-in weights of `weights/whisper_base`.
    pub name: String,
    /// Blocks run (1 to the built-in encoder's 4).
    pub blocks: usize,
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
            prosody: false,
            encoder: None,
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

    /// Rows of a model input: [`n_rows`](Self::n_rows), plus the functionals row of a
    /// prosody spec.
    pub fn input_rows(&self) -> usize {
        if self.encoder.is_some() {
            return 1;
        }
        self.n_rows() + usize::from(self.prosody)
    }

    /// Values of an encoder spec's one input row: the pooled vector, the same z-scored by
    /// the speaker profile, then the profile's and the window's counts of windows
    /// ([`crate::encoder::pooled_len`] * 2 + 2); 0 without an encoder.
    pub fn encoder_input_len(&self) -> usize {
        self.encoder
            .as_ref()
            .map_or(0, |e| 2 * crate::encoder::pooled_len(e.blocks) + 2)
    }

    /// Whether models of this spec need a [`SpeakerProfile`] (speaker normalisation of the
    /// spectrogram or of the prosody descriptors).
    pub fn wants_profile(&self) -> bool {
        self.normalisation == Normalisation::Speaker || self.prosody
    }

    /// Seconds between frames.
    pub fn frame_seconds(&self) -> f32 {
        self.hop_length as f32 / self.sample_rate as f32
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
        if let Some(e) = &self.encoder {
            if e.name != "whisper_base" {
                return Err(Error::param(
                    "encoder",
                    &e.name,
                    "must be whisper_base, the built-in encoder",
                ));
            }
            if !(1..=crate::encoder::BUILTIN_BLOCKS).contains(&e.blocks) {
                return Err(Error::param(
                    "encoder blocks",
                    e.blocks,
                    format!(
                        "must be 1 to {}, the blocks built in",
                        crate::encoder::BUILTIN_BLOCKS
                    ),
                ));
            }
            let mut front = self.clone();
            front.encoder = None;
            // An encoder spec's normalisation says whether its head reads the speaker
            // profile (Speaker) or not (None).
            if front.normalisation == Normalisation::Speaker {
                front.normalisation = Normalisation::None;
            }
            if front != crate::encoder::whisper_spec(self.window_seconds) {
                return Err(Error::param(
                    "features",
                    "(not the encoder's front end)",
                    "a spec with an encoder must have the encoder's front end: 16 kHz, n_fft 400, hop 160, 80 bands 0-8000 Hz, dB, no normalisation, no prosody",
                ));
            }
        }
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
        // Upper bounds keep what a model card (a file) can make emoscope allocate small:
        // the mel filterbank is n_mels x (n_fft/2 + 1) and a window rows x frames.
        if self.sample_rate > MAX_SAMPLE_RATE {
            return Err(Error::param(
                "sample_rate",
                self.sample_rate,
                format!("must be at most {MAX_SAMPLE_RATE} Hz"),
            ));
        }
        if self.n_fft > MAX_N_FFT {
            return Err(Error::param(
                "n_fft",
                self.n_fft,
                format!("must be at most {MAX_N_FFT}"),
            ));
        }
        if self.n_mels > MAX_N_MELS {
            return Err(Error::param(
                "n_mels",
                self.n_mels,
                format!("must be at most {MAX_N_MELS}"),
            ));
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
        if self.input_rows() * self.window_frames() > MAX_WINDOW_VALUES {
            return Err(Error::param(
                "window_seconds",
                self.window_seconds,
                format!(
                    "gives a window of {} x {} features, more than the {MAX_WINDOW_VALUES} emoscope accepts; use a shorter window or a larger hop_length",
                    self.input_rows(),
                    self.window_frames()
                ),
            ));
        }
        if self.prosody && self.window_frames() < FUNCTIONALS_ROW_VALUES {
            return Err(Error::param(
                "window_seconds",
                self.window_seconds,
                format!(
                    "gives {} frames, fewer than the {FUNCTIONALS_ROW_VALUES} values (prosody functionals and profile size) a row holds",
                    self.window_frames()
                ),
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
    /// Prosody specs: the waveform analyser and the mel band centres.
    prosody: Option<(ProsodyAnalyser, Vec<f32>)>,
    /// Encoder specs: the built-in encoder and the blocks it runs.
    encoder: Option<(&'static crate::encoder::Encoder, usize)>,
}

/// Frames handed to one parallel task (a whole number of tiles).
const FRAMES_PER_TASK: usize = 16 * LANES;

/// Samples the extractor reads block by block: a signal in memory, or a PCM WAV file read
/// in place, so a long file never has to be decoded into memory whole.
pub trait SampleSource: Sync {
    /// Number of samples.
    fn n_samples(&self) -> usize;
    /// Fills `out` with samples `start .. start + out.len()` (always within the signal);
    /// `bytes` is scratch space a file reader may use.
    fn read_into(&self, start: usize, out: &mut [f32], bytes: &mut Vec<u8>) -> Result<()>;
}

impl SampleSource for [f32] {
    fn n_samples(&self) -> usize {
        self.len()
    }

    fn read_into(&self, start: usize, out: &mut [f32], _: &mut Vec<u8>) -> Result<()> {
        out.copy_from_slice(&self[start..start + out.len()]);
        Ok(())
    }
}

impl SampleSource for crate::audio::PcmWav {
    fn n_samples(&self) -> usize {
        self.frames()
    }

    fn read_into(&self, start: usize, out: &mut [f32], bytes: &mut Vec<u8>) -> Result<()> {
        self.read_mono(start, out, bytes)
    }
}

/// Mel band values of every frame in tiles of [`LANES`] frames (`[tile][mel][lane]`), the
/// last tile padded with silent frames: power, or dB before `top_db` is applied.
struct MelTiles {
    frames: usize,
    data: Vec<f32>,
    /// The largest value.
    max: f32,
}

/// One task's working memory.
struct BlockScratch {
    samples: Vec<f32>,
    bytes: Vec<u8>,
    stft: TileScratch,
    power: Vec<f32>,
}

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
        let prosody = spec.prosody.then(|| {
            (
                ProsodyAnalyser::new(spec.sample_rate, spec.hop_length),
                prosody::band_centres(spec.n_mels, spec.fmin, spec.fmax_hz()),
            )
        });
        let encoder = match &spec.encoder {
            Some(e) => Some((crate::encoder::Encoder::builtin()?, e.blocks)),
            None => None,
        };
        Ok(Self {
            spec: spec.clone(),
            stft,
            mel,
            dct,
            prosody,
            encoder,
        })
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Mel band power of every frame of `src` (in dB, `top_db` not yet applied, when `db`):
    /// blocks of frames in parallel on the rayon pool, each reading just the samples its
    /// frames cover (zero outside the signal, as librosa's `center=True` padding).
    fn mel_tiles<S: SampleSource + ?Sized>(&self, src: &S, db: bool) -> Result<MelTiles> {
        let (n_fft, hop, n_mels) = (self.spec.n_fft, self.spec.hop_length, self.spec.n_mels);
        let len = src.n_samples();
        let frames = n_frames(len, hop);
        let mut data = vec![0.0f32; frames.div_ceil(LANES) * LANES * n_mels];
        let silence = vec![0.0f32; n_fft];
        let scratch = || BlockScratch {
            samples: Vec::new(),
            bytes: Vec::new(),
            stft: self.stft.tile_scratch(),
            power: vec![0.0; self.stft.n_bins() * LANES],
        };
        let maxima = data
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .map_init(scratch, |b, (task, block)| {
                let t0 = task * FRAMES_PER_TASK;
                let nf = (frames - t0).min(FRAMES_PER_TASK);
                // Samples start .. start + span cover frames t0 .. t0 + nf.
                let start = (t0 * hop) as isize - (n_fft / 2) as isize;
                let span = (nf - 1) * hop + n_fft;
                let lo = start.max(0) as usize;
                let hi = (start + span as isize).min(len as isize) as usize;
                let (before, after) = ((lo as isize - start) as usize, hi - lo);
                b.samples.resize(span, 0.0);
                b.samples[..before].fill(0.0);
                b.samples[before + after..].fill(0.0);
                src.read_into(lo, &mut b.samples[before..before + after], &mut b.bytes)?;
                let max = vectorised(
                    #[inline(always)]
                    || {
                        for (g, out) in block.chunks_exact_mut(n_mels * LANES).enumerate() {
                            // Frames past the end (the last tile's padding) are silence.
                            let frame = |t: usize| match t < nf {
                                true => &b.samples[t * hop..t * hop + n_fft],
                                false => &silence[..],
                            };
                            let frames = std::array::from_fn(|lane| frame(g * LANES + lane));
                            self.stft.power_tile(frames, &mut b.stft, &mut b.power);
                            self.mel.apply_tile(&b.power, out);
                        }
                        if db {
                            block
                                .iter_mut()
                                .for_each(|x| *x = 10.0 * log10(x.max(AMIN)));
                        }
                        block.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))
                    },
                );
                Ok(max)
            })
            .collect::<Result<Vec<f32>>>()?;
        let max = maxima.into_iter().fold(f32::NEG_INFINITY, f32::max);
        Ok(MelTiles { frames, data, max })
    }

    /// Checks that `src` is long enough and returns [`mel_tiles`](Self::mel_tiles).
    fn checked_mel_tiles<S: SampleSource + ?Sized>(
        &self,
        what: &str,
        src: &S,
        db: bool,
    ) -> Result<MelTiles> {
        let len = src.n_samples();
        if len < self.spec.n_fft {
            return Err(Error::SignalTooShort {
                what: what.into(),
                len,
                n_fft: self.spec.n_fft,
            });
        }
        self.mel_tiles(src, db)
    }

    /// The `top_db` floor of dB tiles: everything below `max - top_db` is raised to it.
    fn floor_of(tiles: &MelTiles) -> f32 {
        tiles.max - TOP_DB
    }

    /// MFCCs of `frames` frames of tiled dB mel bands (`[tile][mel][lane]`), the bands
    /// first raised to `floor` in place, written straight into the row-major
    /// `n_mfcc x frames` matrix: each parallel task owns its frames' piece of every row.
    fn mfcc_rows(&self, db: &mut [f32], frames: usize, floor: f32) -> FeatureMatrix {
        let dct = self.dct.as_ref().expect("built for mfcc");
        let (n_mels, n_mfcc) = (self.spec.n_mels, dct.n_out());
        let mut data = vec![0.0f32; n_mfcc * frames];
        let mut pieces: Vec<Vec<&mut [f32]>> = (0..frames.div_ceil(FRAMES_PER_TASK))
            .map(|_| Vec::with_capacity(n_mfcc))
            .collect();
        for row in data.chunks_mut(frames.max(1)) {
            for (rows, piece) in pieces.iter_mut().zip(row.chunks_mut(FRAMES_PER_TASK)) {
                rows.push(piece);
            }
        }
        pieces
            .into_par_iter()
            .zip(db.par_chunks_mut(n_mels * FRAMES_PER_TASK))
            .for_each(|(mut rows, m)| {
                let mut out = vec![0.0f32; n_mfcc * LANES];
                vectorised(
                    #[inline(always)]
                    || {
                        m.iter_mut().for_each(|x| *x = x.max(floor));
                        for (g, mt) in m.chunks_exact(n_mels * LANES).enumerate() {
                            dct.apply_tile(mt, &mut out);
                            for (row, coef) in rows.iter_mut().zip(out.chunks_exact(LANES)) {
                                let dst = &mut row[g * LANES..];
                                let n = dst.len().min(LANES);
                                dst[..n].copy_from_slice(&coef[..n]);
                            }
                        }
                    },
                )
            });
        FeatureMatrix {
            rows: n_mfcc,
            frames,
            data,
        }
    }

    /// Computes the feature matrix of `signal` (samples at `spec.sample_rate`), before
    /// normalisation. `what` names the signal in errors.
    pub fn compute(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        crate::audio::check_finite(what, signal)?;
        self.compute_from(what, signal)
    }

    /// As [`compute`](Self::compute), reading the samples block by block from `src`
    /// (e.g. a [`PcmWav`](crate::audio::PcmWav) at the spec's rate).
    pub fn compute_from<S: SampleSource + ?Sized>(
        &self,
        what: &str,
        src: &S,
    ) -> Result<FeatureMatrix> {
        let db = self.spec.kind == FeatureKind::Mfcc || self.spec.db;
        let mut tiles = self.checked_mel_tiles(what, src, db)?;
        let floor = Self::floor_of(&tiles);
        Ok(match self.spec.kind {
            FeatureKind::Mel => untile(
                &tiles.data,
                self.spec.n_mels,
                tiles.frames,
                db.then_some(floor),
            ),
            FeatureKind::Mfcc => self.mfcc_rows(&mut tiles.data, tiles.frames, floor),
        })
    }

    /// The dB mel spectrogram (`n_mels x frames`, top_db applied), whatever the spec's kind:
    /// the stored form from which [`finish`](Self::finish) makes a model's input.
    pub fn db_mel(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        crate::audio::check_finite(what, signal)?;
        let tiles = self.checked_mel_tiles(what, signal, true)?;
        let floor = Self::floor_of(&tiles);
        Ok(untile(
            &tiles.data,
            self.spec.n_mels,
            tiles.frames,
            Some(floor),
        ))
    }

    /// Turns a window of dB mel (as from [`db_mel`](Self::db_mel), possibly cropped,
    /// padded or augmented) into the model's input: top_db re-applied against the window's
    /// own maximum, DCT for MFCC specs, then the spec's normalisation. Training, `analyze`
    /// and the live monitor all end here. `speaker` is the profile
    /// [`Normalisation::Speaker`] uses (the window's own when `None` or empty; other
    /// normalisations ignore it); it is applied to the bands, before any DCT.
    ///
    /// A prosody spec appends one row: the [`functionals`] of the window's descriptors,
    /// those of the waveform from `voice` (as from [`voice_llds`](Self::voice_llds), cut
    /// like `db_mel`; `None` counts as unvoiced throughout) and those of the spectrogram
    /// from `db_mel`, each z-scored by `speaker`'s statistics of it (the window's own where
    /// the profile has none), in the first [`N_FUNCTIONALS`] columns, then how much speech
    /// the profile and the window hold ([`PROFILE_FRAMES_AT`]), zeros after.
    pub fn finish(
        &self,
        db_mel: FeatureMatrix,
        voice: Option<&FeatureMatrix>,
        speaker: Option<&SpeakerProfile>,
    ) -> FeatureMatrix {
        // The descriptors see the spectrogram as the network does: floored against its
        // own maximum (flooring again below changes nothing).
        let db_mel = if self.prosody.is_some() {
            floored(db_mel)
        } else {
            db_mel
        };
        let llds = self.llds(&db_mel, voice);
        self.finish_with_llds(db_mel, llds, speaker)
    }

    /// [`finish`](Self::finish) with the window's descriptors already computed by
    /// [`llds`](Self::llds) from `db_mel` (floored against its own maximum, as a window's
    /// dB mel from [`window_db_mel`](Self::window_db_mel) is), so a caller that also adds
    /// them to a profile computes them once.
    pub fn finish_with_llds(
        &self,
        db_mel: FeatureMatrix,
        llds: Option<FeatureMatrix>,
        speaker: Option<&SpeakerProfile>,
    ) -> FeatureMatrix {
        let empty = SpeakerProfile::default();
        if let Some((_, blocks)) = self.encoder {
            return encoder_row(llds, speaker.unwrap_or(&empty), blocks);
        }
        // A profile with no frame of a descriptor falls back, row by row, to the window's
        // own statistics (SpeakerProfile::normalise_llds).
        let extra = llds.map(|l| {
            let own = lld_frames_of(&l) as f32;
            let profile = speaker.unwrap_or(&empty);
            let mut f = functionals(&profile.normalise_llds(l), self.spec.frame_seconds());
            f.extend([profile.lld_frames() as f32, own]);
            f
        });
        let mut m = self.finish_spectrogram(db_mel, speaker);
        if let Some(f) = extra {
            let start = m.data.len();
            m.data.resize(start + m.frames, 0.0);
            m.data[start..start + f.len()].copy_from_slice(&f);
            m.rows += 1;
        }
        m
    }

    /// The prosody descriptors ([`N_LLDS`] rows) of a window of a prosody spec (`None`
    /// otherwise): the waveform's from `voice` (NaN where absent) and the spectrogram's
    /// from `db_mel`.
    pub fn llds(
        &self,
        db_mel: &FeatureMatrix,
        voice: Option<&FeatureMatrix>,
    ) -> Option<FeatureMatrix> {
        if let Some((enc, blocks)) = self.encoder {
            // An encoder spec's "descriptors": the window's pooled encoder vector, one frame.
            // The encoder fails only on input it cannot take (checked by log_mel); then the
            // window counts as one the profile never heard and reads as all zeros.
            return match enc.pooled_upto(db_mel, blocks) {
                Ok(v) => Some(FeatureMatrix {
                    rows: v.len(),
                    frames: 1,
                    data: v,
                }),
                Err(e) => {
                    eprintln!("warning: encoder: {e}");
                    None
                }
            };
        }
        let (_, centres) = self.prosody.as_ref()?;
        let frames = db_mel.frames;
        let mut data = vec![f32::NAN; N_LLDS * frames];
        if let Some(v) = voice.filter(|v| v.frames == frames && v.rows == WAVE_LLDS.len()) {
            data[..v.data.len()].copy_from_slice(&v.data);
        }
        let spectral = prosody::spectral_llds(&db_mel.data, frames, centres);
        data[WAVE_LLDS.len() * frames..].copy_from_slice(&spectral);
        Some(FeatureMatrix {
            rows: N_LLDS,
            frames,
            data,
        })
    }

    /// The waveform's prosody descriptors ([`WAVE_LLDS`] rows, frames as
    /// [`db_mel`](Self::db_mel)) of `signal`, or `None` for a spec without prosody.
    pub fn voice_llds(&self, signal: &[f32]) -> Option<FeatureMatrix> {
        let (a, _) = self.prosody.as_ref()?;
        let (rows, data) = a.analyse(signal);
        Some(FeatureMatrix {
            rows,
            frames: data.len() / rows,
            data,
        })
    }

    /// [`voice_llds`](Self::voice_llds) of exactly one window (padded or cut as
    /// [`window_db_mel`](Self::window_db_mel)).
    pub fn window_voice(&self, signal: &[f32]) -> Option<FeatureMatrix> {
        self.prosody.as_ref()?;
        self.voice_llds(&self.one_window(signal))
    }

    /// `signal` as exactly one window: zero-padded at the end, or cut.
    fn one_window<'a>(&self, signal: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        let n = self.spec.window_samples();
        if signal.len() == n {
            std::borrow::Cow::Borrowed(signal)
        } else {
            let mut w = signal[..signal.len().min(n)].to_vec();
            w.resize(n, 0.0);
            std::borrow::Cow::Owned(w)
        }
    }

    fn finish_spectrogram(
        &self,
        mut db_mel: FeatureMatrix,
        speaker: Option<&SpeakerProfile>,
    ) -> FeatureMatrix {
        let max = db_mel.data.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let floor = max - TOP_DB;
        if self.spec.normalisation == Normalisation::Speaker {
            db_mel.data.iter_mut().for_each(|x| *x = x.max(floor));
            match speaker.filter(|p| p.frames() > 0) {
                Some(p) => p.normalise(&mut db_mel),
                None => SpeakerProfile::of(&db_mel).normalise(&mut db_mel),
            }
            return match self.spec.kind {
                FeatureKind::Mfcc => {
                    self.mfcc_rows(&mut tile(&db_mel), db_mel.frames, f32::NEG_INFINITY)
                }
                FeatureKind::Mel => db_mel,
            };
        }
        let mut m = match self.spec.kind {
            // The floor is applied on the way into the DCT.
            FeatureKind::Mfcc => self.mfcc_rows(&mut tile(&db_mel), db_mel.frames, floor),
            FeatureKind::Mel => {
                db_mel.data.iter_mut().for_each(|x| *x = x.max(floor));
                db_mel
            }
        };
        normalise(&mut m, self.spec.normalisation);
        m
    }

    /// The dB mel of exactly one window of samples (shorter input is zero-padded at the
    /// end to the spec's window length, longer input is cut).
    pub fn window_db_mel(&self, what: &str, signal: &[f32]) -> Result<FeatureMatrix> {
        self.db_mel(what, &self.one_window(signal))
    }

    /// The model input for exactly one window of samples, normalised by `speaker` where
    /// the spec asks for it (see [`finish`](Self::finish)).
    pub fn model_input(
        &self,
        what: &str,
        signal: &[f32],
        speaker: Option<&SpeakerProfile>,
    ) -> Result<FeatureMatrix> {
        let db = self.window_db_mel(what, signal)?;
        Ok(self.finish(db, self.window_voice(signal).as_ref(), speaker))
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

/// `db_mel` with the top_db floor re-applied against its own maximum.
fn floored(mut db_mel: FeatureMatrix) -> FeatureMatrix {
    let max = db_mel.data.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    db_mel
        .data
        .iter_mut()
        .for_each(|x| *x = x.max(max - TOP_DB));
    db_mel
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
        // Needs a profile: applied to the bands in `FeatureExtractor::finish`.
        Normalisation::Speaker => {}
    }
}

fn scale_to_unit_rms(data: &mut [f32]) {
    let n = data.len().max(1) as f32;
    let var = data.iter().map(|x| x * x).sum::<f32>() / n;
    let inv = 1.0 / (var.sqrt() + 1e-3);
    data.iter_mut().for_each(|x| *x *= inv);
}

/// A row-major matrix in tiles of [`LANES`] frames (`[tile][row][lane]`), the last tile
/// padded with zeros.
fn tile(m: &FeatureMatrix) -> Vec<f32> {
    let tiles = m.frames.div_ceil(LANES);
    let mut out = vec![0.0f32; tiles * LANES * m.rows];
    for (r, row) in m.data.chunks_exact(m.frames.max(1)).enumerate() {
        for (g, chunk) in row.chunks(LANES).enumerate() {
            let at = (g * m.rows + r) * LANES;
            out[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
    out
}

/// The row-major `rows x frames` matrix of tiled data (`[tile][row][lane]`), raised to
/// `floor` where one is given.
fn untile(tiled: &[f32], rows: usize, frames: usize, floor: Option<f32>) -> FeatureMatrix {
    let mut data = vec![0.0f32; rows * frames];
    if frames > 0 {
        data.par_chunks_mut(frames)
            .enumerate()
            .for_each(|(r, row)| {
                for (g, chunk) in row.chunks_mut(LANES).enumerate() {
                    let at = (g * rows + r) * LANES;
                    chunk.copy_from_slice(&tiled[at..at + chunk.len()]);
                }
                if let Some(floor) = floor {
                    row.iter_mut().for_each(|x| *x = x.max(floor));
                }
            });
    }
    FeatureMatrix { rows, frames, data }
}

#[cfg(test)]
mod speaker_tests {
    use super::*;

    /// `frames` frames of a voice over 4 bands: band r at `level - 6 r` dB, with frame f
    /// adding `swing * (f % 3)` dB.
    fn voice(level: f32, swing: f32, frames: usize) -> FeatureMatrix {
        let rows = 4;
        let mut data = vec![0.0; rows * frames];
        for r in 0..rows {
            for f in 0..frames {
                data[r * frames + f] = level - 6.0 * r as f32 + swing * (f % 3) as f32;
            }
        }
        FeatureMatrix { rows, frames, data }
    }

    fn spec(normalisation: Normalisation) -> FeatureExtractor {
        FeatureExtractor::new(&FeatureSpec {
            kind: FeatureKind::Mel,
            n_mels: 4,
            normalisation,
            ..FeatureSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn a_profile_counts_speech_frames_only() {
        // 6 voiced frames, then 4 frames 60 dB down (silence between words).
        let mut m = voice(-20.0, 3.0, 10);
        for r in 0..4 {
            for f in 6..10 {
                m.data[r * 10 + f] = -80.0;
            }
        }
        let p = SpeakerProfile::of(&m);
        assert_eq!(p.frames(), 6);
        let (mean, std) = p.mean_std();
        // Frames 0..6 swing by 0, 3, 6 dB twice: mean +3 dB, std sqrt(6) dB.
        for r in 0..4 {
            assert!(
                (mean[r] - (-20.0 - 6.0 * r as f32 + 3.0)).abs() < 1e-4,
                "{mean:?}"
            );
            assert!((std[r] - 6f32.sqrt()).abs() < 1e-4, "{std:?}");
        }
    }

    #[test]
    fn speaker_normalisation_keeps_a_louder_moment_louder() {
        let ex = spec(Normalisation::Speaker);
        let mut speaker = SpeakerProfile::default();
        for _ in 0..5 {
            speaker.add(&voice(-30.0, 3.0, 12));
        }
        let calm = ex.finish(voice(-30.0, 3.0, 12), None, Some(&speaker));
        let loud = ex.finish(voice(-24.0, 3.0, 12), None, Some(&speaker));
        // Against the speaker's profile a 6 dB louder window sits 6 dB / std higher in
        // every band (std sqrt(6) dB); the calm window averages 0.
        for (c, l) in calm.data.iter().zip(&loud.data) {
            assert!((l - c - 6.0 / 6f32.sqrt()).abs() < 1e-4, "{c} {l}");
        }
        assert!(calm.data.iter().sum::<f32>().abs() < 1e-3);
        // Per-window (utterance) normalisation removes the same difference.
        let ex = spec(Normalisation::Utterance);
        let (calm, loud) = (
            ex.finish(voice(-30.0, 3.0, 12), None, None),
            ex.finish(voice(-24.0, 3.0, 12), None, None),
        );
        assert_eq!(calm.data, loud.data);
    }

    #[test]
    fn without_a_profile_a_window_is_normalised_by_its_own() {
        let ex = spec(Normalisation::Speaker);
        let quiet = ex.finish(voice(-40.0, 3.0, 12), None, None);
        let empty = SpeakerProfile::default();
        let loud = ex.finish(voice(-10.0, 3.0, 12), None, Some(&empty));
        // The microphone's level cancels; each band has mean 0 and std 1.
        for (a, b) in quiet.data.iter().zip(&loud.data) {
            assert!((a - b).abs() < 1e-4);
        }
        for row in quiet.data.chunks(12) {
            let m = row.iter().sum::<f32>() / 12.0;
            let v = row.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / 12.0;
            assert!(m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3, "{m} {v}");
        }
    }
}
