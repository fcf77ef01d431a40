//! Out-of-fold readings: what a cross-fitted head's fold models (each trained without
//! one fold of the non-test speakers) read of the speakers they never trained on. `train
//! --crossfit` fits the head's temperature on them and keeps them beside the model
//! (`crossfit.json`); `emoscope ensemble` averages its members' readings of the same clips
//! and fits the ensemble's own temperature on that average. Averaging members that were
//! each calibrated alone leaves the ensemble less sure than it is right (the members
//! disagree where each alone was sure), which one more temperature on the average mends
//! without a test speaker entering it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::labels::N_LABELS;
use crate::{Error, Result};

/// The file a cross-fitted head keeps its out-of-fold readings in, beside its card.
pub const FILE: &str = "crossfit.json";
/// The most bytes such a file may hold (a run on every clip of the three corpora, read
/// with and without an enrolment, writes about 4 MB).
pub const MAX_BYTES: u64 = 64 << 20;

/// One reading of one clip: under one profile, by the fold model that never trained on
/// its speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    pub clip: String,
    /// The profile it was read under (`enrolment`, `clip`, `speaker`).
    pub profile: String,
    pub label: usize,
}

/// A head's out-of-fold readings: each reading's windows' logits (`owner[w]` is window
/// w's reading).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutOfFold {
    /// What the folds hold out: `speakers` or `corpora`.
    pub by: String,
    pub readings: Vec<Reading>,
    pub owner: Vec<usize>,
    pub logits: Vec<Vec<f32>>,
}

impl OutOfFold {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Model(e.to_string()))?;
        crate::util::write_atomic(&dir.join(FILE), &json)
    }

    /// The readings kept beside the model in `dir`; `None` when it has none (trained
    /// without cross-fitting). One that is cut short, too large or inconsistent is an
    /// error naming the file.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Ok(None);
        }
        let bad = |reason: String| Error::Format {
            path: path.clone(),
            reason,
        };
        let bytes = crate::util::read_bounded(&path, MAX_BYTES)?;
        let o: Self = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not out-of-fold readings ({e}); train the model again with --crossfit to rewrite it")))?;
        if o.owner.len() != o.logits.len() {
            return Err(bad(format!(
                "{} windows but {} rows of logits",
                o.owner.len(),
                o.logits.len()
            )));
        }
        if let Some(w) = o.owner.iter().find(|&&w| w >= o.readings.len()) {
            return Err(bad(format!(
                "a window of reading {w}, but there are {} readings",
                o.readings.len()
            )));
        }
        if o.logits
            .iter()
            .any(|l| l.len() != N_LABELS || l.iter().any(|v| !v.is_finite()))
        {
            return Err(bad(format!(
                "a row of logits that is not {N_LABELS} finite numbers"
            )));
        }
        if o.readings.iter().any(|r| r.label >= N_LABELS) {
            return Err(bad(format!("a label outside 0..{N_LABELS}")));
        }
        Ok(Some(o))
    }
}

/// The temperature of an ensemble whose members read `members` out of fold, each at its
/// own temperature (`temperatures`), their probabilities averaged window by window: the
/// one minimising clip-level negative log-likelihood of that average, as a single head's
/// is fitted. The members must have read the same clips under the same profiles with the
/// same windows (the same data and folds; seeds may differ); otherwise an error saying
/// which differs.
pub fn ensemble_temperature(
    members: &[(String, OutOfFold)],
    temperatures: &[f64],
) -> std::result::Result<f64, String> {
    let Some((first_name, first)) = members.first() else {
        return Err("no members".into());
    };
    for (name, m) in &members[1..] {
        if m.readings != first.readings || m.owner != first.owner {
            return Err(format!(
                "{name} read other clips out of fold than {first_name} (other data, --only or folds)"
            ));
        }
    }
    // The ensemble's window logits are the log of the members' probabilities averaged
    // (as it runs).
    let logits: Vec<Vec<f32>> = (0..first.logits.len())
        .map(|w| {
            let rows: Vec<[f32; N_LABELS]> = members
                .iter()
                .zip(temperatures)
                .map(|((_, m), &t)| super::softmax_at(&m.logits[w], t))
                .collect();
            crate::analysis::mean_probs(&rows)
                .iter()
                .map(|v| v.max(1e-30).ln())
                .collect()
        })
        .collect();
    let truth: Vec<usize> = first.readings.iter().map(|r| r.label).collect();
    Ok(super::fit_temperature(&first.owner, &logits, &truth))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oof(logits: Vec<Vec<f32>>) -> OutOfFold {
        let readings = (0..logits.len())
            .map(|k| Reading {
                clip: format!("c{k}.wav"),
                profile: "clip".into(),
                label: 0,
            })
            .collect();
        OutOfFold {
            by: "speakers".into(),
            readings,
            owner: (0..logits.len()).collect(),
            logits,
        }
    }

    #[test]
    fn members_that_disagree_are_sharpened_and_members_sure_and_wrong_are_softened() {
        let sure = |k: usize| {
            let mut z = vec![0f32; N_LABELS];
            z[k] = 6.0;
            z
        };
        // Every clip is label 0. Two members each sure of it (p 0.94) on half the clips
        // and undecided on the other half: their average is right everywhere but only
        // about 0.53 sure, so the ensemble's temperature is below 1.
        let a = oof((0..40)
            .map(|i| {
                if i % 2 == 0 {
                    sure(0)
                } else {
                    vec![0.0; N_LABELS]
                }
            })
            .collect());
        let b = oof((0..40)
            .map(|i| {
                if i % 2 == 1 {
                    sure(0)
                } else {
                    vec![0.0; N_LABELS]
                }
            })
            .collect());
        let t = ensemble_temperature(&[("a".into(), a), ("b".into(), b)], &[1.0, 1.0]).unwrap();
        assert!(t < 1.0, "temperature {t}");
        // A member 0.94 sure every time and right half the time, twice: the average is
        // the member, too sure, so the temperature is above 1.
        let c = oof((0..40).map(|i| sure(i % 2)).collect());
        let t2 = ensemble_temperature(&[("c".into(), c.clone()), ("c2".into(), c)], &[1.0, 1.0])
            .unwrap();
        assert!(t2 > 1.0, "temperature {t2}");
    }

    #[test]
    fn members_that_read_other_clips_are_refused_by_name() {
        let a = oof(vec![vec![0.0; N_LABELS]; 3]);
        let mut b = a.clone();
        b.readings[1].clip = "other.wav".into();
        let e = ensemble_temperature(&[("runs/a".into(), a), ("runs/b".into(), b)], &[1.0, 1.0])
            .unwrap_err();
        assert!(e.contains("runs/b") && e.contains("runs/a"), "{e}");
    }

    #[test]
    fn a_cut_short_or_inconsistent_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = oof(vec![vec![0.5; N_LABELS]; 2]);
        good.save(dir.path()).unwrap();
        assert_eq!(
            OutOfFold::load(dir.path()).unwrap().unwrap().logits,
            good.logits
        );
        let path = dir.path().join(FILE);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = OutOfFold::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(FILE), "{e}");
        let mut bad = good.clone();
        bad.owner[1] = 7;
        bad.save(dir.path()).unwrap();
        let e = OutOfFold::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(FILE) && e.contains("reading 7"), "{e}");
        let mut short = good;
        short.logits[0].pop();
        short.save(dir.path()).unwrap();
        let e = OutOfFold::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("finite numbers"), "{e}");
        assert!(OutOfFold::load(&dir.path().join("none")).unwrap().is_none());
    }
}
