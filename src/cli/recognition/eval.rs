//! `emoscope eval`: score a model on corpora under a chosen speaker profile (speaker, per-
//! emotion, clip), with per-corpus metrics, a confusion plot and predictions.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::corpus::Clip;
use crate::corpus::{holdout, load_all, parse_speaker_list, DataSource};
use crate::labels::{LABELS, N_LABELS};
use crate::model::{device_name, display_name, Classifier};
use crate::train::{cached_pack, evaluate_clips};

use super::models::{load_model, model_dir, ComputeArg};
use super::train::print_metrics_by_corpus;

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
    /// one emotion: the profile never hears the speaker's other moods); `enrol`: for a
    /// model that reads an enrolment (the default), each speaker's clips
    /// labelled neutral, the clip's own left out, as the neutral reading the speaker
    /// recorded before the session (that model reads each clip alone under the others).
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
    if clf.card.speaker_dependent {
        eprintln!(
            "note: this model was trained on a random split of clips (speaker-dependent): its card's figure is on speakers it trained on; scored here on speakers it never heard, expect less"
        );
    }
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
    if a.profile == crate::train::ProfileScope::Enrolment {
        // The neutral clips are the enrolments of the others: the figure without them.
        let (hits, n) = evaluated
            .iter()
            .zip(&probs)
            .filter(|(c, _)| c.label != crate::labels::NEUTRAL)
            .fold((0, 0), |(h, n), (c, p)| {
                (
                    h + usize::from(crate::labels::argmax(&p[..]) == c.label),
                    n + 1,
                )
            });
        if n > 0 {
            println!(
                "without the clips labelled neutral (the enrolments): accuracy {:.1} % of {n} clips",
                100.0 * hits as f64 / n as f64
            );
        }
    }
    Ok(())
}

/// Scores `clf` on every clip given (their features from the cache or computed), each
/// clip normalised as `profile` says where the model is speaker-normalised.
pub(in crate::cli) fn evaluate_all(
    clf: &Classifier,
    clips: &[Clip],
    cache: &Path,
    profile: crate::train::ProfileScope,
) -> Result<(Vec<Clip>, crate::train::ClipEvaluation)> {
    if profile == crate::train::ProfileScope::Enrolment && !clf.card.features.enrolment() {
        anyhow::bail!(
            "--profile enrol: the model {} reads no enrolment; use it with a model whose features have \"enrolment\" (the default, builtin:encoder_head, or one trained with --arch encoder_head_enrol)",
            clf.card.arch.name()
        );
    }
    if clf.card.features.enrolment() {
        eprintln!(
            "note: enrolment model; {}",
            match profile {
                crate::train::ProfileScope::Enrolment => "each clip is read against its speaker's other clips labelled neutral (the clip's own left out), as the neutral reading recorded before a session",
                _ => "no enrolment under this --profile: each clip is read alone (--profile enrol gives it one)",
            }
        );
    }
    if clf.card.features.encoder.is_some() {
        // Encoder models read the encoder cache: each window through the encoder once.
        let pack = crate::train::encpack::EncoderPack::cached(cache, &clf.card.features, clips)?;
        if clf.card.features.wants_profile() && !clf.card.features.enrolment() {
            eprintln!("note: speaker-normalised model; profile: {profile:?}");
        }
        let idx: Vec<usize> = (0..pack.clips.len()).collect();
        let scores = crate::cli::head::evaluate(clf, &pack, &idx, profile)?;
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
                crate::train::ProfileScope::Enrolment => unreachable!("refused above"),
            }
        );
    }
    let idx: Vec<usize> = (0..pack.clips.len()).collect();
    let scores = evaluate_clips(clf, &pack, &idx)?;
    Ok((pack.clips.into_iter().map(|c| c.clip).collect(), scores))
}

/// One CSV row per clip: where it is, whose and what it is, what the model said.
pub(in crate::cli) fn predictions_csv(clips: &[&Clip], probs: &[[f32; N_LABELS]]) -> String {
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
