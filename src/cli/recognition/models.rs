//! Which model a command runs: `--model`, `$EMOSCOPE_MODEL` or the built-in default, on the
//! device `--compute` asks for.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::model::{display_name, Classifier, Compute, BUILTIN_MODEL};

/// `--model`, else `$EMOSCOPE_MODEL`, else the default model compiled into the binary
/// ([`BUILTIN_MODEL`], `weights/encoder_head` as of the build): no folder beside the binary or
/// the source tree is needed.
pub(in crate::cli) fn model_dir(m: &Option<PathBuf>) -> PathBuf {
    if let Some(m) = m {
        return m.clone();
    }
    if let Some(e) = std::env::var_os("EMOSCOPE_MODEL") {
        return PathBuf::from(e);
    }
    PathBuf::from(BUILTIN_MODEL)
}

/// Where a command's model runs (every command that runs one has it).
#[derive(Args, Debug, Clone, Copy)]
pub struct ComputeArg {
    /// Where the model runs: auto (a GPU when this build has CUDA and one answers, else the
    /// CPU), cpu, or cuda[:N]. A GPU that cannot be used falls back to the CPU and says
    /// why. (`--device`, where a command has it, is the audio input.)
    #[arg(long, default_value = "auto", value_name = "auto|cpu|cuda[:N]")]
    pub compute: Compute,
}

impl ComputeArg {
    /// The device asked for; a GPU that cannot be used gives the CPU, with a warning naming
    /// why.
    pub(in crate::cli) fn device(self) -> candle_core::Device {
        let placement = crate::model::place(self.compute);
        if let Some(why) = &placement.fallback {
            eprintln!("warning: {why}; the model runs on the CPU");
        }
        placement.device
    }
}

/// Loads the model (`None`: the default) on `device`.
pub(in crate::cli) fn load_model_on(
    m: &Option<PathBuf>,
    device: &candle_core::Device,
) -> Result<Classifier> {
    let dir = model_dir(m);
    Classifier::load(&dir, device).with_context(|| format!("loading model {}", display_name(&dir)))
}

/// Loads the model (`None`: the default) where `compute` asks ([`ComputeArg::device`]).
pub(in crate::cli) fn load_model(m: &Option<PathBuf>, compute: ComputeArg) -> Result<Classifier> {
    load_model_on(m, &compute.device())
}
