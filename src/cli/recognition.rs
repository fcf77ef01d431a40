//! The recognition commands: `analyze`, `train`, `eval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::analysis::{analyze_samples, analyze_samples_with, learn_speaker};
use crate::audio::{decode_input, resample};
use crate::corpus::Clip;
use crate::corpus::{holdout, load_all, parse_speaker_list, speaker_folds, DataSource};
use crate::features::SpeakerProfile;
use crate::labels::{LABELS, N_LABELS};
use crate::model::{device_name, display_name, Arch, Classifier, Compute, Metrics, BUILTIN_MODEL};
use crate::train::{
    cached_pack, default_recipe, default_spec, evaluate_clips, train as train_model,
    validation_speakers, FeaturePack, Optim, Split, TrainArgs,
};

/// `--model`, else `$EMOSCOPE_MODEL`, else the default model compiled into the binary
/// ([`BUILTIN_MODEL`], `weights/encoder_head` as of the build): no folder beside the binary or
/// the source tree is needed.
pub(super) fn model_dir(m: &Option<PathBuf>) -> PathBuf {
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
    pub(super) fn device(self) -> candle_core::Device {
        let placement = crate::model::place(self.compute);
        if let Some(why) = &placement.fallback {
            eprintln!("warning: {why}; the model runs on the CPU");
        }
        placement.device
    }
}

/// Loads the model (`None`: the default) on `device`.
fn load_model_on(m: &Option<PathBuf>, device: &candle_core::Device) -> Result<Classifier> {
    let dir = model_dir(m);
    Classifier::load(&dir, device).with_context(|| format!("loading model {}", display_name(&dir)))
}

/// Loads the model (`None`: the default) where `compute` asks ([`ComputeArg::device`]).
pub(super) fn load_model(m: &Option<PathBuf>, compute: ComputeArg) -> Result<Classifier> {
    load_model_on(m, &compute.device())
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope analyze speech.wav\n  \
    emoscope analyze a.flac b.mp3 --json > out.json\n  \
    emoscope analyze --same-speaker interview/*.wav     # one person's recordings, read as eval does\n  \
    emoscope analyze clip.wav --model weights/paper1_cnn --hop 1.0\n\n\
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
        how: a,
    } = a;
    if a.hop.is_nan() || a.hop <= 0.0 {
        bail!("--hop must be positive, got {}", a.hop);
    }
    let clf = load_model(&a.model, a.compute)?;
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
    let shared = same_speaker && clf.card.features.wants_profile();
    if same_speaker && !shared {
        eprintln!(
            "note: --same-speaker: this model is not speaker-normalised; each file is read alone"
        );
    }
    if !same_speaker && clf.card.features.wants_profile() {
        eprintln!(
            "note: each file is read alone: this speaker-normalised model knows the voice only from that file's own speech, and reads a voice heard for a few seconds far less reliably than one heard for tens of seconds (README, \"one file alone\"); several files of one person: --same-speaker"
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
    Architectures: paper1_cnn, paper1_lstm, fser, emocnn, prosody, fusion, encoder_head, encoder_head_profile. Features are computed once and cached\n\
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
    /// block: the built-in default's architecture) or encoder_head_profile (the same reading
    /// the speaker profile too).
    #[arg(long, default_value = "fusion")]
    pub arch: String,
    /// Speakers held out for testing, e.g. `ravdess:1,2` or `ravdess:1,2;emovo:f1`.
    #[arg(long)]
    pub test_speakers: Option<String>,
    /// Instead of one held-out set: K folds of whole speakers, one model per fold.
    #[arg(long, conflicts_with = "test_speakers")]
    pub folds: Option<usize>,
    /// Training epochs (default: the architecture's recipe).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the architecture's recipe).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Channel width of emocnn's first block (default 24 for emocnn, 8 for fusion; later
    /// blocks 2x and 4x).
    #[arg(long)]
    pub width: Option<usize>,
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
    /// Encoder heads: also train on one perturbed copy of every training clip (speed ±10 %,
    /// white noise at 10-25 dB SNR, drawn from this seed; encoded once and cached).
    #[arg(long)]
    pub augment_encoder: Option<u64>,
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
    /// Only build the feature pack and print its path.
    #[arg(long)]
    pub pack_only: bool,
    /// Calibrate by cross-fitting: K more models, each trained without one K-th of the
    /// training speakers, predict those speakers; the temperature is fitted on these
    /// out-of-fold predictions over every training speaker (instead of on the few
    /// validation speakers). Costs K more trainings.
    #[arg(long, conflicts_with = "folds")]
    pub crossfit: Option<usize>,
    /// Calibrate by cross-fitting over whole corpora: one more model per corpus, trained
    /// on the other corpora alone, predicts it, and the temperature is fitted on those
    /// predictions. For a model meant for languages and microphones it never heard: its
    /// confidence then reflects how well it does on a new corpus (expect it a little
    /// unsure on new speakers of its own corpora). Needs two corpora or more.
    #[arg(long, conflicts_with_all = ["folds", "crossfit"])]
    pub crossfit_corpora: bool,
}

fn print_metrics(title: &str, m: &Metrics) {
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
pub(super) fn print_metrics_by_corpus(title: &str, m: &Metrics, per_corpus: &[(String, Metrics)]) {
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
        if a.width.is_some() {
            bail!("--width applies to emocnn and fusion only");
        }
        return super::head::train(a, arch);
    }
    let arch = match (arch, a.width) {
        (Arch::EmoCnn { .. }, Some(width)) => Arch::EmoCnn { width },
        (Arch::Fusion { .. }, Some(width)) => Arch::Fusion { width },
        (_, Some(_)) => bail!("--width applies to emocnn and fusion only"),
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
        let validation = validation_speakers(&clips, &test);
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
                split: Split { test, validation },
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
        let test = match &a.test_speakers {
            Some(t) => parse_speaker_list(t)?,
            None => Vec::new(),
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
        println!(
            "{} saved to {} ({:.1} s per epoch on {})",
            arch.name(),
            out_dir.display(),
            o.seconds_per_epoch,
            device_name(&device)
        );
        if let Some(m) = &o.test_metrics {
            print_metrics_by_corpus("held-out test", m, &o.per_corpus);
        }
    }
    Ok(())
}

/// The clips of every speaker but `test`'s.
fn training_clips(clips: &[Clip], test: &[String]) -> Vec<Clip> {
    clips
        .iter()
        .filter(|c| !test.contains(&c.speaker))
        .cloned()
        .collect()
}

/// One fold per corpus: its speakers.
pub(super) fn corpus_folds(clips: &[Clip]) -> Result<Vec<Vec<String>>> {
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
fn crossfit_temperature(
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

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope eval --data ravdess=../shared/data/ravdess --test-speakers ravdess:1,2\n  \
    emoscope eval --model weights/paper1_cnn --data csv=../shared/data/emovo/labels.csv --json m.json --plot cm.png\n\n\
    Without --test-speakers every clip given is evaluated; make sure the model never saw those speakers\n\
    (the model card lists its test speakers).")]
pub struct EvalArgs {
    #[command(flatten)]
    pub compute: ComputeArg,
    /// Model directory; default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Labelled data as KIND=PATH; repeatable.
    #[arg(long, required = true)]
    pub data: Vec<DataSource>,
    /// Evaluate only these speakers, e.g. `ravdess:1,2`.
    #[arg(long)]
    pub test_speakers: Option<String>,
    /// Write the metrics as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the confusion matrix into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Write each clip's calibrated probabilities as CSV here (path, corpus, speaker,
    /// label, predicted, then one column per emotion): for ensembles, significance tests
    /// and plots of your own.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// For speaker-normalised models: what each clip is normalised by. `speaker`: all of
    /// that speaker's clips given (unlabelled; as a session that has heard them);
    /// `clip`: the clip alone (as `analyze` on one short file); `per-emotion`: each
    /// speaker's clips split by label into their own profiles (a session that stays in
    /// one emotion: the profile never hears the speaker's other moods).
    #[arg(long, value_enum, default_value = "speaker")]
    pub profile: crate::train::ProfileScope,
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let clf = load_model(&a.model, a.compute)?;
    eprintln!(
        "model {} on the {}",
        display_name(&model_dir(&a.model)),
        device_name(&clf.device)
    );
    let corpus = load_all(&a.data)?;
    for line in corpus.report() {
        eprintln!("note: {line}");
    }
    let clips = match &a.test_speakers {
        Some(t) => {
            let test = parse_speaker_list(t)?;
            let (_, te) = holdout(&corpus.clips, &test)?;
            te.into_iter().map(|i| corpus.clips[i].clone()).collect()
        }
        None => corpus.clips.clone(),
    };
    // A card without its list of training speakers (older cards) cannot show which
    // speakers are new: every speaker outside its test speakers counts as seen.
    let card = &clf.card;
    let seen = clips
        .iter()
        .filter(|c| {
            if card.train_speakers.is_empty() {
                !card.test_speakers.contains(&c.speaker)
            } else {
                card.train_speakers.contains(&c.speaker)
                    || card.validation_speakers.contains(&c.speaker)
            }
        })
        .count();
    if seen > 0 {
        let why = if card.train_speakers.is_empty() {
            "are not among the model's test speakers (its card does not list its training speakers, so they may have been trained on)"
        } else {
            "are from speakers the model was trained or validated on"
        };
        eprintln!(
            "warning: {seen} of {} clips {why}; their scores are not speaker-independent",
            clips.len()
        );
    }
    let (evaluated, (m, per_corpus, probs)) = evaluate_all(&clf, &clips, &a.cache, a.profile)?;
    // Files first: a reader that closes standard output early must not cost them.
    if let Some(j) = &a.json {
        let mut v = serde_json::to_value(&m)?;
        v["per_corpus"] = serde_json::to_value(&per_corpus)?;
        v["model"] = serde_json::to_value(clf.card.arch.name())?;
        crate::util::write_atomic(j, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    if let Some(p) = &a.plot {
        crate::train::plot::confusion_png(
            p,
            &m,
            &format!("{} - {} clips", clf.card.arch.label(), m.n),
        )?;
    }
    if let Some(p) = &a.predictions {
        let clips: Vec<&Clip> = evaluated.iter().collect();
        crate::util::write_atomic(p, predictions_csv(&clips, &probs).as_bytes())?;
    }
    print_metrics_by_corpus(
        &format!("{} on {} clips", clf.card.arch.label(), m.n),
        &m,
        &per_corpus,
    );
    println!(
        "per-class recall: {}",
        m.per_class
            .iter()
            .filter(|c| c.support > 0)
            .map(|c| format!("{} {:.2}", c.label, c.recall))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !m.absent.is_empty() {
        println!(
            "absent from the data (left out of UAR and ROC-AUC): {}",
            m.absent.join(", ")
        );
    }
    Ok(())
}

/// Scores `clf` on every clip given (their features from the cache or computed), each
/// clip normalised as `profile` says where the model is speaker-normalised.
fn evaluate_all(
    clf: &Classifier,
    clips: &[Clip],
    cache: &Path,
    profile: crate::train::ProfileScope,
) -> Result<(Vec<Clip>, crate::train::ClipEvaluation)> {
    if clf.card.features.encoder.is_some() {
        // Encoder models read the encoder cache: each window through the encoder once.
        let pack = crate::train::encpack::EncoderPack::cached(cache, &clf.card.features, clips)?;
        if clf.card.features.wants_profile() {
            eprintln!("note: speaker-normalised model; profile: {profile:?}");
        }
        let idx: Vec<usize> = (0..pack.clips.len()).collect();
        let scores = super::head::evaluate(clf, &pack, &idx, profile)?;
        return Ok((pack.clips, scores));
    }
    let (mut pack, _) = cached_pack(cache, &clf.card.features, clips)?;
    if clf.card.features.wants_profile() {
        pack.set_profile_scope(profile);
        eprintln!(
            "note: speaker-normalised model; each clip is normalised by {}",
            match profile {
                crate::train::ProfileScope::Speaker =>
                    "the profile of all of its speaker's clips given",
                crate::train::ProfileScope::Clip => "its own profile alone",
                crate::train::ProfileScope::Emotion =>
                    "the profile of its speaker's clips of its own emotion only (a session in one mood)",
            }
        );
    }
    let idx: Vec<usize> = (0..pack.clips.len()).collect();
    let scores = evaluate_clips(clf, &pack, &idx)?;
    Ok((pack.clips.into_iter().map(|c| c.clip).collect(), scores))
}

/// One CSV row per clip: where it is, whose and what it is, what the model said.
fn predictions_csv(clips: &[&Clip], probs: &[[f32; N_LABELS]]) -> String {
    let mut s = format!("path,corpus,speaker,label,predicted,{}\n", LABELS.join(","));
    for (c, p) in clips.iter().zip(probs) {
        let top = crate::labels::argmax(p);
        let quoted = format!("\"{}\"", c.path.display().to_string().replace('"', "\"\""));
        s.push_str(&format!(
            "{quoted},{},{},{},{}",
            c.corpus, c.speaker, LABELS[c.label], LABELS[top]
        ));
        for v in p {
            s.push_str(&format!(",{v:.6}"));
        }
        s.push('\n');
    }
    s
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    emoscope finetune --data csv=~/emoscope-clips/labels.csv --out weights/mine\n  \
    emoscope finetune --data ravdess=../shared/data/ravdess --speakers ravdess:1 --out runs/actor1\n  \
    emoscope finetune --data csv=clips/labels.csv --corpus ravdess=../shared/data/ravdess --out weights/mine\n\n\
    A share of each label's clips (--holdout) is kept out of training and scored before and after,\n\
    so the printed gain is measured on clips the fine-tuned model never saw. The score is\n\
    speaker-dependent: it says how well the model now knows these voices, not new ones.\n\
    The window's training mode records clips in exactly this csv format.")]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub compute: ComputeArg,
    /// Model to start from; default: the built-in model (builtin:encoder_head).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The user's labelled clips as KIND=PATH (usually csv=FILE from the training mode); repeatable.
    #[arg(long, required = true)]
    pub data: Vec<DataSource>,
    /// Use only these speakers of --data, e.g. `ravdess:1` (to treat one corpus speaker as the user).
    #[arg(long)]
    pub speakers: Option<String>,
    /// Extra corpus mixed into training (all of its clips; none of them are scored).
    #[arg(long)]
    pub corpus: Vec<DataSource>,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Share of each label's clips held out for the before/after score.
    #[arg(long, default_value_t = 0.3)]
    pub holdout: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory for the fine-tuned model (card.json, model.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "cache")]
    pub cache: PathBuf,
}

pub fn finetune(a: FinetuneArgs) -> Result<()> {
    if !(0.0..1.0).contains(&a.holdout) {
        bail!("--holdout {}: must be at least 0 and below 1", a.holdout);
    }
    let base_dir = model_dir(&a.model);
    let clf = load_model(&a.model, a.compute)?;
    let user = load_all(&a.data)?;
    for line in user.report() {
        eprintln!("note: {line}");
    }
    let mut user_clips = user.clips;
    if let Some(s) = &a.speakers {
        let keep = parse_speaker_list(s)?;
        let (_, te) = holdout(&user_clips, &keep)?;
        user_clips = te.into_iter().map(|i| user_clips[i].clone()).collect();
    }
    let extra = if a.corpus.is_empty() {
        Vec::new()
    } else {
        let c = load_all(&a.corpus)?;
        for line in c.report() {
            eprintln!("note: {line}");
        }
        c.clips
    };
    let (pack, user_idx, extra_idx) = crate::train::finetune::user_and_extra_pack(
        &clf.card.features,
        &user_clips,
        extra,
        Some(&a.cache),
    )?;
    let mut data: Vec<String> = a.data.iter().map(|d| d.to_string()).collect();
    if let Some(s) = &a.speakers {
        data[0].push_str(&format!(" (speakers {s})"));
    }
    data.extend(a.corpus.iter().map(|d| d.to_string()));
    let settings = crate::train::finetune::FinetuneSettings {
        epochs: a.epochs,
        lr: a.lr,
        holdout: a.holdout,
        seed: a.seed,
        data,
    };
    eprintln!(
        "fine-tuning {} on {} user clips (+{} corpus clips) on {}",
        display_name(&base_dir),
        user_idx.len(),
        extra_idx.len(),
        device_name(&clf.device)
    );
    let pb = indicatif::ProgressBar::new(a.epochs as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("fine-tuning [{bar:30}] epoch {pos}/{len} {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let o = crate::train::finetune::finetune(
        clf,
        &base_dir.display().to_string(),
        &pack,
        &user_idx,
        &extra_idx,
        &settings,
        &a.out,
        &cancel,
        &mut |e| {
            if let crate::train::finetune::FinetuneEvent::Epoch { epoch, loss, .. } = e {
                pb.set_position(epoch as u64);
                pb.set_message(format!("loss {loss:.3}"));
            }
        },
    )?;
    pb.finish_and_clear();
    println!(
        "trained on {} clips, scored on {} held-out clips; saved to {}",
        o.n_train,
        o.n_held_out,
        a.out.display()
    );
    match (&o.before, &o.after) {
        (Some(b), Some(af)) => {
            print_metrics("before (base model)", b);
            print_metrics("after (fine-tuned)", af);
        }
        _ => println!("no clips were held out (--holdout 0): no before/after score"),
    }
    Ok(())
}

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
struct FitSet {
    owner: Vec<usize>,
    logits: Vec<Vec<f32>>,
    truth: Vec<usize>,
}

impl FitSet {
    fn ece(&self, t: f64) -> f64 {
        let p = crate::train::clip_probs(&self.owner, &self.logits, self.truth.len(), t);
        crate::train::metrics::ece(&p, &self.truth)
    }

    fn extend(&mut self, owner: Vec<usize>, logits: Vec<Vec<f32>>, truth: Vec<usize>) {
        let base = self.truth.len();
        self.owner.extend(owner.into_iter().map(|o| o + base));
        self.logits.extend(logits);
        self.truth.extend(truth);
    }
}

/// The fold models' logits on the speakers each held out, the model's test speakers
/// excepted, after checking each fold is built as the model is.
fn out_of_fold_set(
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
        let (pack, _) = cached_pack(cache, &fold.card.features, &clips)?;
        let idx: Vec<usize> = (0..clips.len()).collect();
        let (owner, logits) = crate::train::window_logits(&fold, &pack, &idx)?;
        eprintln!(
            "note: {name}: {} clips of {} held-out speakers",
            clips.len(),
            held.len()
        );
        set.extend(owner, logits, clips.iter().map(|c| c.label).collect());
    }
    Ok(set)
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
        let val = pick(&clf.card.validation_speakers);
        if val.is_empty() {
            bail!(
                "none of the card's validation speakers ({}) are in --data",
                clf.card.validation_speakers.join(", ")
            );
        }
        let (vpack, _) = cached_pack(&a.cache, &clf.card.features, &val)?;
        let vidx: Vec<usize> = (0..val.len()).collect();
        let (owner, logits) = crate::train::window_logits(&clf, &vpack, &vidx)?;
        let truth = val.iter().map(|c| c.label).collect();
        (
            FitSet {
                owner,
                logits,
                truth,
            },
            "validation",
        )
    } else {
        (
            out_of_fold_set(&clf, &a.out_of_fold, &corpus.clips, &a.cache)?,
            "out-of-fold",
        )
    };
    let test = pick(&clf.card.test_speakers);
    let old = clf.card.temperature;
    let t = crate::train::fit_temperature_by(&fit.owner, &fit.logits, &fit.truth, a.objective);
    let tpack = if test.is_empty() {
        None
    } else {
        Some(cached_pack(&a.cache, &clf.card.features, &test)?.0)
    };
    let mut at_fitted = None;
    for (name, temp) in [("card", old), ("fitted", t)] {
        clf.card.temperature = temp;
        print!(
            "{name} temperature {temp:.3}: {what} ECE {:.3} (n={})",
            fit.ece(temp),
            fit.truth.len()
        );
        if let Some(tp) = &tpack {
            let tidx: Vec<usize> = (0..tp.clips.len()).collect();
            let (tm, per_corpus, _) = evaluate_clips(&clf, tp, &tidx)?;
            print!(
                "   held-out test ECE {:.3}, accuracy {:.1} % (n={})",
                tm.ece,
                tm.accuracy * 100.0,
                tm.n
            );
            at_fitted = Some((tm, per_corpus));
        }
        println!();
    }
    if a.write {
        clf.card.temperature = t;
        // The card's test figures are those at the temperature it now has (where the
        // test speakers were in --data; otherwise they were not measured at it).
        match at_fitted {
            Some((m, per_corpus)) => {
                clf.card.test_metrics = Some(m);
                clf.card.test_metrics_per_corpus = per_corpus;
            }
            None if clf.card.test_metrics.is_some() => {
                clf.card.test_metrics = None;
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

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  \
    emoscope ensemble weights/fusion runs/prosody --out weights/duo \\\n      \
    --data ravdess=../shared/data/ravdess --data csv=../shared/data/emovo/labels.csv --data csv=../shared/data/nemo/labels.csv\n\n\
    The ensemble averages its members' probabilities, each at the temperature of its own card,\n\
    and runs wherever a model does (monitor, analyze, eval, finetune). The members must share one\n\
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
        if m.card.features != first.card.features {
            bail!(
                "{} computes other features than {} ({:?} against {:?}): an ensemble's members must share one feature spec",
                display_name(dir), display_name(first_dir), m.card.features, first.card.features
            );
        }
        if sorted(&m.card.test_speakers) != sorted(&first.card.test_speakers) {
            bail!(
                "{} was tested on speakers {} but {} on {}: an ensemble's members must hold out the same test speakers, or its score would not be speaker-independent",
                display_name(dir), m.card.test_speakers.join(", "), display_name(first_dir), first.card.test_speakers.join(", ")
            );
        }
        if m.card.base_model.is_some() {
            bail!("{} is fine-tuned to particular voices; an ensemble takes models trained speaker-independently", display_name(dir));
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
        temperature: 1.0,
        training_data: union(&|c| c.training_data.clone()),
        protocol: format!(
            "speaker-independent: test speakers {} never seen in training by any member; each member's own protocol: {}",
            first.card.test_speakers.join(", "),
            members.iter().map(|(_, m)| m.card.protocol.as_str()).collect::<Vec<_>>().join(" | ")
        ),
        test_speakers: first.card.test_speakers.clone(),
        validation_speakers,
        train_speakers,
        epochs: members.iter().map(|(_, m)| m.card.epochs).max().unwrap_or(0),
        test_metrics: None,
        test_metrics_per_corpus: Vec::new(),
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        notes: format!(
            "ensemble (emoscope ensemble) of {} models, probabilities averaged, each at its own temperature: {}",
            members.len(),
            described.join("; ")
        ),
        base_model: None,
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
    if !a.data.is_empty() {
        let corpus = load_all(&a.data)?;
        let test = clf.card.test_speakers.clone();
        let (_, te) = holdout(&corpus.clips, &test)?;
        let clips: Vec<Clip> = te.into_iter().map(|i| corpus.clips[i].clone()).collect();
        let (_, (m, per_corpus, _)) =
            evaluate_all(&clf, &clips, &a.cache, crate::train::ProfileScope::Speaker)?;
        print_metrics_by_corpus(
            &format!("ensemble on held-out speakers, {} clips", m.n),
            &m,
            &per_corpus,
        );
        clf.card.test_metrics = Some(m);
        clf.card.test_metrics_per_corpus = per_corpus;
    }
    clf.save(&a.out)?;
    println!(
        "ensemble of {} models written to {}",
        members.len(),
        a.out.display()
    );
    Ok(())
}
