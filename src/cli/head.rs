//! `train --arch encoder_head`: heads on the frozen encoder, trained from the encoder
//! cache in seconds to minutes, held-out speakers (`--test-speakers`, where `corpus:*`
//! holds a whole corpus out) or k folds by speaker, each test figure under the three
//! speaker profiles a user meets: all of the speaker's clips, one emotion only, one clip.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::recognition::{print_metrics_by_corpus, TrainCmdArgs};
use crate::corpus::{load_all, parse_speaker_list, speaker_folds, speakers_of, Clip};
use crate::labels::LABELS;
use crate::model::{device_name, Arch, Classifier, ModelCard, CARD_VERSION};
use crate::train::encpack::EncoderPack;
use crate::train::head::{self, HeadRecipe};
use crate::train::ProfileScope as Scope;
use crate::train::{default_recipe, default_spec, validation_speakers, Optim};

/// The three profiles every test figure is given under, with their names.
pub const SCOPES: [(Scope, &str); 3] = [
    (
        Scope::Speaker,
        "speaker profile (all of the speaker's clips)",
    ),
    (
        Scope::Emotion,
        "one-emotion profile (speaker's clips of one emotion)",
    ),
    (Scope::Clip, "one clip alone"),
];

/// The profiles a test figure of a model of `spec` is given under: [`SCOPES`], and for an
/// enrolment model an enrolment too.
pub fn report_scopes(spec: &crate::features::FeatureSpec) -> Vec<(Scope, &'static str)> {
    let mut out = SCOPES.to_vec();
    if spec.enrolment() {
        out.push((
            Scope::Enrolment,
            "enrolment (the speaker's other clips labelled neutral)",
        ));
    }
    out
}

/// Keeps a test figure read under `scope` where the card holds it (the speaker profile's
/// as its headline, with the per-corpus figures; the enrolment's beside it; the others
/// only in `test.json`) and returns its row of `test.json`.
pub fn keep_test_figure(
    card: &mut ModelCard,
    scope: Scope,
    m: crate::model::Metrics,
    per_corpus: Vec<(String, crate::model::Metrics)>,
) -> serde_json::Value {
    let row = serde_json::json!({"profile": scope.name(), "metrics": m, "per_corpus": per_corpus});
    match scope {
        Scope::Speaker => {
            card.test_metrics = Some(m);
            card.test_metrics_per_corpus = per_corpus;
        }
        Scope::Enrolment => card.test_metrics_enrolled = Some(m),
        _ => {}
    }
    row
}

/// Metrics of clips `idx` of the pack under `scope`: overall and per corpus.
pub fn evaluate(
    clf: &Classifier,
    pack: &EncoderPack,
    idx: &[usize],
    scope: Scope,
) -> crate::Result<crate::train::ClipEvaluation> {
    let probs = head::clip_probs(clf, pack, idx, scope)?;
    let truth: Vec<usize> = idx.iter().map(|&i| pack.clips[i].label).collect();
    let corpora: Vec<&str> = idx.iter().map(|&i| pack.clips[i].corpus.as_str()).collect();
    let (overall, per_corpus) = crate::train::metrics_by_corpus(&probs, &truth, &corpora);
    Ok((overall, per_corpus, probs))
}

/// `corpus_*` entries of a test list stand for every speaker of that corpus.
fn expand(test: Vec<String>, clips: &[Clip]) -> Vec<String> {
    let all = speakers_of(clips);
    let mut out = Vec::new();
    for t in test {
        match t.strip_suffix("_*") {
            Some(corpus) => out.extend(
                all.iter()
                    .filter(|s| s.starts_with(&format!("{corpus}_")))
                    .cloned(),
            ),
            None => out.push(t),
        }
    }
    out
}

pub fn train(a: TrainCmdArgs, arch: Arch) -> Result<()> {
    if a.pack.is_some() || a.data.is_empty() {
        bail!("encoder_head trains from --data KIND=PATH (its encoder cache is built and found under --cache)");
    }
    if a.no_validation && a.crossfit.is_none() && !a.crossfit_corpora {
        bail!("--no-validation leaves no speakers to fit the temperature on: add --crossfit K (e.g. 4) or --crossfit-corpora");
    }
    let mut spec = default_spec(&arch);
    crate::cli::encode::LevelArg::apply(a.level_db, &mut spec)?;
    let corpus = load_all(&a.data)?;
    for line in corpus.report() {
        eprintln!("note: {line}");
    }
    let pack = EncoderPack::cached(&a.cache, &spec, &corpus.clips)?;
    let copies = a
        .augment_encoder
        .iter()
        .map(|&seed| EncoderPack::cached_augmented(&a.cache, &spec, &corpus.clips, seed))
        .collect::<crate::error::Result<Vec<_>>>()?;
    let aug = EncoderPack::concat(copies);
    // The pack holds every clip given; --only narrows what trains and tests.
    let usable: Vec<usize> = (0..pack.clips.len())
        .filter(|&i| a.only.is_empty() || a.only.contains(&pack.clips[i].corpus))
        .collect();
    let clips: Vec<Clip> = usable.iter().map(|&i| pack.clips[i].clone()).collect();
    let base = default_recipe(&arch);
    let Optim::AdamW { lr, weight_decay } = base.optim else {
        unreachable!("encoder heads train with AdamW")
    };
    let recipe = HeadRecipe {
        epochs: a.epochs.unwrap_or(base.epochs),
        batch_size: a.batch_size.unwrap_or(base.batch_size),
        lr: a.lr.unwrap_or(lr),
        weight_decay,
        l2: a.l2.unwrap_or(base.l2),
        seed: a.seed,
        balance_corpora: a.balance_corpora || base.balance_corpora,
        seeds: usize::from(a.average_seeds),
    };
    let Some(out_dir) = a.out.clone() else {
        bail!("--out DIR is needed to train");
    };
    let sources: Vec<String> = a.data.iter().map(|d| d.to_string()).collect();
    let device = a.compute.device();
    let run = |test: Vec<String>, out: &Path| -> Result<Vec<serde_json::Value>> {
        let test = expand(test, &clips);
        let validation = match a.no_validation {
            true => Vec::new(),
            false => validation_speakers(&clips, &test),
        };
        eprintln!(
            "test speakers: {}; validation speakers: {}",
            test.join(","),
            match validation.is_empty() {
                true => "none (--no-validation)".to_string(),
                false => validation.join(","),
            }
        );
        let pick = |f: &dyn Fn(&Clip) -> bool| -> Vec<usize> {
            usable
                .iter()
                .copied()
                .filter(|&i| f(&pack.clips[i]))
                .collect()
        };
        let te = pick(&|c| test.contains(&c.speaker));
        let va = pick(&|c| validation.contains(&c.speaker));
        let tr = pick(&|c| !test.contains(&c.speaker) && !validation.contains(&c.speaker));
        if tr.is_empty() {
            bail!("no training clips left once test and validation speakers are held out");
        }
        let card = ModelCard {
            card_version: CARD_VERSION,
            emoscope_version: env!("CARGO_PKG_VERSION").into(),
            arch: arch.clone(),
            features: spec.clone(),
            labels: LABELS.iter().map(|s| s.to_string()).collect(),
            temperature: 1.0,
            training_data: sources.clone(),
            speaker_dependent: false,
            protocol: format!(
                "speaker-independent: test speakers {} never seen in training; {}; {}",
                if test.is_empty() { "(none)".to_string() } else { test.join(", ") },
                match validation.is_empty() {
                    true => "no validation speakers: every other speaker trains, for the recipe's fixed epochs".to_string(),
                    false => format!("validation speakers {} used only to pick the epoch and fit the temperature", validation.join(", ")),
                },
                if spec.enrolment() {
                    "each window is read against the speaker's enrolment, speech they recorded in a neutral voice before the session (--enrol; a head trained half with enrolments of the speaker's other clips labelled neutral, half without), or alone without one; the session's own speech never enters it"
                } else if spec.calm_gate().is_some() {
                    "each window is read with a calm reference: the speaker's speech heard so far that the card's calm gate calls neutral or calm (a head trained with references of all of a speaker's clips, of one clip and of a few clips); a session with no calm speech is read window by window"
                } else if spec.wants_profile() {
                    "each window is read with the profile of the speaker's speech heard so far (a head trained with profiles of all of a speaker's clips, of one emotion only, of one clip and of a few clips)"
                } else {
                    "no speaker profile: each window is read alone, so one clip, a session in one emotion and a whole session are read alike"
                }
            ),
            test_speakers: test.clone(),
            validation_speakers: validation.clone(),
            train_speakers: speakers_of(&tr.iter().map(|&i| pack.clips[i].clone()).collect::<Vec<_>>()),
            epochs: recipe.epochs,
            seed: a.seed,
            test_metrics: None,
            test_metrics_per_corpus: Vec::new(),
            test_metrics_enrolled: None,
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            notes: "frozen encoder: Whisper base (MIT), blocks 0-3, weights/whisper_base".into(),
            base_model: None,
        };
        let mut clf = Classifier::new(card, &device)?;
        let bar = indicatif::ProgressBar::new(recipe.epochs as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "epoch {pos}/{len} {bar:30} {msg} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("template"),
        );
        let t0 = std::time::Instant::now();
        head::train(
            &mut clf,
            &pack,
            aug.as_ref(),
            &tr,
            &va,
            &recipe,
            &|e, loss, acc| {
                bar.set_position(e as u64 + 1);
                bar.set_message(format!(
                    "loss {loss:.3}, validation accuracy {:.1} %",
                    acc * 100.0
                ));
            },
        )?;
        bar.finish_and_clear();
        let temperature = match va.is_empty() {
            true => "no validation speakers: the temperature comes from cross-fitting".to_string(),
            false => format!(
                "temperature {:.3} (validation speakers)",
                clf.card.temperature
            ),
        };
        eprintln!(
            "trained in {:.1} s on {}; {temperature}",
            t0.elapsed().as_secs_f64(),
            device_name(&device),
        );
        // Cross-fitted temperature: heads trained without one fold of the non-test
        // speakers (a k-th of them, or a whole corpus) predict that fold.
        let fit: Vec<Clip> = tr
            .iter()
            .chain(&va)
            .map(|&i| pack.clips[i].clone())
            .collect();
        let folds = match (a.crossfit, a.crossfit_corpora) {
            (Some(k), _) => Some((speaker_folds(&fit, k)?, "speakers")),
            (None, true) => Some((super::recognition::corpus_folds(&fit)?, "corpora")),
            _ => None,
        };
        if folds.is_none() {
            // A run into the folder of an earlier cross-fitted one: its readings are not
            // this model's.
            let _ = std::fs::remove_file(out.join(crate::train::oof::FILE));
        }
        if let Some((folds, by)) = folds {
            // What the fold heads read: the temperature is fitted on it, and it is kept
            // for `emoscope ensemble`, which fits an ensemble's temperature on its
            // members' readings averaged.
            let mut oof = crate::train::oof::OutOfFold {
                by: by.to_string(),
                ..Default::default()
            };
            for (f, fold) in folds.iter().enumerate() {
                let held: Vec<usize> = tr
                    .iter()
                    .chain(&va)
                    .copied()
                    .filter(|&i| fold.contains(&pack.clips[i].speaker))
                    .collect();
                let rest: Vec<usize> = tr
                    .iter()
                    .copied()
                    .filter(|&i| !fold.contains(&pack.clips[i].speaker))
                    .collect();
                let rest_va: Vec<usize> = va
                    .iter()
                    .copied()
                    .filter(|&i| !fold.contains(&pack.clips[i].speaker))
                    .collect();
                let mut m = Classifier::new(clf.card.clone(), &device)?;
                head::train(
                    &mut m,
                    &pack,
                    aug.as_ref(),
                    &rest,
                    &rest_va,
                    &recipe,
                    &|_, _, _| {},
                )?;
                let calm = head::admitted_by(&pack, &m.card.features);
                // An enrolment model is calibrated with and without its enrolment.
                let scopes: &[Scope] = match m.card.features.enrolment() {
                    true => head::read_scopes(&m.card.features),
                    false => &[Scope::Speaker],
                };
                for &scope in scopes {
                    let (o, x) = head::inputs(&pack, &held, scope, calm.as_deref());
                    let base = oof.readings.len();
                    oof.owner.extend(o.iter().map(|k| k + base));
                    oof.logits.extend(head::logits(&m, &x)?);
                    oof.readings
                        .extend(held.iter().map(|&i| crate::train::oof::Reading {
                            clip: pack.clips[i].path.display().to_string(),
                            profile: scope.name().to_string(),
                            label: pack.clips[i].label,
                        }));
                }
                eprintln!(
                    "cross-fitting fold {}/{} ({by}): {} clips",
                    f + 1,
                    folds.len(),
                    held.len()
                );
            }
            let truth: Vec<usize> = oof.readings.iter().map(|r| r.label).collect();
            clf.card.temperature = crate::train::fit_temperature(&oof.owner, &oof.logits, &truth);
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            oof.save(out)?;
            clf.card.protocol += &format!("; the temperature is cross-fitted over {by}: {} heads, each trained without one fold of the non-test speakers, predicted that fold", folds.len());
            eprintln!("cross-fitted temperature {:.3}", clf.card.temperature);
        }
        let mut rows = Vec::new();
        if !te.is_empty() {
            for (scope, name) in report_scopes(&clf.card.features) {
                let (m, per, _) = evaluate(&clf, &pack, &te, scope)?;
                print_metrics_by_corpus(&format!("held-out test, {name}"), &m, &per);
                rows.push(keep_test_figure(&mut clf.card, scope, m, per));
            }
        }
        clf.save(out)?;
        crate::util::write_atomic(
            &out.join("test.json"),
            serde_json::to_string_pretty(&rows)?.as_bytes(),
        )?;
        eprintln!("saved to {}", out.display());
        Ok(rows)
    };
    if let Some(k) = a.folds {
        let folds = speaker_folds(&clips, k)?;
        let mut all = Vec::new();
        for (i, f) in folds.iter().enumerate() {
            if a.fold.is_some_and(|only| only != i + 1) {
                continue;
            }
            all.push(run(f.clone(), &out_dir.join(format!("fold{}", i + 1)))?);
        }
        for (j, (_, name)) in report_scopes(&spec).iter().enumerate() {
            let mean = |key: &str| {
                all.iter()
                    .map(|r| r[j]["metrics"][key].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
                    / all.len() as f64
            };
            println!(
                "{} folds, {name}: mean accuracy {:.1} %  UAR {:.3}  ECE {:.3}",
                all.len(),
                mean("accuracy") * 100.0,
                mean("uar"),
                mean("ece")
            );
        }
        crate::util::write_atomic(
            &out_dir.join("folds.json"),
            serde_json::to_string_pretty(&all)?.as_bytes(),
        )?;
    } else {
        let test = match &a.test_speakers {
            Some(t) => parse_speaker_list(t)?,
            None => Vec::new(),
        };
        run(test, &out_dir)?;
    }
    Ok(())
}
