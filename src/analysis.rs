//! Windowed classification of a whole recording: the 3 s windows every hop, their
//! probabilities and voice activity, and a whole-file summary. `analyze`, `eval` and the
//! live monitor cut windows and turn them into model input the same way.

use serde::Serialize;

use crate::features::{FeatureMatrix, SpeakerProfile};
use crate::labels::{argmax, LABELS, N_LABELS};
use crate::model::Classifier;
use crate::Result;

/// Frame offsets of the windows of `win` frames, every `hop` frames, covering `total`
/// frames; one window (padded) when the clip is shorter than a window.
pub fn window_starts(total: usize, win: usize, hop: usize) -> Vec<usize> {
    if total <= win {
        return vec![0];
    }
    let mut v: Vec<usize> = (0..=(total - win)).step_by(hop.max(1)).collect();
    if *v.last().unwrap() != total - win {
        v.push(total - win);
    }
    v
}

/// `len` frames of `m` starting at `start` (negative: padding in front), padded with
/// `m`'s floor (silence) where the clip has no frames.
pub fn place(m: &FeatureMatrix, start: isize, len: usize) -> FeatureMatrix {
    place_filled(m, start, len, m.min())
}

/// As [`place`], padding with `fill` (NaN for descriptors: "does not apply").
pub fn place_filled(m: &FeatureMatrix, start: isize, len: usize, fill: f32) -> FeatureMatrix {
    if start >= 0 {
        return m.crop(start as usize, len, fill);
    }
    let front = (-start) as usize;
    let inner = m.crop(0, len.saturating_sub(front), fill);
    let mut data = vec![fill; m.rows * len];
    for r in 0..m.rows {
        let n = inner.frames;
        data[r * len + front.min(len)..r * len + front.min(len) + n]
            .copy_from_slice(&inner.data[r * n..(r + 1) * n]);
    }
    FeatureMatrix {
        rows: m.rows,
        frames: len,
        data,
    }
}

/// Mean of probability rows.
pub fn mean_probs(rows: &[[f32; N_LABELS]]) -> [f32; N_LABELS] {
    let mut m = [0.0f32; N_LABELS];
    for r in rows {
        for (a, b) in m.iter_mut().zip(r) {
            *a += b / rows.len() as f32;
        }
    }
    m
}

/// One analysed window.
#[derive(Debug, Clone, Serialize)]
pub struct WindowResult {
    pub t_start: f64,
    pub t_end: f64,
    pub speech: bool,
    pub top: Option<&'static str>,
    pub probs: Vec<(&'static str, f32)>,
}

/// A whole recording's analysis.
#[derive(Debug, Clone, Serialize)]
pub struct FileAnalysis {
    pub file: String,
    pub duration: f64,
    pub windows: Vec<WindowResult>,
    /// Mean probabilities over the windows with speech; empty when no window has speech.
    pub summary: Vec<(&'static str, f32)>,
    /// Top label of `summary`; `None` (JSON `null`, "no speech" in tables) when no window
    /// has speech: a recording without speech names no emotion.
    pub summary_top: Option<&'static str>,
    pub speech_windows: usize,
}

fn labelled(p: &[f32; N_LABELS]) -> Vec<(&'static str, f32)> {
    LABELS.iter().copied().zip(p.iter().copied()).collect()
}

/// Analyses `samples` (at the model's rate) in windows every `hop_seconds`, cut and
/// featurised exactly as the live pipeline does ([`crate::pipeline::window_plan`]; a
/// speaker-normalised model's profile grows from the file's speech as it goes).
pub fn analyze_samples(
    clf: &Classifier,
    what: &str,
    samples: &[f32],
    hop_seconds: f32,
) -> Result<FileAnalysis> {
    analyze_samples_with(
        clf,
        what,
        samples,
        hop_seconds,
        &mut SpeakerProfile::default(),
        true,
    )
}

/// The windows every `hop_seconds` of `samples` (at the model's rate).
fn window_plan(clf: &Classifier, samples: &[f32], hop_seconds: f32) -> (Vec<usize>, usize) {
    let spec = &clf.card.features;
    let win = spec.window_samples();
    let hop = ((hop_seconds as f64 * spec.sample_rate as f64).round() as usize).max(1);
    (crate::pipeline::window_plan(samples.len(), win, hop), win)
}

/// Adds the speech of `samples` to `speaker` window by window, as [`analyze_samples`]
/// would, without classifying: the first pass of `analyze --same-speaker`.
pub fn learn_speaker(
    clf: &Classifier,
    what: &str,
    samples: &[f32],
    hop_seconds: f32,
    speaker: &mut SpeakerProfile,
) -> Result<()> {
    let (starts, win) = window_plan(clf, samples, hop_seconds);
    for &a in &starts {
        let w = &samples[a..(a + win).min(samples.len())];
        crate::pipeline::window_input(&clf.extractor, what, w, speaker)?;
    }
    Ok(())
}

/// Adds the speech windows of `samples` (at `rate`, resampled to the model's), every
/// `hop_seconds`, to `enrolment` ([`crate::pipeline::enrol_window`]), its seconds counted
/// once where windows overlap, and `what` to its sources. Returns how many speech windows
/// joined. `--enrol` and the window's enrol button both learn through it.
pub fn learn_enrolment(
    clf: &Classifier,
    what: &str,
    samples: &[f32],
    rate: u32,
    hop_seconds: f32,
    enrolment: &mut crate::features::Enrolment,
) -> Result<usize> {
    let sr = clf.card.features.sample_rate;
    let samples = &crate::audio::resample(samples, rate, sr)?[..];
    let sr = sr as f64;
    let (starts, win) = window_plan(clf, samples, hop_seconds);
    let (mut joined, mut covered_to) = (0, 0usize);
    for &a in &starts {
        let end = (a + win).min(samples.len());
        if crate::pipeline::enrol_window(
            &clf.extractor,
            what,
            &samples[a..end],
            &mut enrolment.profile,
        )? {
            joined += 1;
            enrolment.seconds += (end - a.max(covered_to).min(end)) as f64 / sr;
            covered_to = end;
        }
    }
    enrolment.sources.push(what.to_string());
    Ok(joined)
}

/// As [`analyze_samples`], with the speaker profile given: grown by this file's speech
/// (`learn`, as live) or left as it is (one learnt from all of the speaker's files).
pub fn analyze_samples_with(
    clf: &Classifier,
    what: &str,
    samples: &[f32],
    hop_seconds: f32,
    speaker: &mut SpeakerProfile,
    learn: bool,
) -> Result<FileAnalysis> {
    let sr = clf.card.features.sample_rate;
    let (starts, win) = window_plan(clf, samples, hop_seconds);
    let mut inputs = Vec::with_capacity(starts.len());
    let mut speech = Vec::with_capacity(starts.len());
    for &a in &starts {
        let w = &samples[a..(a + win).min(samples.len())];
        let (m, s) =
            crate::pipeline::window_input_learning(&clf.extractor, what, w, speaker, learn)?;
        inputs.push(m);
        speech.push(s);
    }
    let probs = clf.probs(&inputs)?;
    let mut windows = Vec::new();
    let mut speech_rows = Vec::new();
    for ((&a, p), &sp) in starts.iter().zip(&probs).zip(&speech) {
        if sp {
            speech_rows.push(*p);
        }
        windows.push(WindowResult {
            t_start: a as f64 / sr as f64,
            t_end: (a + win) as f64 / sr as f64,
            speech: sp,
            top: sp.then(|| LABELS[argmax(p)]),
            probs: labelled(p),
        });
    }
    let summary = (!speech_rows.is_empty()).then(|| mean_probs(&speech_rows));
    Ok(FileAnalysis {
        file: what.to_string(),
        duration: samples.len() as f64 / sr as f64,
        windows,
        summary: summary.as_ref().map(labelled).unwrap_or_default(),
        summary_top: summary.map(|p| LABELS[argmax(&p)]),
        speech_windows: speech_rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_clip_and_end_on_its_last_frame() {
        assert_eq!(window_starts(100, 188, 31), vec![0]);
        assert_eq!(window_starts(250, 188, 31), vec![0, 31, 62]);
        assert_eq!(window_starts(240, 188, 31), vec![0, 31, 52]);
    }

    #[test]
    fn place_pads_with_the_floor_on_either_side() {
        let m = FeatureMatrix {
            rows: 1,
            frames: 3,
            data: vec![-10.0, -20.0, -5.0],
        };
        assert_eq!(
            place(&m, -2, 6).data,
            vec![-20.0, -20.0, -10.0, -20.0, -5.0, -20.0]
        );
        assert_eq!(place(&m, 1, 3).data, vec![-20.0, -5.0, -20.0]);
    }
}
