//! Training and evaluation: the feature cache, augmentation, the training loop (seeded,
//! checkpointed, resumable), temperature calibration on validation speakers, metrics.

pub mod adamw;
pub mod augment;
pub mod encpack;
pub mod finetune;
pub mod head;
pub mod metrics;
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
