//! `emoscope train`: train a model on corpora with held-out test speakers, speaker folds or
//! cross-fitted calibration, and print its scores per corpus.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::corpus::Clip;
use crate::corpus::{holdout, load_all, parse_speaker_list, speaker_folds, DataSource};
use crate::model::{device_name, Arch, Metrics};
use crate::train::{
    cached_pack, default_recipe, default_spec, evaluate_clips, train as train_model,
    validation_speakers, FeaturePack, Optim, Split, TrainArgs,
};

use super::calibrate::FitSet;
use super::models::ComputeArg;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope train --data ravdess=../shared/data/ravdess --arch emocnn --test-speakers ravdess:1,2 --out weights/emocnn\n  \
    emoscope train --data ravdess=../shared/data/ravdess --data csv=../shared/data/emovo/labels.csv --arch emocnn --folds 6 --out runs/cv\n  \
    emoscope train --pack cache/ab12.pack --arch paper1_cnn --test-speakers ravdess:1,2 --out runs/p1\n  \
    emoscope train --data ravdess=D/ravdess --data csv=D/emovo/labels.csv --arch encoder_head --test-speakers \"ravdess:1,2;emovo:f1\" --out runs/head\n  \
    emoscope train ... --arch encoder_head --test-speakers emovo_* --out runs/loco-emovo   (a whole corpus)\n\n\
    Heads on the encoder train from its cache (built once by `emoscope encode` or on first use, about\n\
    0.1 s of CPU per 3 s window) in seconds, and print every test figure under three speaker\n\
    profiles: all of the speaker's clips, one emotion only, one clip alone.\n\n\
    Architectures: paper1_cnn, paper1_lstm, fser, emocnn, prosody, fusion, encoder_head, encoder_head_profile, encoder_head_calm, encoder_head_enrol. Features are computed once and cached\n\
    (--cache); the test speakers never enter training; validation speakers (taken from the\n\
    training speakers) pick the best epoch and fit the softmax temperature.")]
pub struct TrainCmdArgs {
    #[command(flatten)]
    pub compute: ComputeArg,
    /// Labelled data as KIND=PATH (ravdess, emovo, emodb, savee, tess, cremad, csv); repeat for several corpora.
    #[arg(long)]
    pub data: Vec<DataSource>,
    /// Train from a feature pack written by an earlier run (no audio needed).
    #[arg(long, conflicts_with = "data")]
    pub pack: Option<PathBuf>,
    /// Architecture: paper1_cnn, paper1_lstm, fser, emocnn, prosody (an MLP on
    /// speaker-normalised prosody functionals), fusion (emocnn, width 8, and prosody
    /// together), encoder_head (a linear head on the frozen Whisper base encoder's third
    /// block), encoder_head_profile (the same reading the speaker profile too),
    /// encoder_head_calm (the same reading the speaker's calm reference: the mean of the
    /// windows a fitted gate calls neutral or calm, so a session in one emotion is not read
    /// against itself) or encoder_head_enrol (the built-in default's architecture: the same
    /// reading an enrolment, the speaker's neutral speech recorded before the session,
    /// `--enrol`; trained with each speaker's other neutral clips as theirs).
    #[arg(long, default_value = "fusion")]
    pub arch: String,
    /// Speakers held out for testing, e.g. `ravdess:1,2` or `ravdess:1,2;emovo:f1`.
    #[arg(long)]
    pub test_speakers: Option<String>,
    /// Instead of one held-out set: K folds of whole speakers, one model per fold.
    #[arg(long, conflicts_with = "test_speakers")]
    pub folds: Option<usize>,
    /// A seeded random split of clips instead of held-out speakers, as some papers report
    /// (`random:FRACTION:SEED`, e.g. `random:0.2:42`: 20 % of each label's clips test, 10 %
    /// of the rest validation). SPEAKER-DEPENDENT: the same speakers are in training and
    /// test, so the figure is not one on new voices; the card, `eval` and the window say so.
    #[arg(long, value_parser = parse_random_split, conflicts_with_all = ["test_speakers", "folds", "crossfit", "crossfit_corpora"])]
    pub split: Option<(f64, u64)>,
    /// Training epochs (default: the architecture's recipe).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the architecture's recipe).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Channel width of emocnn's first block (default 24 for emocnn, 8 for fusion; later
    /// blocks 2x and 4x); for an encoder head, a hidden layer of this many units (an MLP
    /// head; default none, a linear head).
    #[arg(long)]
    pub width: Option<usize>,
    /// Encoder heads: the representation the head reads, 0 (the front end) to 4 (the
    /// fourth block); default 3. Heads on different representations of the same clips
    /// make an ensemble (`emoscope ensemble`), as the default is made.
    #[arg(long, value_name = "L", value_parser = clap::value_parser!(u8).range(0..=4))]
    pub layer: Option<u8>,
    /// Feature normalisation (default: the architecture's): `utterance` removes each band's
    /// mean over the window, `level` only the overall level, `speaker` each band's mean and
    /// spread over all of the speaker's speech.
    #[arg(long, value_enum)]
    pub norm: Option<crate::features::Normalisation>,
    /// Stop training after this many minutes and finish with the best epoch so far
    /// (calibrated, evaluated, saved; the card says so).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// L2 penalty on the weights added to the loss (default: the architecture's recipe).
    #[arg(long)]
    pub l2: Option<f64>,
    /// Encoder heads: also train on one perturbed copy of every training clip per seed
    /// given (speed ±10 %, white noise at 10-25 dB SNR, drawn from the seed; each encoded
    /// once and cached), e.g. `1` or `1,2`.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub augment_encoder: Vec<u64>,
    /// Encoder heads: read every window at this level, its dB mel shifted so its loudest
    /// value reads LEVEL_DB dB (the card's `level_db`), so the microphone's gain does not
    /// move the reading; `recorded`: at the level each clip was recorded (as models before
    /// 2026-12-06). Default: 8 dB.
    #[arg(long, value_name = "LEVEL_DB|recorded", allow_hyphen_values = true)]
    pub level_db: Option<crate::cli::encode::LevelArg>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory for the model (card.json, model.safetensors, checkpoint/); not
    /// needed with --pack-only.
    #[arg(long, required_unless_present = "pack_only")]
    pub out: Option<PathBuf>,
    /// With --folds: run only this fold (1-based), e.g. to run folds in parallel.
    #[arg(long, requires = "folds")]
    pub fold: Option<usize>,
    /// Use only the clips of these corpora (e.g. `ravdess`), by name as in the pack.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Continue from out/checkpoint after an interruption.
    #[arg(long)]
    pub resume: bool,
    /// Feature cache folder.
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
    /// Turn augmentation off (emocnn trains with it by default).
    #[arg(long)]
    pub no_augment: bool,
    /// With several corpora, give each an equal share of every epoch (smaller corpora
    /// drawn more often) instead of sampling clips uniformly.
    #[arg(long)]
    pub balance_corpora: bool,
    /// Train on every window of each clip, FRAMES apart from its start, all of them each
    /// epoch, instead of one random crop of each clip an epoch (the window models: CNNs
    /// and LSTMs; e.g. 16 for FSER, as scripts/fser_torch.py draws). The card's notes say so.
    #[arg(long, value_name = "FRAMES", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub every_window: Option<u32>,
    /// Encoder heads: train the linear head from this many seeds (--seed, --seed + 1, ...),
    /// each picking its own epoch, and keep the mean of their weights: the mean of their
    /// logits at one head's cost. Heads with a hidden layer: train one per --seed and
    /// join them with `emoscope ensemble` (the default is three such heads).
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub average_seeds: u16,
    /// Only build the feature pack and print its path.
    #[arg(long)]
    pub pack_only: bool,
    /// Calibrate by cross-fitting: K more models, each trained without one K-th of the
    /// training speakers, predict those speakers; the temperature is fitted on these
    /// out-of-fold predictions over every training speaker (instead of on the few
    /// validation speakers). Costs K more trainings (per fold, with --folds: encoder heads
    /// only).
    #[arg(long)]
    pub crossfit: Option<usize>,
    /// Calibrate by cross-fitting over whole corpora: one more model per corpus, trained
    /// on the other corpora alone, predicts it, and the temperature is fitted on those
    /// predictions. For a model meant for languages and microphones it never heard: its
    /// confidence then reflects how well it does on a new corpus (expect it a little
    /// unsure on new speakers of its own corpora). Needs two corpora or more.
    #[arg(long, conflicts_with = "crossfit")]
    pub crossfit_corpora: bool,
    /// Heads on the encoder only: hold back no validation speakers; every speaker who is
    /// not a test speaker trains, for the recipe's fixed epochs (the last is kept), and the
    /// temperature comes from cross-fitting, so --crossfit K or --crossfit-corpora is
    /// required. More voices to learn from where a corpus has few.
    #[arg(long)]
    pub no_validation: bool,
}

/// Parses `random:FRACTION:SEED`.
fn parse_random_split(s: &str) -> std::result::Result<(f64, u64), String> {
    let bad = || format!("'{s}': expected random:FRACTION:SEED, e.g. random:0.2:42");
    let rest = s.strip_prefix("random:").ok_or_else(bad)?;
    let (f, seed) = rest.split_once(':').ok_or_else(bad)?;
    let f: f64 = f.parse().map_err(|_| bad())?;
    if !(f > 0.0 && f < 1.0) {
        return Err(format!("'{s}': the test fraction must be between 0 and 1"));
    }
    Ok((f, seed.parse().map_err(|_| bad())?))
}

pub(in crate::cli) fn print_metrics(title: &str, m: &Metrics) {
    println!(
        "{title}: n={} accuracy {:.1} %  UAR {:.3}  macro F1 {:.3}  ROC-AUC {}  ECE {:.3} (by chance {:.3})",
        m.n,
        m.accuracy * 100.0,
        m.uar,
        m.macro_f1,
        crate::train::metrics::fmt_optional(m.roc_auc_mean),
        m.ece,
        m.ece_by_chance
    );
}

/// `print_metrics` for the whole set, then each corpus of it on its own indented line.
pub(in crate::cli) fn print_metrics_by_corpus(
    title: &str,
    m: &Metrics,
    per_corpus: &[(String, Metrics)],
) {
    print_metrics(title, m);
    for (c, pm) in per_corpus {
        print_metrics(&format!("    {c}"), pm);
    }
}

pub fn train(a: TrainCmdArgs) -> Result<()> {
    let arch = Arch::from_name(&a.arch).with_context(|| {
        format!(
            "unknown --arch '{}'; choose one of {}",
            a.arch,
            Arch::NAMES.join(", ")
        )
    })?;
    if matches!(arch, Arch::EncoderHead { .. }) {
        if a.split.is_some() {
            bail!("--split applies to the networks trained on feature packs (paper1_cnn, paper1_lstm, fser, emocnn, prosody, fusion), not to encoder heads");
        }
        if a.every_window.is_some() {
            bail!("--every-window applies to the networks trained on feature packs (paper1_cnn, paper1_lstm, fser, emocnn, prosody, fusion); an encoder head already trains on every window of its cache");
        }
        let mut arch = arch;
        if let (Arch::EncoderHead { hidden, .. }, Some(width)) = (&mut arch, a.width) {
            if width == 0 || width > 4096 {
                bail!("--width {width}: an encoder head's hidden layer takes 1 to 4096 units");
            }
            *hidden = width;
        }
        if let (Arch::EncoderHead { layer, .. }, Some(l)) = (&mut arch, a.layer) {
            *layer = Some(l as usize);
        }
        return crate::cli::head::train(a, arch);
    }
    if a.folds.is_some() && (a.crossfit.is_some() || a.crossfit_corpora) {
        bail!("--crossfit with --folds applies to encoder heads only; calibrate each fold's model afterwards with emoscope calibrate --out-of-fold");
    }
    if a.no_validation {
        bail!("--no-validation applies to encoder heads only (the networks on feature packs pick their epoch on the validation speakers)");
    }
    if a.level_db.is_some() {
        bail!("--level-db applies to encoder heads only");
    }
    if a.layer.is_some() {
        bail!("--layer applies to encoder heads only (the representation of the encoder a head reads)");
    }
    let arch = match (arch, a.width) {
        (Arch::EmoCnn { .. }, Some(width)) => Arch::EmoCnn { width },
        (Arch::Fusion { .. }, Some(width)) => Arch::Fusion { width },
        (_, Some(_)) => bail!("--width applies to emocnn, fusion and encoder heads only"),
        (arch, None) => arch,
    };
    let mut spec = default_spec(&arch);
    if let Some(n) = a.norm {
        spec.normalisation = n;
    }
    let spec = spec;
    let (pack, mut sources) = match (&a.pack, a.data.is_empty()) {
        (Some(p), _) => {
            let pack = FeaturePack::load(p)?;
            if !pack.dsp_matches(&spec) {
                bail!("{}: pack was computed for other features than {} needs (sr {}, n_fft {}, hop {}, {} mels, {}-{} Hz)", p.display(), arch.name(), spec.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels, spec.fmin, spec.fmax_hz());
            }
            let mut pack = pack;
            pack.spec = spec.clone();
            let mut corpora: Vec<String> = pack.clips.iter().map(|c| c.clip.corpus.clone()).collect();
            corpora.dedup();
            (pack, corpora.into_iter().map(|c| format!("{c} (feature pack {})", p.display())).collect::<Vec<String>>())
        }
        (None, true) => bail!("no training data: pass --data KIND=PATH (e.g. --data ravdess=../shared/data/ravdess) or --pack FILE"),
        (None, false) => {
            let corpus = load_all(&a.data)?;
            for line in corpus.report() {
                eprintln!("note: {line}");
            }
            eprintln!("{} clips from {} speakers", corpus.clips.len(), crate::corpus::speakers_of(&corpus.clips).len());
            let (pack, path) = cached_pack(&a.cache, &spec, &corpus.clips)?;
            eprintln!("features: {}", path.display());
            if a.pack_only {
                println!("{}", path.display());
                return Ok(());
            }
            (pack, a.data.iter().map(|d| d.to_string()).collect())
        }
    };
    let Some(out_dir) = a.out.clone() else {
        bail!("--out DIR is needed to train (only --pack-only goes without)");
    };
    let mut pack = pack;
    if !a.only.is_empty() {
        pack.clips.retain(|c| a.only.contains(&c.clip.corpus));
        if pack.clips.is_empty() {
            bail!(
                "--only {}: no clips of these corpora in the data",
                a.only.join(",")
            );
        }
        sources.retain(|s| a.only.iter().any(|o| s.contains(o.as_str())));
    }
    // A random split files each clip under a pseudo-speaker of its side (`<speaker>~test`,
    // `<speaker>~val`), so the speaker-based training below keeps the sides apart.
    let random_sides = match a.split {
        Some((fraction, seed)) => {
            let clips: Vec<_> = pack.clips.iter().map(|c| c.clip.clone()).collect();
            let sides = crate::corpus::random_split(&clips, fraction, seed)?;
            for (c, side) in pack.clips.iter_mut().zip(&sides) {
                c.clip.speaker = crate::corpus::side_speaker(&c.clip.speaker, *side);
            }
            let renamed: Vec<_> = pack.clips.iter().map(|c| c.clip.clone()).collect();
            let named = |side: crate::corpus::Side| -> Vec<String> {
                let suffix = crate::corpus::side_speaker("", side);
                crate::corpus::speakers_of(&renamed)
                    .into_iter()
                    .filter(|s| s.ends_with(&suffix))
                    .collect()
            };
            eprintln!(
                "random split of clips (fraction {fraction}, seed {seed}): SPEAKER-DEPENDENT, the same speakers are in training and test"
            );
            Some((
                named(crate::corpus::Side::Test),
                named(crate::corpus::Side::Validation),
            ))
        }
        None => None,
    };
    let pack = pack;
    let mut recipe = default_recipe(&arch);
    if let Some(e) = a.epochs {
        recipe.epochs = e;
    }
    if let Some(b) = a.batch_size {
        recipe.batch_size = b;
    }
    if let Some(lr) = a.lr {
        recipe.optim = match recipe.optim {
            Optim::AdamW { weight_decay, .. } => Optim::AdamW { lr, weight_decay },
            Optim::Sgd { .. } => Optim::Sgd { lr },
        };
    }
    recipe.max_seconds = a.max_minutes.map(|m| m * 60.0);
    recipe.balance_corpora |= a.balance_corpora;
    recipe.every_window = a.every_window.map(|f| f as usize);
    if a.no_augment {
        recipe.augment = crate::train::Augment::NONE;
        recipe.mixup_alpha = 0.0;
    }
    let clips: Vec<_> = pack.clips.iter().map(|c| c.clip.clone()).collect();
    let device = a.compute.device();
    eprintln!("device: {}", device_name(&device));
    let run = |test: Vec<String>, out: &Path| -> Result<crate::train::TrainOutcome> {
        if !test.is_empty() {
            holdout(&clips, &test)?;
        }
        let validation = match &random_sides {
            Some((_, validation)) => validation.clone(),
            None => validation_speakers(&clips, &test),
        };
        eprintln!(
            "test speakers: {}; validation speakers: {}",
            test.join(","),
            validation.join(",")
        );
        Ok(train_model(
            &pack,
            TrainArgs {
                arch: arch.clone(),
                recipe,
                seed: a.seed,
                split: Split {
                    test,
                    validation,
                    random: a.split,
                },
                out,
                resume: a.resume,
                training_data: sources.clone(),
                device: device.clone(),
            },
        )?)
    };
    if let Some(k) = a.folds {
        let folds = speaker_folds(&clips, k)?;
        let mut rows = Vec::new();
        for (i, f) in folds.iter().enumerate() {
            if a.fold.is_some_and(|only| only != i + 1) {
                continue;
            }
            let out = out_dir.join(format!("fold{}", i + 1));
            let o = run(f.clone(), &out)?;
            let m = o.test_metrics.clone().expect("fold has test clips");
            print_metrics_by_corpus(
                &format!("fold {} ({})", i + 1, f.join(",")),
                &m,
                &o.per_corpus,
            );
            rows.push(serde_json::json!({"fold": i + 1, "test_speakers": f, "metrics": m, "per_corpus": o.per_corpus, "seconds_per_epoch": o.seconds_per_epoch}));
        }
        // Mean over the folds where the metric is defined (ROC-AUC is not on a fold of
        // one label); `None` when it is defined on none.
        let mean_of = |key: &str| {
            let v: Vec<f64> = rows
                .iter()
                .filter_map(|r| r["metrics"][key].as_f64())
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let mean = |key: &str| mean_of(key).unwrap_or(0.0);
        let summary = serde_json::json!({"arch": arch.name(), "folds": rows, "mean_accuracy": mean("accuracy"), "mean_uar": mean("uar"), "mean_roc_auc": mean_of("roc_auc_mean"), "mean_ece": mean("ece")});
        crate::util::write_atomic(
            &out_dir.join("folds.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        println!(
            "{k}-fold mean: accuracy {:.1} %  UAR {:.3}  ROC-AUC {}  ECE {:.3}  ({})",
            mean("accuracy") * 100.0,
            mean("uar"),
            crate::train::metrics::fmt_optional(mean_of("roc_auc_mean")),
            mean("ece"),
            out_dir.join("folds.json").display()
        );
    } else {
        let test = match (&a.test_speakers, &random_sides) {
            (Some(t), _) => parse_speaker_list(t)?,
            (None, Some((test, _))) => test.clone(),
            (None, None) => Vec::new(),
        };
        let mut o = run(test.clone(), &out_dir)?;
        let folds = if let Some(k) = a.crossfit {
            if k < 2 {
                bail!("--crossfit {k}: needs at least 2 folds");
            }
            Some((
                speaker_folds(&training_clips(&clips, &test), k)?,
                "speakers",
            ))
        } else if a.crossfit_corpora {
            Some((corpus_folds(&training_clips(&clips, &test))?, "corpora"))
        } else {
            None
        };
        if let Some((folds, by)) = folds {
            crossfit_temperature(&pack, &test, &folds, by, &out_dir, &run, &mut o)?;
        }
        let pace = match o.seconds_per_epoch {
            Some(s) => format!("{s:.1} s per epoch"),
            None => "no epoch left to train: every planned epoch was done before".to_string(),
        };
        println!(
            "{} saved to {} ({pace} on {})",
            arch.name(),
            out_dir.display(),
            device_name(&device)
        );
        if let Some(m) = &o.test_metrics {
            let title = if a.split.is_some() {
                "random-split test (SPEAKER-DEPENDENT: the same speakers are in training)"
            } else {
                "held-out test"
            };
            print_metrics_by_corpus(title, m, &o.per_corpus);
        }
    }
    Ok(())
}

/// The clips of every speaker but `test`'s.
pub(in crate::cli) fn training_clips(clips: &[Clip], test: &[String]) -> Vec<Clip> {
    clips
        .iter()
        .filter(|c| !test.contains(&c.speaker))
        .cloned()
        .collect()
}

/// One fold per corpus: its speakers.
pub(in crate::cli) fn corpus_folds(clips: &[Clip]) -> Result<Vec<Vec<String>>> {
    let mut by: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for c in clips {
        by.entry(c.corpus.as_str()).or_default().insert(&c.speaker);
    }
    if by.len() < 2 {
        bail!(
            "--crossfit-corpora: the training data is one corpus ({}); give two or more --data sources, or use --crossfit K",
            by.keys().next().copied().unwrap_or("none")
        );
    }
    Ok(by
        .into_values()
        .map(|s| s.into_iter().map(str::to_string).collect())
        .collect())
}

/// Refits `o`'s temperature on out-of-fold predictions: for each of `folds` (speakers
/// cut into groups, or whole corpora: `by`), a model trained without that fold (and
/// without `test`) predicts it, and the temperature minimising clip-level NLL over all of
/// them replaces the one fitted on validation speakers; test metrics are recomputed and
/// the model saved again.
pub(in crate::cli) fn crossfit_temperature(
    pack: &FeaturePack,
    test: &[String],
    folds: &[Vec<String>],
    by: &str,
    out_dir: &Path,
    run: &dyn Fn(Vec<String>, &Path) -> Result<crate::train::TrainOutcome>,
    o: &mut crate::train::TrainOutcome,
) -> Result<()> {
    let k = folds.len();
    let mut set = FitSet::default();
    for (i, fold) in folds.iter().enumerate() {
        eprintln!("cross-fitting {}/{k}: predicting {}", i + 1, fold.join(","));
        let mut held: Vec<String> = test.to_vec();
        held.extend(fold.iter().cloned());
        let f = run(
            held,
            &out_dir.join("crossfit").join(format!("fold{}", i + 1)),
        )?;
        let idx: Vec<usize> = (0..pack.clips.len())
            .filter(|&j| fold.contains(&pack.clips[j].clip.speaker))
            .collect();
        let (ow, lg) = crate::train::window_logits(&f.classifier, pack, &idx)?;
        set.extend(
            ow,
            lg,
            idx.iter().map(|&j| pack.clips[j].clip.label).collect(),
        );
    }
    let t = crate::train::fit_temperature(&set.owner, &set.logits, &set.truth);
    let clf = &mut o.classifier;
    eprintln!(
        "cross-fitted temperature {t:.3} on {} out-of-fold clips (validation speakers gave {:.3})",
        set.truth.len(),
        clf.card.temperature
    );
    let what = if by == "corpora" {
        "one whole corpus of the training data"
    } else {
        "one fold of the training speakers"
    };
    clf.card.notes.push_str(&format!(
        "; temperature {t:.3} cross-fitted over {by}: {k} models each trained without {what} predicted it ({} clips), replacing {:.3} from the validation speakers",
        set.truth.len(),
        clf.card.temperature
    ));
    clf.card.temperature = t;
    clf.card.protocol = clf.card.protocol.replace(
        " and fit the temperature",
        &format!("; the temperature is cross-fitted on out-of-fold predictions of every non-test speaker ({by} held out in turn)"),
    );
    let te: Vec<usize> = (0..pack.clips.len())
        .filter(|&j| test.contains(&pack.clips[j].clip.speaker))
        .collect();
    if !te.is_empty() {
        let (m, pc, _) = evaluate_clips(clf, pack, &te)?;
        clf.card.test_metrics = Some(m.clone());
        clf.card.test_metrics_per_corpus = pc.clone();
        o.test_metrics = Some(m);
        o.per_corpus = pc;
    }
    clf.save(out_dir)?;
    Ok(())
}
