//! `emoscope analyze`: read audio files (or one person's files together) and print each
//! window's emotions.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::analysis::{analyze_samples, analyze_samples_with, learn_speaker};
use crate::audio::{decode_input, resample};
use crate::features::SpeakerProfile;
use crate::labels::LABELS;
use crate::model::device_name;

use super::models::{load_model, ComputeArg};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope analyze speech.wav\n  \
    emoscope analyze a.flac b.mp3 --json > out.json\n  \
    emoscope analyze --same-speaker interview/*.wav     # one person's recordings, read as eval does\n  \
    emoscope analyze clip.wav --model weights/paper1_cnn --hop 1.0\n  \
    emoscope analyze --enrol neutral-reading.wav session.wav   # read against the voice at rest\n\n\
    Windows without speech (voice activity detector) show 'no speech' and are left out of the summary.")]
pub struct AnalyzeArgs {
    /// Audio files (WAV, FLAC, MP3, OGG); `builtin:demo` is the demo clip built into emoscope.
    #[arg(required = true)]
    pub audio: Vec<PathBuf>,
    /// The files are all one speaker's: a speaker-normalised model (the default) first
    /// learns the voice from the speech of every file, then reads each file against it,
    /// as `eval` reads a speaker's clips. Without it each file is read alone, its profile
    /// growing from its own speech as the live monitor's does.
    #[arg(long)]
    pub same_speaker: bool,
    /// A recording of the same speaker reading in a neutral voice (about 30 s; repeat for
    /// several files), for a model that reads an enrolment (the default):
    /// every window is read against that voice at rest, so a session that stays in one
    /// emotion is still read as that emotion.
    #[arg(long, value_name = "FILE")]
    pub enrol: Vec<PathBuf>,
    #[command(flatten)]
    pub how: AnalyzeHow,
}

/// How `analyze` and `demo` classify: the model, the hop and the output form.
#[derive(Args, Debug, Clone)]
pub struct AnalyzeHow {
    /// Model directory (card.json + model.safetensors); default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Seconds between window starts.
    #[arg(long, default_value_t = 0.5)]
    pub hop: f32,
    /// Print JSON (one object per file) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub compute: ComputeArg,
}

pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let AnalyzeArgs {
        audio,
        same_speaker,
        enrol,
        how: a,
    } = a;
    if a.hop.is_nan() || a.hop <= 0.0 {
        bail!("--hop must be positive, got {}", a.hop);
    }
    let mut clf = load_model(&a.model, a.compute)?;
    super::models::enrol(&mut clf, &enrol, a.hop)?;
    // An enrolment model's profile is the enrolment: the files' own speech never joins it.
    let enrolled = clf.card.features.enrolment();
    if !a.json {
        println!(
            "model: {} ({})",
            clf.card.headline(),
            device_name(&clf.device)
        );
    }
    let read = |path: &PathBuf| -> Result<Vec<f32>> {
        let clip = decode_input(path)?;
        Ok(resample(
            &clip.samples,
            clip.sample_rate,
            clf.card.features.sample_rate,
        )?)
    };
    let mut speaker = SpeakerProfile::default();
    let shared = same_speaker && clf.card.features.wants_profile() && !enrolled;
    if same_speaker && !shared {
        eprintln!(
            "note: --same-speaker: this model {}; each file is read alone",
            if enrolled {
                "learns the voice from its enrolment only (--enrol)"
            } else {
                "is not speaker-normalised"
            }
        );
    }
    if !same_speaker && clf.card.features.wants_profile() && !enrolled {
        eprintln!(
            "note: each file is read alone: this speaker-normalised model knows the voice only from that file's own speech, and reads a voice heard for a few seconds far less reliably than one heard for tens of seconds (docs/recognition.md, \"One file alone\"); several files of one person: --same-speaker"
        );
    }
    if shared {
        for path in &audio {
            let x = read(path)?;
            learn_speaker(&clf, &path.display().to_string(), &x, a.hop, &mut speaker)?;
        }
        eprintln!(
            "note: one speaker profile learnt from the speech of all {} files",
            audio.len()
        );
    }
    for path in &audio {
        let x = read(path)?;
        let what = path.display().to_string();
        let r = if shared {
            analyze_samples_with(&clf, &what, &x, a.hop, &mut speaker, false)?
        } else if let Some(e) = clf.enrolment.as_ref().filter(|_| enrolled) {
            analyze_samples_with(&clf, &what, &x, a.hop, &mut e.profile.clone(), false)?
        } else {
            analyze_samples(&clf, &what, &x, a.hop)?
        };
        if a.json {
            println!("{}", serde_json::to_string(&r)?);
            continue;
        }
        println!(
            "\n{}  ({:.2} s, {} of {} windows with speech)",
            path.display(),
            r.duration,
            r.speech_windows,
            r.windows.len()
        );
        println!(
            "  {:>13}  {:<10} {}",
            "window (s)",
            "top",
            LABELS
                .iter()
                .map(|l| format!("{l:>10}"))
                .collect::<String>()
        );
        for w in &r.windows {
            println!(
                "  {:>5.1} - {:>5.1}  {:<10} {}",
                w.t_start,
                w.t_end,
                w.top.unwrap_or("no speech"),
                w.probs
                    .iter()
                    .map(|(_, p)| format!("{p:>10.3}"))
                    .collect::<String>()
            );
        }
        match r.summary_top {
            Some(top) => println!(
                "  {:>13}  {:<10} {}",
                "summary",
                top,
                r.summary
                    .iter()
                    .map(|(_, p)| format!("{p:>10.3}"))
                    .collect::<String>()
            ),
            None => println!(
                "  {:>13}  no speech: the voice activity detector heard no speech in any window, so no emotion is named",
                "summary"
            ),
        }
    }
    Ok(())
}
