//! `emoscope encode`: the pretrained encoder over labelled clips once, cached (and
//! optionally exported), so heads train from the cache in seconds.

use std::path::PathBuf;

use clap::Args;

use crate::corpus::{load_all, DataSource};
use crate::encoder::encoder_spec;
use crate::train::encpack::EncoderPack;
use anyhow::Result;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope encode --data ravdess=DATA/ravdess --data csv=DATA/emovo/labels.csv\n  \
    emoscope encode --data csv=my-clips/labels.csv --export enc-npy\n\n\
    Every 3 s window (one a second) of every clip goes once through Whisper base's encoder\n\
    (blocks 0-3, built in); each window's mean and standard deviation over time of every\n\
    block is cached under --cache, where `train --arch encoder_head` finds it. About 0.1 s\n\
    of CPU per window.")]
pub struct EncodeArgs {
    /// Labelled data as KIND=PATH; repeatable.
    #[arg(long, required = true)]
    pub data: Vec<DataSource>,
    /// Also write the vectors as X.npy and windows.csv into this folder.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Also cache one perturbed copy of every clip (speed ±10 %, white noise at 10-25 dB
    /// SNR, drawn from this seed), for `train --arch encoder_head --augment-encoder SEED`.
    #[arg(long)]
    pub augment: Option<u64>,
    /// Read every window at this level: its dB mel shifted so its loudest value reads
    /// LEVEL_DB dB (the features' `level_db`, as `train --level-db`); `recorded`: at the
    /// level each clip was recorded. Default: 8 dB, as the encoder heads read them.
    #[arg(long, value_name = "LEVEL_DB|recorded", allow_hyphen_values = true)]
    pub level_db: Option<LevelArg>,
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
}

/// `--level-db`: a level in dB, or `recorded` (none).
#[derive(Debug, Clone, Copy)]
pub struct LevelArg(pub Option<f32>);

impl std::str::FromStr for LevelArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "recorded" {
            return Ok(LevelArg(None));
        }
        s.parse::<f32>()
            .map(|l| LevelArg(Some(l)))
            .map_err(|_| format!("'{s}' is neither a level in dB (e.g. 8) nor `recorded`"))
    }
}

impl LevelArg {
    /// Sets an encoder spec's level to `level` where one was given, then checks the spec.
    pub fn apply(
        level: Option<Self>,
        spec: &mut crate::features::FeatureSpec,
    ) -> crate::error::Result<()> {
        if let (Some(l), Some(e)) = (level, spec.encoder.as_mut()) {
            e.level_db = l.0;
        }
        spec.validate()
    }
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let corpus = load_all(&a.data)?;
    for line in corpus.report() {
        eprintln!("note: {line}");
    }
    let mut spec = encoder_spec();
    LevelArg::apply(a.level_db, &mut spec)?;
    let pack = EncoderPack::cached(&a.cache, &spec, &corpus.clips)?;
    eprintln!(
        "{} windows of {} clips ({} values each)",
        pack.windows.len(),
        pack.clips.len(),
        pack.dim
    );
    if let Some(seed) = a.augment {
        let aug = EncoderPack::cached_augmented(&a.cache, &spec, &corpus.clips, seed)?;
        eprintln!(
            "augmented copy (seed {seed}): {} windows",
            aug.windows.len()
        );
    }
    if let Some(dir) = &a.export {
        pack.export(dir)?;
        eprintln!("wrote {}/X.npy and windows.csv", dir.display());
    }
    Ok(())
}
