//! Prosody functionals: the statistics of each low-level descriptor over a window, the rows
//! a model reads them in, and the encoder model's input row.

use crate::dsp::prosody::{MEL_LLDS, WAVE_LLDS};

use super::extractor::FeatureMatrix;
use super::profile::SpeakerProfile;

/// Prosody descriptor rows: the waveform's ([`WAVE_LLDS`]) then the spectrogram's
/// ([`MEL_LLDS`]).
pub const N_LLDS: usize = WAVE_LLDS.len() + MEL_LLDS.len();
/// Per descriptor: mean, standard deviation, 20th, 50th and 80th percentile.
pub(super) const STATS_PER_LLD: usize = 5;
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
///
/// With `calm` set (the profile is a *calm reference*, holding only the windows a
/// [`CalmGate`] admits; `calm` says whether it admits this one) the second part is the
/// vector minus the reference's mean (zeros while it holds none), and the window counts
/// only when admitted.
pub fn encoder_row(
    llds: Option<FeatureMatrix>,
    profile: &SpeakerProfile,
    blocks: usize,
    calm: Option<bool>,
) -> FeatureMatrix {
    let d = crate::encoder::pooled_len(blocks);
    let mut data = vec![0.0f32; 2 * d + 2];
    if let Some(v) = llds.filter(|v| v.rows == d && v.frames == 1) {
        data[..d].copy_from_slice(&v.data);
        let z = match calm {
            Some(_) => profile.centre_llds(v),
            None => profile.normalise_llds(v),
        };
        data[d..2 * d].copy_from_slice(&z.data);
        data[2 * d + 1] = if calm.unwrap_or(true) { 1.0 } else { 0.0 };
    }
    data[2 * d] = profile.lld_frames() as f32;
    FeatureMatrix {
        rows: 1,
        frames: 2 * d + 2,
        data,
    }
}

/// Frames where any descriptor row of `llds` applies (the most of any row).
pub(super) fn lld_frames_of(llds: &FeatureMatrix) -> usize {
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

#[cfg(test)]
mod calm_tests {
    use super::*;
    use crate::encoder::{pooled_len, WIDTH};
    use crate::features::CalmGate;

    /// A pooled vector of one block whose representation 1 time-mean is all `level`.
    fn vector(level: f32) -> FeatureMatrix {
        let d = pooled_len(1);
        let mut data = vec![0.5; d];
        data[2 * WIDTH..3 * WIDTH].fill(level);
        FeatureMatrix {
            rows: d,
            frames: 1,
            data,
        }
    }

    /// Calls a window calm when representation 1's mean is below 1.
    fn gate() -> CalmGate {
        CalmGate {
            layer: 1,
            weight: vec![-1.0 / WIDTH as f32; WIDTH],
            bias: 1.0,
        }
    }

    #[test]
    fn a_calm_reference_holds_only_what_the_gate_admits_and_centres_on_it() {
        let g = gate();
        assert!(g.admits(&vector(0.0).data) && !g.admits(&vector(3.0).data));
        assert_eq!(g.logit(&vector(0.0).data[..10]), None, "too short a vector");
        let mut reference = SpeakerProfile::default();
        for level in [0.0, 0.5, 3.0, 4.0] {
            let v = vector(level);
            if g.admits(&v.data) {
                reference.add_llds(&v);
            }
        }
        assert_eq!(
            reference.lld_frames(),
            2,
            "a window is one frame: 2 admitted"
        );
        let d = pooled_len(1);
        // An angry window against the calm reference (mean level 0.25): centred, not
        // z-scored; it does not count itself.
        let row = encoder_row(Some(vector(3.0)), &reference, 1, Some(false));
        assert_eq!(row.frames, 2 * d + 2);
        assert!(
            (row.data[d + 2 * WIDTH] - 2.75).abs() < 1e-6,
            "{}",
            row.data[d + 2 * WIDTH]
        );
        assert!(row.data[d..d + 2 * WIDTH].iter().all(|x| x.abs() < 1e-6));
        assert_eq!(row.data[2 * d], 2.0, "windows in the reference");
        assert_eq!(row.data[2 * d + 1], 0.0, "the window is not calm");
        let calm = encoder_row(Some(vector(0.0)), &reference, 1, Some(true));
        assert_eq!(calm.data[2 * d + 1], 1.0);
        // No reference yet: the second part is zeros (the head reads the vector alone).
        let none = encoder_row(
            Some(vector(3.0)),
            &SpeakerProfile::default(),
            1,
            Some(false),
        );
        assert!(none.data[d..2 * d].iter().all(|&x| x == 0.0));
        assert_eq!(none.data[2 * d], 0.0);
    }

    #[test]
    fn a_bad_calm_gate_in_a_card_is_refused_by_name() {
        let mut spec = crate::encoder::encoder_spec();
        spec.normalisation = crate::features::Normalisation::Speaker;
        let set = |spec: &mut crate::features::FeatureSpec, g: CalmGate| {
            spec.encoder.as_mut().unwrap().calm_gate = Some(g);
        };
        set(&mut spec, gate());
        spec.validate().unwrap();
        let mut short = gate();
        short.weight.truncate(7);
        set(&mut spec, short);
        let e = spec.validate().unwrap_err().to_string();
        assert!(
            e.contains("calm_gate weight") && e.contains("7 values"),
            "{e}"
        );
        let mut nan = gate();
        nan.weight[3] = f32::NAN;
        set(&mut spec, nan);
        assert!(spec.validate().unwrap_err().to_string().contains("finite"));
        let mut deep = gate();
        deep.layer = 9;
        set(&mut spec, deep);
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("calm_gate layer"));
        set(&mut spec, gate());
        spec.normalisation = crate::features::Normalisation::None;
        assert!(spec.validate().unwrap_err().to_string().contains("speaker"));
    }
}
