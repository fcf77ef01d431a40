//! Which model a command runs: `--model`, `$EMOSCOPE_MODEL` or the built-in default, on the
//! device `--compute` asks for.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::features::{Enrolment, ENROL_SECONDS_ADVISED};
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

/// Gives `clf` the enrolment of `files` (`--enrol`): their speech windows every
/// `hop_seconds`, as [`crate::analysis::learn_enrolment`]. An error names the file when a
/// model reads no enrolment or a file holds no speech; a note says how much speech the
/// enrolment holds against [`ENROL_SECONDS_ADVISED`]. Without files, a note says what an
/// enrolment model does without one.
pub(in crate::cli) fn enrol(
    clf: &mut Classifier,
    files: &[PathBuf],
    hop_seconds: f32,
) -> Result<()> {
    if files.is_empty() {
        if clf.card.features.enrolment() {
            eprintln!(
                "note: no enrolment given: this model reads each window alone; with --enrol FILE (about {ENROL_SECONDS_ADVISED:.0} s of the speaker reading in a neutral voice) it reads them against that voice at rest (docs/recognition.md, \"Enrolment\")"
            );
        }
        return Ok(());
    }
    if !clf.card.features.enrolment() {
        bail!(
            "--enrol: the model {} reads no enrolment (its card's features have no \"enrolment\"); use the default (builtin:encoder_head) or a model trained with --arch encoder_head_enrol",
            clf.card.arch.name()
        );
    }
    let mut e = Enrolment::default();
    for path in files {
        let clip = crate::audio::decode_input(path)
            .with_context(|| format!("--enrol {}", path.display()))?;
        let what = path.display().to_string();
        if crate::analysis::learn_enrolment(
            clf,
            &what,
            &clip.samples,
            clip.sample_rate,
            hop_seconds,
            &mut e,
        )? == 0
        {
            bail!(
                "--enrol {what}: no speech heard in it (voice activity detector); record the speaker reading a few sentences in a neutral voice"
            );
        }
    }
    eprintln!(
        "note: enrolment: {:.1} s of speech in {} speech windows from {} file(s){}",
        e.seconds,
        e.profile.lld_frames(),
        e.sources.len(),
        if e.seconds < ENROL_SECONDS_ADVISED {
            format!(
                "; about {ENROL_SECONDS_ADVISED:.0} s is advised (the gain measured with 10 s is about half, with 3 s none)"
            )
        } else {
            String::new()
        }
    );
    clf.enrolment = Some(e);
    Ok(())
}
