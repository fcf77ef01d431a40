//! `emoscope finetune`: fine-tune a model on a user's labelled clips, scored before and
//! after on held-out clips of the same voices.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::corpus::{holdout, load_all, parse_speaker_list, DataSource};
use crate::model::{device_name, display_name};

use super::models::{load_model, model_dir, ComputeArg};
use super::train::print_metrics;

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
