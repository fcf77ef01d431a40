//! `FeatureExtractor`: applies a `FeatureSpec` to samples (STFT, mel, MFCC, prosody, the
//! encoder's pooled outputs) in tiles over frames, and the matrix it returns.

use rayon::prelude::*;

use crate::dsp::prosody::{self, ProsodyAnalyser, WAVE_LLDS};
use crate::dsp::{
    log10, n_frames, vectorised, Dct2, MelFilterbank, Stft, TileScratch, AMIN, LANES, TOP_DB,
};
use crate::{Error, Result};

use super::functionals::{encoder_row, functionals, lld_frames_of, N_LLDS};
use super::profile::SpeakerProfile;
use super::spec::{CalmGate, FeatureKind, FeatureSpec, Normalisation};

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
pub(super) const FRAMES_PER_TASK: usize = 16 * LANES;

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
pub(super) struct MelTiles {
    frames: usize,
    data: Vec<f32>,
    /// The largest value.
    max: f32,
}

/// One task's working memory.
pub(super) struct BlockScratch {
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
            // A reference (calm or enrolment) is removed from the vector; the window counts
            // in it only when admitted (an enrolment never admits the session's windows).
            let calm = (self.calm_gate().is_some() || self.spec.enrolment())
                .then(|| self.profile_admits(llds.as_ref()));
            return encoder_row(llds, speaker.unwrap_or(&empty), blocks, calm);
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

    /// The calm gate of an encoder spec that has one.
    pub fn calm_gate(&self) -> Option<&CalmGate> {
        self.spec.calm_gate()
    }

    /// Whether a speech window of these descriptors (as from [`llds`](Self::llds)) joins
    /// the speaker profile: always, but for a spec with a calm gate, whose profile holds
    /// only the windows the gate calls calm, and never for a spec whose profile is an
    /// enrolment (recorded before the session: [`crate::pipeline::enrol_window`]).
    pub fn profile_admits(&self, llds: Option<&FeatureMatrix>) -> bool {
        if self.spec.enrolment() {
            return false;
        }
        match (self.calm_gate(), llds) {
            (Some(g), Some(v)) => g.admits(&v.data),
            (Some(_), None) => false,
            (None, _) => true,
        }
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
            let level = self.spec.encoder.as_ref().and_then(|e| e.level_db);
            // An encoder spec's "descriptors": the window's pooled encoder vector, one frame.
            // The encoder fails only on input it cannot take (checked by log_mel); then the
            // window counts as one the profile never heard and reads as all zeros.
            return match enc.pooled_upto(db_mel, blocks, level) {
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
pub(super) fn floored(mut db_mel: FeatureMatrix) -> FeatureMatrix {
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

pub(super) fn scale_to_unit_rms(data: &mut [f32]) {
    let n = data.len().max(1) as f32;
    let var = data.iter().map(|x| x * x).sum::<f32>() / n;
    let inv = 1.0 / (var.sqrt() + 1e-3);
    data.iter_mut().for_each(|x| *x *= inv);
}

/// A row-major matrix in tiles of [`LANES`] frames (`[tile][row][lane]`), the last tile
/// padded with zeros.
pub(super) fn tile(m: &FeatureMatrix) -> Vec<f32> {
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
pub(super) fn untile(
    tiled: &[f32],
    rows: usize,
    frames: usize,
    floor: Option<f32>,
) -> FeatureMatrix {
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
