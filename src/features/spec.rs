//! `FeatureSpec`: the one description of how audio becomes a model's input (kind, rates,
//! window, normalisation, encoder), its validation and its bounds on what a card may ask
//! for.

use serde::{Deserialize, Serialize};

use crate::dsp::n_frames;
use crate::{Error, Result};

use super::functionals::FUNCTIONALS_ROW_VALUES;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// "whisper_base": the built-in weights of `weights/whisper_base`.
    pub name: String,
    /// Blocks run (1 to the built-in encoder's 4).
    pub blocks: usize,
    /// Set: the speaker profile is a *calm reference*, built only from the speech windows
    /// this gate calls neutral or calm, and the model input's second part is the vector
    /// minus the reference's mean instead of z-scores (see [`CalmGate`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calm_gate: Option<CalmGate>,
    /// Set: the speaker profile is an *enrolment*: the speaker's speech in a neutral voice,
    /// recorded before the session (`--enrol`, the window's Enrol button), and never the
    /// session's own windows; the model input's second part is the vector minus the
    /// enrolment's mean (zeros without one, when the head reads the vector alone). What a
    /// voice does all session long is then read against how it sounds at rest, however
    /// long the session stays in one emotion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enrolment: bool,
    /// Set: each window's dB mel is shifted so that its loudest value reads this many dB
    /// before Whisper's log-mel, so the microphone's gain, the speaker's distance and a
    /// corpus's recording level do not move the vector (the window's spectrum, and its
    /// loudness over time relative to its own peak, still do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_db: Option<f32>,
}

/// A logistic regression on one representation's time-mean of a window's pooled encoder
/// vector that says whether the window sounds neutral or calm (its logit above zero; a
/// fitted gate has its probability threshold folded into the bias). The speaker profile of a spec with a gate holds only the windows it admits, so
/// what a voice does all session long is read against how that voice sounds at rest, not
/// against the session's own average (which a session in one emotion drags along with it);
/// a session with no calm speech has no reference and is read window by window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalmGate {
    /// The representation read (0: block 0's input, k: block k's output); its time-mean
    /// is at `layer * 2 * WIDTH` of the pooled vector.
    pub layer: usize,
    /// One weight per value of the representation ([`crate::encoder::WIDTH`]).
    pub weight: Vec<f32>,
    pub bias: f32,
}

impl CalmGate {
    /// A gate that admits nothing (what an untrained calm head starts with).
    pub fn closed(layer: usize) -> Self {
        Self {
            layer,
            weight: vec![0.0; crate::encoder::WIDTH],
            bias: -1.0,
        }
    }

    /// The gate's logit for a pooled vector (`None` when the vector is too short).
    pub fn logit(&self, pooled: &[f32]) -> Option<f32> {
        let at = self.layer * 2 * crate::encoder::WIDTH;
        let x = pooled.get(at..at + self.weight.len())?;
        Some(self.bias + x.iter().zip(&self.weight).map(|(a, b)| a * b).sum::<f32>())
    }

    /// Whether the window of this pooled vector counts as calm speech.
    pub fn admits(&self, pooled: &[f32]) -> bool {
        self.logit(pooled).is_some_and(|l| l > 0.0)
    }

    fn validate(&self, blocks: usize) -> Result<()> {
        if self.layer > blocks {
            return Err(Error::param(
                "calm_gate layer",
                self.layer,
                format!("must be 0 to the encoder's {blocks} blocks"),
            ));
        }
        if self.weight.len() != crate::encoder::WIDTH {
            return Err(Error::param(
                "calm_gate weight",
                format!("{} values", self.weight.len()),
                format!(
                    "must hold {} values, one per encoder dimension",
                    crate::encoder::WIDTH
                ),
            ));
        }
        if !self.bias.is_finite() || self.weight.iter().any(|w| !w.is_finite()) {
            return Err(Error::param(
                "calm_gate",
                "(not finite)",
                "weights and bias must be finite numbers",
            ));
        }
        Ok(())
    }
}

pub(super) fn default_window() -> f32 {
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

    /// The calm gate of an encoder spec that has one.
    pub fn calm_gate(&self) -> Option<&CalmGate> {
        self.encoder.as_ref().and_then(|e| e.calm_gate.as_ref())
    }

    /// Whether the speaker profile of this spec is an enrolment (see
    /// [`EncoderSpec::enrolment`]).
    pub fn enrolment(&self) -> bool {
        self.encoder.as_ref().is_some_and(|e| e.enrolment)
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
            if let Some(l) = e.level_db {
                if !(l.is_finite() && (-60.0..=60.0).contains(&l)) {
                    return Err(Error::param(
                        "encoder level_db",
                        l,
                        "must be a level from -60 to 60 dB",
                    ));
                }
            }
            if e.enrolment {
                if e.calm_gate.is_some() {
                    return Err(Error::param(
                        "enrolment",
                        "true",
                        "a profile is an enrolment or a calm reference, not both: remove \"calm_gate\" or \"enrolment\"",
                    ));
                }
                if self.normalisation != Normalisation::Speaker {
                    return Err(Error::param(
                        "enrolment",
                        "true",
                        "an enrolment is a speaker profile: the features need \"normalisation\": \"speaker\"",
                    ));
                }
            }
            if let Some(g) = &e.calm_gate {
                g.validate(e.blocks)?;
                if self.normalisation != Normalisation::Speaker {
                    return Err(Error::param(
                        "calm_gate",
                        "(set)",
                        "a calm reference is a speaker profile: the features need \"normalisation\": \"speaker\"",
                    ));
                }
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
