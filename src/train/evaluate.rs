//! From a trained model to scores: window inputs and logits, clip probabilities,
//! temperature fitting, and metrics per corpus.

use std::collections::BTreeSet;

use rayon::prelude::*;

use crate::analysis::{mean_probs, place, place_filled, window_starts};
use crate::features::FeatureMatrix;
use crate::labels::N_LABELS;
use crate::model::{Classifier, Metrics};
use crate::Result;

use super::metrics;

/// Metrics overall, metrics per corpus, and each clip's probabilities.
pub type ClipEvaluation = (Metrics, Vec<(String, Metrics)>, Vec<[f32; N_LABELS]>);
use super::pack::FeaturePack;

pub(super) fn model_inputs(
    clf: &Classifier,
    pack: &FeaturePack,
    idx: &[usize],
    hop_frames: usize,
) -> (Vec<usize>, Vec<FeatureMatrix>) {
    let win = clf.card.features.window_frames();
    let per: Vec<(usize, Vec<FeatureMatrix>)> = idx
        .par_iter()
        .enumerate()
        .map(|(k, &i)| {
            let m = pack.db_mel(i);
            let v = pack.voice(i);
            let speaker = pack.speaker_profile(i);
            let ws = window_starts(m.frames, win, hop_frames)
                .into_iter()
                .map(|s| {
                    let vw = v
                        .as_ref()
                        .map(|v| place_filled(v, s as isize, win, f32::NAN));
                    clf.extractor
                        .finish(place(&m, s as isize, win), vw.as_ref(), speaker)
                })
                .collect();
            (k, ws)
        })
        .collect();
    let mut owner = Vec::new();
    let mut inputs = Vec::new();
    for (k, ws) in per {
        owner.extend(std::iter::repeat_n(k, ws.len()));
        inputs.extend(ws);
    }
    (owner, inputs)
}

/// Window logits for clips `idx` of the pack (windows every 0.5 s) and each window's clip.
pub fn window_logits(
    clf: &Classifier,
    pack: &FeaturePack,
    idx: &[usize],
) -> Result<(Vec<usize>, Vec<Vec<f32>>)> {
    let spec = &clf.card.features;
    let hop_frames = ((0.5 * spec.sample_rate as f32) / spec.hop_length as f32)
        .round()
        .max(1.0) as usize;
    let (owner, inputs) = model_inputs(clf, pack, idx, hop_frames);
    let mut logits = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(128) {
        let x = clf.batch_tensor(chunk)?;
        logits.extend(clf.net.forward_t(&x, false)?.to_vec2::<f32>()?);
    }
    Ok((owner, logits))
}

/// One window's probabilities: softmax(logits / t).
pub fn softmax_at(l: &[f32], t: f64) -> [f32; N_LABELS] {
    let mx = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f32> = l
        .iter()
        .map(|&x| ((x - mx) as f64 / t).exp() as f32)
        .collect();
    let s: f32 = e.iter().sum();
    let mut p = [0.0f32; N_LABELS];
    for (a, b) in p.iter_mut().zip(&e) {
        *a = b / s;
    }
    p
}

/// Clip probabilities: the mean over a clip's windows of softmax(logits / t).
pub fn clip_probs(
    owner: &[usize],
    logits: &[Vec<f32>],
    n_clips: usize,
    t: f64,
) -> Vec<[f32; N_LABELS]> {
    let mut rows: Vec<Vec<[f32; N_LABELS]>> = vec![Vec::new(); n_clips];
    for (&o, l) in owner.iter().zip(logits) {
        rows[o].push(softmax_at(l, t));
    }
    rows.iter().map(|r| mean_probs(r)).collect()
}

/// What a fitted temperature minimises on the validation clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibrationObjective {
    /// Clip-level negative log-likelihood (the usual temperature scaling).
    Nll,
    /// Expected calibration error (15 bins).
    Ece,
}

/// The temperature minimising clip-level negative log-likelihood on validation clips.
pub fn fit_temperature(owner: &[usize], logits: &[Vec<f32>], truth: &[usize]) -> f64 {
    fit_temperature_by(owner, logits, truth, CalibrationObjective::Nll)
}

/// The temperature in 0.25..4 (61 steps, log-spaced) minimising `objective` on the clips.
pub fn fit_temperature_by(
    owner: &[usize],
    logits: &[Vec<f32>],
    truth: &[usize],
    objective: CalibrationObjective,
) -> f64 {
    let mut best = (f64::INFINITY, 1.0);
    for k in 0..=60 {
        let t = 0.25 * (16.0f64).powf(k as f64 / 60.0); // 0.25 .. 4
        let p = clip_probs(owner, logits, truth.len(), t);
        let loss = match objective {
            CalibrationObjective::Nll => p
                .iter()
                .zip(truth)
                .map(|(p, &y)| -(p[y].max(1e-7) as f64).ln())
                .sum(),
            CalibrationObjective::Ece => metrics::ece(&p, truth),
        };
        if loss < best.0 {
            best = (loss, t);
        }
    }
    best.1
}

/// Metrics of clips' probabilities overall and, where they span several corpora, per
/// corpus (`corpora[k]` is clip k's).
pub fn metrics_by_corpus(
    probs: &[[f32; N_LABELS]],
    truth: &[usize],
    corpora: &[&str],
) -> (Metrics, Vec<(String, Metrics)>) {
    let overall = metrics::evaluate(probs, truth);
    let names: BTreeSet<&str> = corpora.iter().copied().collect();
    if names.len() < 2 {
        return (overall, Vec::new());
    }
    let per_corpus = names
        .into_iter()
        .map(|c| {
            let k: Vec<usize> = (0..probs.len()).filter(|&k| corpora[k] == c).collect();
            let p: Vec<_> = k.iter().map(|&k| probs[k]).collect();
            let t: Vec<_> = k.iter().map(|&k| truth[k]).collect();
            (c.to_string(), metrics::evaluate(&p, &t))
        })
        .collect();
    (overall, per_corpus)
}

/// Evaluates clips `idx` of the pack: metrics overall and per corpus.
pub fn evaluate_clips(
    clf: &Classifier,
    pack: &FeaturePack,
    idx: &[usize],
) -> Result<ClipEvaluation> {
    let (owner, logits) = window_logits(clf, pack, idx)?;
    let probs = clip_probs(&owner, &logits, idx.len(), clf.card.temperature);
    let truth: Vec<usize> = idx.iter().map(|&i| pack.clips[i].clip.label).collect();
    let corpora: Vec<&str> = idx
        .iter()
        .map(|&i| pack.clips[i].clip.corpus.as_str())
        .collect();
    let (overall, per_corpus) = metrics_by_corpus(&probs, &truth, &corpora);
    Ok((overall, per_corpus, probs))
}
