//! `emoscope ensemble`: average the calibrated probabilities of several models and score
//! the average.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::corpus::Clip;
use crate::corpus::{holdout, load_all, DataSource};
use crate::model::{display_name, Arch, Classifier};

use super::eval::evaluate_all;
use super::models::{load_model_on, ComputeArg};
use super::train::print_metrics_by_corpus;
use crate::cli::head::{keep_test_figure, report_scopes};

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  \
    emoscope ensemble weights/fusion runs/prosody --out weights/duo \\\n      \
    --data ravdess=../shared/data/ravdess --data csv=../shared/data/emovo/labels.csv --data csv=../shared/data/nemo/labels.csv\n\n\
    The ensemble averages its members' probabilities, each at the temperature of its own card,\n\
    and runs wherever a model does (monitor, analyze, eval, finetune). Where every member is a head\n\
    trained with --crossfit (it keeps its out-of-fold readings in crossfit.json), the average gets a\n\
    temperature of its own, fitted on those readings averaged. The members must share one\n\
    feature spec and one set of test speakers, so its held-out score stays speaker-independent;\n\
    with --data it is scored on those test speakers and the card keeps the figures.")]
pub struct EnsembleArgs {
    #[command(flatten)]
    pub compute: ComputeArg,
    /// Member model folders (or built-in models, e.g. builtin:fusion), two or more.
    #[arg(required = true, num_args = 2..)]
    pub models: Vec<PathBuf>,
    /// Output folder (card.json, model.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Labelled data holding the members' test speakers: score the ensemble on them.
    #[arg(long)]
    pub data: Vec<DataSource>,
    /// Weigh the N-th model given (from 1) by how much speech the speaker profile holds
    /// beyond the window: none on one file alone or a session's first window, full once
    /// the profile holds --profile-ramp windows more (for a prosody MLP, whose z-scores
    /// mean nothing against a profile of the window alone); repeatable.
    #[arg(long = "profile-weighted", value_name = "N")]
    pub profile_weighted: Vec<usize>,
    /// Windows of other speech in the profile at which a --profile-weighted member counts fully.
    #[arg(long, default_value_t = 8.0)]
    pub profile_ramp: f64,
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
}

pub fn ensemble(a: EnsembleArgs) -> Result<()> {
    use crate::model::{member_prefix, Member, MAX_MEMBERS};
    if a.models.len() > MAX_MEMBERS {
        bail!(
            "{} models given; an ensemble has at most {MAX_MEMBERS}",
            a.models.len()
        );
    }
    for &n in &a.profile_weighted {
        if !(1..=a.models.len()).contains(&n) {
            bail!(
                "--profile-weighted {n}: there are {} models; give the position of one of them (1 to {})",
                a.models.len(),
                a.models.len()
            );
        }
    }
    let weighted: std::collections::BTreeSet<usize> = a.profile_weighted.iter().copied().collect();
    // Member i's ramp (models counted from 1 on the command line).
    let ramp_of = |i: usize| weighted.contains(&(i + 1)).then_some(a.profile_ramp);
    if weighted.len() >= a.models.len() {
        bail!("--profile-weighted names every model; at least one must always count (usually the spectrogram model)");
    }
    if !crate::model::profile_ramp_allowed(a.profile_ramp) {
        bail!(
            "--profile-ramp {}: must be above 0 and at most {}",
            a.profile_ramp,
            crate::model::MAX_PROFILE_RAMP
        );
    }
    let device = a.compute.device();
    let members: Vec<(PathBuf, Classifier)> = a
        .models
        .iter()
        .map(|m| Ok((m.clone(), load_model_on(&Some(m.clone()), &device)?)))
        .collect::<Result<_>>()?;
    let (first_dir, first) = &members[0];
    // Heads on the encoder may read different representations of it: the ensemble runs
    // the encoder as far as the deepest member reads, each member its own.
    let but_blocks = |f: &crate::features::FeatureSpec| {
        let mut f = f.clone();
        if let Some(e) = f.encoder.as_mut() {
            e.blocks = 0;
        }
        f
    };
    let mut features = first.card.features.clone();
    if let Some(e) = features.encoder.as_mut() {
        e.blocks = members
            .iter()
            .filter_map(|(_, m)| m.card.features.encoder.as_ref().map(|e| e.blocks))
            .max()
            .unwrap_or(e.blocks);
    }
    let sorted = |v: &[String]| -> Vec<String> {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    for (dir, m) in &members {
        if let Arch::Ensemble { .. } = m.card.arch {
            bail!(
                "{} is already an ensemble: list its members instead",
                display_name(dir)
            );
        }
        if but_blocks(&m.card.features) != but_blocks(&first.card.features) {
            bail!(
                "{} computes other features than {} ({:?} against {:?}): an ensemble's members must share one feature spec (heads on the encoder may read different blocks of it)",
                display_name(dir), display_name(first_dir), m.card.features, first.card.features
            );
        }
        if sorted(&m.card.test_speakers) != sorted(&first.card.test_speakers) {
            bail!(
                "{} was tested on speakers {} but {} on {}: an ensemble's members must hold out the same test speakers, or its score would not be speaker-independent",
                display_name(dir), m.card.test_speakers.join(", "), display_name(first_dir), first.card.test_speakers.join(", ")
            );
        }
        if m.card.base_model.is_some() || m.card.speaker_dependent {
            bail!("{} is speaker-dependent (fine-tuned to particular voices, or trained on a random split of clips); an ensemble takes models trained speaker-independently", display_name(dir));
        }
    }
    let union = |f: &dyn Fn(&crate::model::ModelCard) -> Vec<String>| -> Vec<String> {
        sorted(
            &members
                .iter()
                .flat_map(|(_, m)| f(&m.card))
                .collect::<Vec<_>>(),
        )
    };
    let train_speakers = union(&|c| c.train_speakers.clone());
    let validation_speakers: Vec<String> = union(&|c| c.validation_speakers.clone())
        .into_iter()
        .filter(|s| !train_speakers.contains(s))
        .collect();
    let described: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, (d, m))| {
            let weighed = ramp_of(i)
                .map(|r| {
                    format!(
                        ", weighed by the speaker profile (full at {r} windows of other speech)"
                    )
                })
                .unwrap_or_default();
            format!(
                "{} ({}, temperature {:.2}{weighed}: {})",
                display_name(d),
                m.card.arch.name(),
                m.card.temperature,
                m.card.notes
            )
        })
        .collect();
    let temperature = ensemble_temperature(&members)?;
    let card = crate::model::ModelCard {
        arch: Arch::Ensemble {
            members: members
                .iter()
                .enumerate()
                .map(|(i, (d, m))| Member {
                    arch: m.card.arch.clone(),
                    temperature: m.card.temperature,
                    from: display_name(d),
                    profile_ramp: ramp_of(i),
                })
                .collect(),
        },
        temperature: temperature.unwrap_or(1.0),
        training_data: union(&|c| c.training_data.clone()),
        protocol: format!(
            "speaker-independent: test speakers {} never seen in training by any member; {}",
            first.card.test_speakers.join(", "),
            match members.iter().all(|(_, m)| m.card.protocol == first.card.protocol) {
                // Members trained alike (seeds of one recipe): their protocol once.
                true => format!("every member's own protocol (alike for all {}): {}", members.len(), first.card.protocol),
                false => format!(
                    "each member's own protocol: {}",
                    members.iter().map(|(_, m)| m.card.protocol.as_str()).collect::<Vec<_>>().join(" | ")
                ),
            }
        ),
        speaker_dependent: false,
        test_speakers: first.card.test_speakers.clone(),
        validation_speakers,
        train_speakers,
        epochs: members.iter().map(|(_, m)| m.card.epochs).max().unwrap_or(0),
        test_metrics: None,
        test_metrics_per_corpus: Vec::new(),
        test_metrics_enrolled: None,
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        notes: format!(
            "ensemble (emoscope ensemble) of {} models, probabilities averaged, each at its own temperature{}: {}",
            members.len(),
            match temperature {
                Some(t) => format!(", the average at temperature {t:.3} cross-fitted on the members' out-of-fold readings averaged"),
                None => String::new(),
            },
            described.join("; ")
        ),
        base_model: None,
        features,
        ..first.card.clone()
    };
    let mut clf = Classifier::new(card, &first.device)?;
    {
        let mut target = clf.varmap.data().lock().expect("varmap lock");
        let mut set = 0;
        for (i, (dir, m)) in members.iter().enumerate() {
            for (name, var) in m.varmap.data().lock().expect("varmap lock").iter() {
                let full = format!("{}.{name}", member_prefix(i));
                let t = target.get_mut(&full).with_context(|| {
                    format!(
                        "{}: tensor {name} has no place in the ensemble",
                        display_name(dir)
                    )
                })?;
                t.set(var.as_tensor())?;
                set += 1;
            }
        }
        if set != target.len() {
            bail!(
                "the members gave {set} tensors but the ensemble has {}",
                target.len()
            );
        }
    }
    let mut rows = Vec::new();
    if !a.data.is_empty() {
        let corpus = load_all(&a.data)?;
        let test = clf.card.test_speakers.clone();
        let (_, te) = holdout(&corpus.clips, &test)?;
        let clips: Vec<Clip> = te.into_iter().map(|i| corpus.clips[i].clone()).collect();
        // Members on the encoder are scored under every profile `train` reports them under
        // (an enrolment model with and without its enrolment); the rest with the speaker's.
        let scopes = match clf.card.features.encoder.is_some() {
            true => report_scopes(&clf.card.features),
            false => crate::cli::head::SCOPES[..1].to_vec(),
        };
        for (scope, name) in scopes {
            let (_, (m, per_corpus, _)) = evaluate_all(&clf, &clips, &a.cache, scope)?;
            print_metrics_by_corpus(
                &format!("ensemble on held-out speakers, {name}"),
                &m,
                &per_corpus,
            );
            rows.push(keep_test_figure(&mut clf.card, scope, m, per_corpus));
        }
    }
    clf.save(&a.out)?;
    if !rows.is_empty() {
        crate::util::write_atomic(
            &a.out.join("test.json"),
            serde_json::to_string_pretty(&rows)?.as_bytes(),
        )?;
    }
    println!(
        "ensemble of {} models written to {}",
        members.len(),
        a.out.display()
    );
    Ok(())
}

/// The ensemble's own temperature, fitted on its members' out-of-fold readings averaged
/// (each member's `crossfit.json`, written by `train --crossfit`): `None`, said so, when a
/// member has none, and the average is read as it is.
fn ensemble_temperature(members: &[(PathBuf, Classifier)]) -> Result<Option<f64>> {
    use crate::train::oof::{self, OutOfFold};
    let mut read = Vec::new();
    for (dir, _) in members {
        match OutOfFold::load(dir)? {
            Some(o) => read.push((display_name(dir), o)),
            None => {
                eprintln!(
                    "note: {} kept no out-of-fold readings ({}: train it with --crossfit K); the ensemble reads its members' averaged probabilities at temperature 1",
                    display_name(dir),
                    oof::FILE
                );
                return Ok(None);
            }
        }
    }
    let temperatures: Vec<f64> = members.iter().map(|(_, m)| m.card.temperature).collect();
    let t = oof::ensemble_temperature(&read, &temperatures)
        .map_err(|e| anyhow::anyhow!("cannot fit the ensemble's temperature: {e}"))?;
    eprintln!(
        "ensemble temperature {t:.3}, fitted on the members' {} out-of-fold readings averaged",
        read[0].1.readings.len()
    );
    Ok(Some(t))
}
