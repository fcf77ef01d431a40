//! Training and evaluation: the feature cache, augmentation, the training loop (seeded,
//! checkpointed, resumable), temperature calibration on validation speakers, metrics.

pub mod adamw;
pub mod augment;
pub mod encpack;
pub mod finetune;
pub mod head;
pub mod metrics;
pub mod oof;
pub mod pack;
pub mod plot;

use std::path::{Path, PathBuf};

use crate::corpus::Clip;
use crate::features::FeatureSpec;
use crate::Result;

pub use augment::Augment;
pub use pack::{log_line, FeaturePack, ProfileScope};

mod evaluate;
mod fit;
mod recipe;

pub use evaluate::*;
pub use fit::*;
pub use recipe::*;

/// The enrolment clip `k` (`c`) of a set of training or test clips is read against, as a
/// key into a set of profiles: a neutral clip's own (its enrolment leaves it out), shared
/// by all of a speaker's other clips. [`in_enrolment`] says what it holds. The encoder
/// cache's heads ([`head`]) and a feature pack's models (fine-tuning) both key by it.
pub(crate) fn enrolment_key(k: usize, c: &Clip) -> String {
    match c.label == crate::labels::NEUTRAL {
        true => format!("enrolment without clip {k}"),
        false => format!("enrolment of {}", c.speaker),
    }
}

/// Whether clip `j` (`e`) is in the enrolment clip `k` (`c`) is read against: a clip of
/// the same speaker labelled neutral, other than `c` itself (see [`enrolment_key`]).
pub(crate) fn in_enrolment(k: usize, c: &Clip, j: usize, e: &Clip) -> bool {
    j != k && e.label == crate::labels::NEUTRAL && e.speaker == c.speaker
}

/// Loads the pack for `spec` and `clips` from `cache_dir`, or builds and stores it.
pub fn cached_pack(
    cache_dir: &Path,
    spec: &FeatureSpec,
    clips: &[Clip],
) -> Result<(FeaturePack, PathBuf)> {
    let path = FeaturePack::cache_path(cache_dir, spec, clips);
    if path.exists() {
        if let Ok(p) = FeaturePack::load(&path) {
            if p.dsp_matches(spec) {
                let mut p = p;
                p.spec = spec.clone();
                return Ok((p, path));
            }
        }
    }
    let pb = progress(clips.len() as u64, "computing features");
    let p = FeaturePack::build(spec, clips, &|| pb.inc(1))?;
    pb.finish_and_clear();
    p.save(&path)?;
    Ok((p, path))
}
