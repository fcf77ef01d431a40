//! Fine-tuning a trained model on a user's own labelled clips: a held-out part of those
//! clips is scored before and after, so the gain is measured, not assumed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::{evaluate_clips, run_epoch, Augment, FeaturePack, Opt, Optim, Recipe};
use crate::corpus::{speakers_of, Clip};
use crate::features::FeatureSpec;
use crate::labels::LABELS;
use crate::model::{Classifier, Metrics};
use crate::{Error, Result};

/// Settings of [`finetune`].
#[derive(Debug, Clone)]
pub struct FinetuneSettings {
    pub epochs: usize,
    pub lr: f64,
    /// Share of each label's user clips held out for the before/after score.
    pub holdout: f64,
    pub seed: u64,
    /// Where the fine-tuned model's training data came from (for its card).
    pub data: Vec<String>,
}

impl Default for FinetuneSettings {
    fn default() -> Self {
        Self {
            epochs: 15,
            lr: 5e-4,
            holdout: 0.3,
            seed: 42,
            data: Vec::new(),
        }
    }
}

/// What a fine-tuning run reports while it works (the window draws these).
#[derive(Debug, Clone)]
pub enum FinetuneEvent {
    /// The base model's score on the held-out user clips.
    Before(Metrics),
    /// Progress inside an epoch: batches done of total.
    Batch {
        epoch: usize,
        done: usize,
        total: usize,
    },
    Epoch {
        epoch: usize,
        epochs: usize,
        loss: f64,
    },
    After(Metrics),
}

/// The result of a run; the model is also saved by [`finetune`].
pub struct FinetuneOutcome {
    pub classifier: Classifier,
    pub before: Option<Metrics>,
    pub after: Option<Metrics>,
    pub losses: Vec<f64>,
    pub n_train: usize,
    pub n_held_out: usize,
}

/// Splits clips into (train, held out): within each label, every clip at a position
/// `k` with `floor((k+1) * share) > floor(k * share)` of a seeded shuffle is held out, so
/// each label with enough clips gives about `share` of them. Labels with a single clip
/// stay in training; a share of 0 holds nothing out.
pub fn user_holdout(clips: &[Clip], share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_label: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, c) in clips.iter().enumerate() {
        by_label.entry(c.label).or_default().push(i);
    }
    let (mut tr, mut te) = (Vec::new(), Vec::new());
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4F1D);
    for (_, mut idx) in by_label {
        idx.sort_by(|&a, &b| clips[a].path.cmp(&clips[b].path));
        idx.shuffle(&mut rng);
        let n = idx.len();
        let k = if n < 2 || share <= 0.0 {
            0
        } else {
            ((n as f64 * share).round() as usize).clamp(1, n - 1)
        };
        te.extend_from_slice(&idx[..k]);
        tr.extend_from_slice(&idx[k..]);
    }
    tr.sort_unstable();
    te.sort_unstable();
    (tr, te)
}

/// The feature pack of the `user` clips followed by the `extra` clips that are not also
/// user clips, through the feature cache in `cache` when given (else computed in memory);
/// returns it with the pack indices of the user clips and of the extra clips.
pub fn user_and_extra_pack(
    spec: &FeatureSpec,
    user: &[Clip],
    extra: Vec<Clip>,
    cache: Option<&Path>,
) -> Result<(FeaturePack, Vec<usize>, Vec<usize>)> {
    let mut all = user.to_vec();
    all.extend(
        extra
            .into_iter()
            .filter(|c| !user.iter().any(|u| u.path == c.path)),
    );
    let pack = match cache {
        Some(dir) => super::cached_pack(dir, spec, &all)?.0,
        None => FeaturePack::build(spec, &all, &|| {})?,
    };
    Ok((
        pack,
        (0..user.len()).collect(),
        (user.len()..all.len()).collect(),
    ))
}

/// The score of the held-out clips `held`, also reported as `event` (none when nothing
/// is held out).
fn score_held(
    clf: &Classifier,
    pack: &FeaturePack,
    held: &[usize],
    on_event: &mut dyn FnMut(FinetuneEvent),
    event: fn(Metrics) -> FinetuneEvent,
) -> Result<Option<Metrics>> {
    if held.is_empty() {
        return Ok(None);
    }
    let m = evaluate_clips(clf, pack, held)?.0;
    on_event(event(m.clone()));
    Ok(Some(m))
}

/// Fine-tunes `clf` (returned and saved to `out`) on the user clips `user` of
/// `pack` that [`user_holdout`] leaves for training, plus every clip in `extra` (e.g. a
/// corpus mixed in against forgetting). Scores the held-out user clips before and after.
/// `cancel` stops after the current batch; nothing is saved then.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    mut clf: Classifier,
    base_name: &str,
    pack: &FeaturePack,
    user: &[usize],
    extra: &[usize],
    s: &FinetuneSettings,
    out: &Path,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(FinetuneEvent),
) -> Result<FinetuneOutcome> {
    let user_clips: Vec<Clip> = user.iter().map(|&i| pack.clips[i].clip.clone()).collect();
    let (tr_u, te_u) = user_holdout(&user_clips, s.holdout, s.seed);
    let held: Vec<usize> = te_u.iter().map(|&k| user[k]).collect();
    let mut tr: Vec<usize> = tr_u.iter().map(|&k| user[k]).collect();
    if tr.len() < 2 {
        return Err(Error::param(
            "data",
            format!("{} clips", user.len()),
            "fine-tuning needs at least 2 training clips after holding some out; record more clips",
        ));
    }
    tr.extend_from_slice(extra);
    let before = score_held(&clf, pack, &held, on_event, FinetuneEvent::Before)?;
    let recipe = Recipe {
        epochs: s.epochs,
        batch_size: 16,
        optim: Optim::AdamW {
            lr: s.lr,
            weight_decay: 1e-2,
        },
        l2: 0.0,
        augment: Augment::DEFAULT,
        mixup_alpha: 0.0,
        cosine: true,
        max_seconds: None,
        // The user's own clips are the point; corpus clips mixed in only keep the rest.
        balance_corpora: false,
        every_window: None,
    };
    // Everything trains but an encoder head's feature standardisation (its training
    // statistics, not weights).
    let vars: Vec<(String, candle_core::Var)> = {
        let data = clf.varmap.data().lock().expect("varmap lock");
        data.iter()
            .filter(|(name, _)| !name.starts_with("norm_"))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    };
    let weights: Vec<_> = vars
        .iter()
        .filter(|(_, v)| v.rank() > 1)
        .map(|(_, v)| v.clone())
        .collect();
    let mut opt = Opt::new(vars, recipe.optim)?;
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut losses = Vec::new();
    for epoch in 0..s.epochs {
        opt.set_learning_rate(recipe.lr_at(epoch));
        tr.shuffle(&mut rng);
        let loss = run_epoch(
            &clf,
            pack,
            &tr,
            &recipe,
            s.seed,
            epoch,
            &mut opt,
            &weights,
            &mut |done, total| {
                on_event(FinetuneEvent::Batch { epoch, done, total });
                !cancel.load(Ordering::Relaxed)
            },
        )?;
        losses.push(loss);
        on_event(FinetuneEvent::Epoch {
            epoch: epoch + 1,
            epochs: s.epochs,
            loss,
        });
    }
    let after = score_held(&clf, pack, &held, on_event, FinetuneEvent::After)?;
    let user_speakers = speakers_of(&user_clips);
    let card = &mut clf.card;
    card.base_model = Some(base_name.to_string());
    card.training_data.extend(s.data.iter().cloned());
    card.test_speakers.retain(|t| !user_speakers.contains(t));
    for sp in &user_speakers {
        if !card.train_speakers.contains(sp) {
            card.train_speakers.push(sp.clone());
        }
    }
    card.protocol = format!(
        "fine-tuned from {base_name} on {} clips of {} (+{} other clips); scored on {} held-out clips of the same speaker(s), never trained on. Speaker-dependent: the score says how well it knows these voices, not new ones. Temperature {:.3} kept from the base model, not refitted: the only clips of these voices not trained on are the held-out ones, and a temperature fitted on them would make their score a training figure",
        tr_u.len(),
        user_speakers.join(", "),
        extra.len(),
        held.len(),
        card.temperature
    );
    card.epochs = s.epochs;
    card.seed = s.seed;
    card.test_metrics = after.clone();
    card.test_metrics_per_corpus = Vec::new();
    card.date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let score = |m: &Option<Metrics>| {
        m.as_ref().map_or("n/a".to_string(), |m| {
            format!("{:.1} % (UAR {:.3})", m.accuracy * 100.0, m.uar)
        })
    };
    card.notes = format!(
        "held-out user clips: before {} after {}; temperature kept from the base model ({:.2}); labels {}",
        score(&before),
        score(&after),
        card.temperature,
        LABELS.join(",")
    );
    clf.save(out)?;
    Ok(FinetuneOutcome {
        classifier: clf,
        before,
        after,
        losses,
        n_train: tr_u.len(),
        n_held_out: held.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clips(per_label: &[usize]) -> Vec<Clip> {
        let mut v = Vec::new();
        for (label, &n) in per_label.iter().enumerate() {
            for k in 0..n {
                v.push(Clip {
                    path: format!("{label}-{k}.wav").into(),
                    label,
                    speaker: "me".into(),
                    corpus: "clips".into(),
                });
            }
        }
        v
    }

    #[test]
    fn holdout_is_stratified_disjoint_and_repeatable() {
        let c = clips(&[4, 8, 8, 1, 0, 3, 2, 10]);
        let (tr, te) = user_holdout(&c, 0.3, 7);
        assert_eq!(tr.len() + te.len(), c.len());
        assert!(tr.iter().all(|i| !te.contains(i)));
        let held = |l: usize| te.iter().filter(|&&i| c[i].label == l).count();
        assert_eq!(
            (0..8).map(held).collect::<Vec<_>>(),
            vec![1, 2, 2, 0, 0, 1, 1, 3],
            "30 % of each label, at least one where a label has two clips, none of a single clip"
        );
        assert_eq!(user_holdout(&c, 0.3, 7), (tr.clone(), te.clone()));
        assert_ne!(
            user_holdout(&c, 0.3, 8).1,
            te,
            "another seed holds out other clips"
        );
        assert!(
            user_holdout(&c, 0.0, 7).1.is_empty(),
            "--holdout 0 holds nothing out"
        );
    }
}
