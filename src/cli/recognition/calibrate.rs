//! `emoscope calibrate`: refit a model's temperature on out-of-fold predictions of its
//! training speakers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use crate::corpus::{load_all, DataSource};
use crate::model::{display_name, Arch, Classifier};
use crate::train::{cached_pack, evaluate_clips};

use super::models::{load_model, load_model_on, model_dir, ComputeArg};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope calibrate --data ravdess=../shared/data/ravdess --data csv=../shared/data/emovo/labels.csv\n  \
    emoscope calibrate --model runs/duo --data ... --out-of-fold runs/cf/f1 --out-of-fold runs/cf/f2 --out-of-fold runs/cf/f3 --write\n\n\
    Fits the softmax temperature on the model card's validation speakers only (never its test\n\
    speakers) and prints calibration on both; --write stores the new temperature in the card.\n\
    With --out-of-fold it is fitted instead on fold models' predictions of the speakers each was\n\
    not trained on (cross-fitting: every training speaker, predicted by a model that never heard\n\
    them). Each fold model must be built as the model is (same features and architecture; for an\n\
    ensemble the same member temperatures and weighing) and hold out all of the model's test\n\
    speakers, which are never used. `train --crossfit K` leaves such folds in OUT/crossfit/.")]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub compute: ComputeArg,
    /// Model directory; default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The labelled data holding the card's validation and test speakers; repeatable.
    #[arg(long, required = true)]
    pub data: Vec<DataSource>,
    /// What the temperature minimises on the validation clips.
    #[arg(long, value_enum, default_value = "nll")]
    pub objective: crate::train::CalibrationObjective,
    /// A fold model (trained without some of the training speakers): fit the temperature
    /// on its predictions of those speakers instead of on the validation speakers;
    /// repeatable, one per fold (their held-out speakers must not overlap).
    #[arg(long = "out-of-fold", value_name = "MODEL")]
    pub out_of_fold: Vec<PathBuf>,
    /// Save the fitted temperature into the model's card.
    #[arg(long)]
    pub write: bool,
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
}

/// Window logits of the clips a temperature is fitted on, with each window's clip and
/// each clip's label.
#[derive(Default)]
pub(in crate::cli) struct FitSet {
    pub(in crate::cli) owner: Vec<usize>,
    pub(in crate::cli) logits: Vec<Vec<f32>>,
    pub(in crate::cli) truth: Vec<usize>,
}

impl FitSet {
    pub(in crate::cli) fn ece(&self, t: f64) -> f64 {
        let p = crate::train::clip_probs(&self.owner, &self.logits, self.truth.len(), t);
        crate::train::metrics::ece(&p, &self.truth)
    }

    pub(in crate::cli) fn extend(
        &mut self,
        owner: Vec<usize>,
        logits: Vec<Vec<f32>>,
        truth: Vec<usize>,
    ) {
        let base = self.truth.len();
        self.owner.extend(owner.into_iter().map(|o| o + base));
        self.logits.extend(logits);
        self.truth.extend(truth);
    }
}

/// The fold models' logits on the speakers each held out, the model's test speakers
/// excepted, after checking each fold is built as the model is.
pub(in crate::cli) fn out_of_fold_set(
    clf: &Classifier,
    folds: &[PathBuf],
    corpus: &[crate::corpus::Clip],
    cache: &Path,
) -> Result<FitSet> {
    let mut set = FitSet::default();
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    for f in folds {
        let fold = load_model_on(&Some(f.clone()), &clf.device)?;
        let name = display_name(f);
        if fold.card.features != clf.card.features || !fold.card.arch.same_network(&clf.card.arch) {
            bail!("{name}: a fold model must have the model's features and architecture, and an ensemble's members the same temperatures and weighing ({} against {})", fold.card.arch.name(), clf.card.arch.name());
        }
        if let Some(s) = clf
            .card
            .test_speakers
            .iter()
            .find(|s| !fold.card.test_speakers.contains(s))
        {
            bail!("{name}: does not hold out the model's test speaker {s}; fold models must never have heard them");
        }
        if let Some(s) = fold
            .card
            .train_speakers
            .iter()
            .find(|s| clf.card.test_speakers.contains(s))
        {
            bail!("{name}: trained on the model's test speaker {s}");
        }
        let held: Vec<&String> = fold
            .card
            .test_speakers
            .iter()
            .filter(|s| !clf.card.test_speakers.contains(s))
            .collect();
        if held.is_empty() {
            bail!("{name}: holds out no speakers beyond the model's test speakers, so it predicts none out of fold (a fold model is trained without some of the model's training speakers)");
        }
        for s in &held {
            if let Some(other) = used.insert((*s).clone(), name.clone()) {
                bail!("{name} and {other} both hold out speaker {s}: folds must not overlap");
            }
        }
        let clips: Vec<crate::corpus::Clip> = corpus
            .iter()
            .filter(|c| held.contains(&&c.speaker))
            .cloned()
            .collect();
        if clips.is_empty() {
            bail!(
                "{name}: none of the speakers it held out ({}) are in --data",
                held.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let part = fit_set(&fold, &clips, cache)?;
        eprintln!(
            "note: {name}: {} clips of {} held-out speakers",
            clips.len(),
            held.len()
        );
        set.extend(part.owner, part.logits, part.truth);
    }
    Ok(set)
}

/// Clips as a model reads them: a head on the encoder through the encoder cache (as `eval`
/// and `train` read it), any other model through its feature pack. Loaded once, read at
/// every temperature.
enum Readings {
    Head(crate::train::encpack::EncoderPack),
    Pack(crate::train::FeaturePack),
}

impl Readings {
    fn load(clf: &Classifier, clips: &[crate::corpus::Clip], cache: &Path) -> Result<Self> {
        Ok(match clf.card.features.encoder.is_some() {
            true => Self::Head(crate::train::encpack::EncoderPack::cached(
                cache,
                &clf.card.features,
                clips,
            )?),
            false => Self::Pack(cached_pack(cache, &clf.card.features, clips)?.0),
        })
    }

    /// Every clip's index.
    fn all(&self) -> Vec<usize> {
        let n = match self {
            Self::Head(p) => p.clips.len(),
            Self::Pack(p) => p.clips.len(),
        };
        (0..n).collect()
    }
}

/// What `clf`'s temperature is fitted on over `clips`: their window logits as `eval` reads
/// the model (a head under each profile it is read under, as `train` fits it).
fn fit_set(clf: &Classifier, clips: &[crate::corpus::Clip], cache: &Path) -> Result<FitSet> {
    let readings = Readings::load(clf, clips, cache)?;
    let idx = readings.all();
    let (owner, logits, truth) = match &readings {
        Readings::Head(pack) => crate::train::head::temperature_set(clf, pack, &idx)?,
        Readings::Pack(pack) => {
            let (owner, logits) = crate::train::window_logits(clf, pack, &idx)?;
            (owner, logits, clips.iter().map(|c| c.label).collect())
        }
    };
    Ok(FitSet {
        owner,
        logits,
        truth,
    })
}

/// The held-out figures of `clf` at its card's temperature on `test`, as `eval` gives them:
/// each profile a head on the encoder is read under, with its name, the first the card's
/// headline figure; one entry for any other model.
fn held_out(
    clf: &Classifier,
    test: &Readings,
) -> Result<
    Vec<(
        crate::train::ProfileScope,
        &'static str,
        crate::train::ClipEvaluation,
    )>,
> {
    let idx = test.all();
    let pack = match test {
        Readings::Head(pack) => pack,
        Readings::Pack(pack) => {
            return Ok(vec![(
                crate::train::ProfileScope::Speaker,
                "speaker",
                evaluate_clips(clf, pack, &idx)?,
            )])
        }
    };
    let mut out = Vec::new();
    for (scope, name) in crate::cli::head::report_scopes(&clf.card.features) {
        // A head that reads no profile reads every scope alike: one line is enough.
        if !clf.card.features.wants_profile() && !out.is_empty() {
            break;
        }
        if clf.card.features.enrolment()
            && !matches!(
                scope,
                crate::train::ProfileScope::Speaker | crate::train::ProfileScope::Enrolment
            )
        {
            continue;
        }
        let name = match scope {
            crate::train::ProfileScope::Speaker if clf.card.features.enrolment() => {
                "without an enrolment (any session profile)"
            }
            _ => name,
        };
        out.push((
            scope,
            name,
            crate::cli::head::evaluate(clf, pack, &idx, scope)?,
        ));
    }
    Ok(out)
}

pub fn calibrate(a: CalibrateArgs) -> Result<()> {
    let dir = model_dir(&a.model);
    if a.write && crate::model::is_builtin(&dir) {
        bail!("--write: the built-in model is part of the program and cannot be rewritten; calibrate a model folder instead (--model DIR, e.g. a copy of weights/encoder_head)");
    }
    let mut clf = load_model(&a.model, a.compute)?;
    let corpus = load_all(&a.data)?;
    let pick = |speakers: &[String]| -> Vec<crate::corpus::Clip> {
        corpus
            .clips
            .iter()
            .filter(|c| speakers.contains(&c.speaker))
            .cloned()
            .collect()
    };
    let (fit, what) = if a.out_of_fold.is_empty() {
        if clf.card.validation_speakers.is_empty() {
            bail!(
                "{} has no validation speakers (trained with --no-validation: its temperature was cross-fitted); refit it with --out-of-fold and fold models{}",
                display_name(&dir),
                match clf.card.arch {
                    Arch::Ensemble { .. } => ", or build the ensemble again with emoscope ensemble from members trained with --crossfit (it fits the ensemble's temperature on their out-of-fold readings)",
                    _ => ", or train it again with --crossfit K",
                }
            );
        }
        let val = pick(&clf.card.validation_speakers);
        if val.is_empty() {
            bail!(
                "none of the card's validation speakers ({}) are in --data",
                clf.card.validation_speakers.join(", ")
            );
        }
        (fit_set(&clf, &val, &a.cache)?, "validation")
    } else {
        (
            out_of_fold_set(&clf, &a.out_of_fold, &corpus.clips, &a.cache)?,
            "out-of-fold",
        )
    };
    let test = pick(&clf.card.test_speakers);
    let test = match test.is_empty() {
        true => None,
        false => Some(Readings::load(&clf, &test, &a.cache)?),
    };
    let old = clf.card.temperature;
    let t = crate::train::fit_temperature_by(&fit.owner, &fit.logits, &fit.truth, a.objective);
    let mut at_fitted = None;
    for (name, temp) in [("card", old), ("fitted", t)] {
        clf.card.temperature = temp;
        print!(
            "{name} temperature {temp:.3}: {what} ECE {:.3} (n={})",
            fit.ece(temp),
            fit.truth.len()
        );
        if let Some(test) = &test {
            let rows = held_out(&clf, test)?;
            match &rows[..] {
                // One reading: on the same line.
                [(_, _, (tm, _, _))] => print!(
                    "   held-out test ECE {:.3}, accuracy {:.1} % (n={})",
                    tm.ece,
                    tm.accuracy * 100.0,
                    tm.n
                ),
                // A head read under several profiles: a line each.
                _ => {
                    for (_, profile, (tm, _, _)) in &rows {
                        print!(
                            "\n    held-out test, {profile}: ECE {:.3}, accuracy {:.1} % (n={})",
                            tm.ece,
                            tm.accuracy * 100.0,
                            tm.n
                        );
                    }
                }
            }
            at_fitted = Some(rows);
        }
        println!();
    }
    if a.write {
        clf.card.temperature = t;
        // The card's test figures are those at the temperature it now has (where the
        // test speakers were in --data; otherwise they were not measured at it).
        match at_fitted {
            Some(rows) => {
                for (scope, _, (m, per_corpus, _)) in rows {
                    crate::cli::head::keep_test_figure(&mut clf.card, scope, m, per_corpus);
                }
            }
            None if clf.card.test_metrics.is_some() || clf.card.test_metrics_enrolled.is_some() => {
                clf.card.test_metrics = None;
                clf.card.test_metrics_enrolled = None;
                clf.card.test_metrics_per_corpus.clear();
                eprintln!("note: the card's test figures were measured at the old temperature and are removed; give --data with its test speakers to measure them at the new one");
            }
            None => {}
        }
        if !a.out_of_fold.is_empty() {
            clf.card.notes.push_str(&format!(
                "; temperature {t:.3} cross-fitted on {} out-of-fold clips of {} fold models (emoscope calibrate --out-of-fold), replacing {old:.3}",
                fit.truth.len(),
                a.out_of_fold.len()
            ));
        }
        clf.card.save(&dir)?;
        println!(
            "wrote temperature {t:.3} to {}",
            crate::model::model_files(&dir).0.display()
        );
    }
    Ok(())
}
