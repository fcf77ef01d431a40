//! `SpeakerProfile`: a speaker's usual voice (per-band level and spread over their speech),
//! learnt from their clips or live, and how features are normalised by it.

use super::extractor::FeatureMatrix;

/// Frames within this many dB of the loudest frame (mean over bands) of what is added to
/// a [`SpeakerProfile`] count as speech.
pub(super) const PROFILE_SPEECH_DB: f32 = 30.0;

/// The smallest per-band standard deviation (dB) [`Normalisation::Speaker`] divides by.
pub(super) const PROFILE_MIN_STD_DB: f64 = 1.0;

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

/// A speaker's *enrolment*: their voice at rest, learnt from speech they recorded in a
/// neutral voice before the session (`--enrol FILE`, the window's Enrol button), which an
/// enrolment model (`"enrolment": true` in its features) reads every window against. It
/// never learns from the session itself.
#[derive(Debug, Clone, Default)]
pub struct Enrolment {
    /// The speech windows of the enrolment recordings.
    pub profile: SpeakerProfile,
    /// Seconds of audio those windows cover.
    pub seconds: f64,
    /// What it was learnt from (a file's path, "recorded enrolment"), one entry each.
    pub sources: Vec<String>,
}

/// Seconds of neutral speech an enrolment should hold: with 30 s the measured gain is
/// whole, with 10 s about half, with 3 s none (docs/recognition.md, "Enrolment").
pub const ENROL_SECONDS_ADVISED: f64 = 30.0;

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

    /// Subtracts from each descriptor row this profile's mean of it; a row the profile has
    /// no frame of becomes zeros (NaN, not applicable, stays NaN).
    pub fn centre_llds(&self, mut llds: FeatureMatrix) -> FeatureMatrix {
        let frames = llds.frames.max(1);
        for (r, row) in llds.data.chunks_exact_mut(frames).enumerate() {
            let mean = match self.lld_n.get(r) {
                Some(&n) if n >= 1 => Some((self.lld_sum[r] / n as f64) as f32),
                _ => None,
            };
            for x in row.iter_mut().filter(|x| x.is_finite()) {
                *x = mean.map_or(0.0, |m| *x - m);
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
    pub(super) fn normalise(&self, m: &mut FeatureMatrix) {
        let (mean, std) = self.mean_std();
        for (r, row) in m.data.chunks_exact_mut(m.frames.max(1)).enumerate() {
            let inv = 1.0 / std[r];
            row.iter_mut().for_each(|x| *x = (*x - mean[r]) * inv);
        }
    }
}

#[cfg(test)]
mod speaker_tests {
    use crate::features::*;

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
