//! The training loop: validation speakers, balanced and augmented batches, epochs, seeded
//! and checkpointed runs that resume.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{Tensor, D};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::analysis::{place, place_filled};
use crate::corpus::{speakers_of, Clip};
use crate::features::{FeatureMatrix, SpeakerProfile};
use crate::labels::{LABELS, N_LABELS};
use crate::model::{Arch, Classifier, Metrics, ModelCard, CARD_VERSION};
use crate::{Error, Result};

use super::evaluate::{evaluate_clips, fit_temperature, window_logits};
use super::pack::{log_line, FeaturePack};
use super::recipe::{Opt, Recipe};

/// Speakers held out of a run.
#[derive(Debug, Clone)]
pub struct Split {
    pub test: Vec<String>,
    pub validation: Vec<String>,
    /// `Some((fraction, seed))` for a random split of clips (speaker-dependent: the test
    /// and validation "speakers" are the `~test` and `~val` parts of real speakers).
    pub random: Option<(f64, u64)>,
}

/// Chooses validation speakers among the training speakers: the last one (corpora of up
/// to 8 speakers) or two of each corpus, in sorted order.
pub fn validation_speakers(clips: &[Clip], test: &[String]) -> Vec<String> {
    let corpora: BTreeSet<&str> = clips.iter().map(|c| c.corpus.as_str()).collect();
    let mut out = Vec::new();
    for corpus in corpora {
        let spk: Vec<String> = speakers_of(clips)
            .into_iter()
            .filter(|s| {
                !test.contains(s) && clips.iter().any(|c| &c.speaker == s && c.corpus == corpus)
            })
            .collect();
        let k = if spk.len() <= 8 { 1 } else { 2 };
        if spk.len() > k {
            out.extend(spk[spk.len() - k..].iter().cloned());
        }
    }
    out
}

/// What a run produces.
pub struct TrainOutcome {
    pub classifier: Classifier,
    pub test_metrics: Option<Metrics>,
    pub per_corpus: Vec<(String, Metrics)>,
    /// Wall time per epoch trained in this run; `None` when a resumed run had none left.
    pub seconds_per_epoch: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CheckpointState {
    epoch: usize,
    best_epoch: usize,
    best_val_uar: f64,
    losses: Vec<f64>,
}

/// How often a training window is speaker-normalised by its own clip's profile instead of
/// its speaker's whole profile (with augmentation on).
pub(super) const OWN_PROFILE_P: f64 = 0.3;

/// Where a clip of `frames` is cut into a window of `win`: a random crop of a longer
/// clip; a shorter one sits at the start of the window, or at a random offset in it when
/// augmenting (time shift).
fn crop_start(frames: usize, win: usize, augment: bool, rng: &mut StdRng) -> isize {
    if frames > win {
        rng.random_range(0..=(frames - win)) as isize
    } else if augment {
        -(rng.random_range(0..=(win - frames)) as isize)
    } else {
        0
    }
}

/// The gain range (± dB) of augmentation against a speaker's whole profile.
pub(super) const SPEAKER_GAIN_DB: f32 = 3.0;

/// The windows an epoch trains on, in order: each clip of `tr` once, its window cropped at
/// random (`None`); or with the recipe's `every_window`, every window of each clip (of
/// `frames(clip)` frames) at its fixed start, shuffled from `seed`.
fn epoch_windows(
    frames: impl Fn(usize) -> usize,
    tr: &[usize],
    win: usize,
    every: Option<usize>,
    seed: u64,
) -> Vec<(usize, Option<usize>)> {
    match every {
        None => tr.iter().map(|&i| (i, None)).collect(),
        Some(hop) => {
            let mut items: Vec<(usize, Option<usize>)> = tr
                .iter()
                .flat_map(|&i| {
                    let last = frames(i).saturating_sub(win);
                    (0..=last).step_by(hop.max(1)).map(move |s| (i, Some(s)))
                })
                .collect();
            items.shuffle(&mut StdRng::seed_from_u64(seed));
            items
        }
    }
}

pub(super) fn training_batch(
    clf: &Classifier,
    pack: &FeaturePack,
    idx: &[(usize, Option<usize>)],
    recipe: &Recipe,
    seed: u64,
) -> (Vec<FeatureMatrix>, Vec<usize>) {
    let win = clf.card.features.window_frames();
    let inputs: Vec<FeatureMatrix> = idx
        .par_iter()
        .map(|&(i, fixed)| {
            // A fixed window's start enters the draw too: two windows of one clip in one
            // batch are augmented differently.
            let at = fixed.map_or(0, |s| (s as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
            let mut rng =
                StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ at);
            // Speaker normalisation: mostly by the speaker's whole profile (as `eval` and a
            // long session), sometimes by the clip's own alone (as one short file or the
            // first seconds of a session), so the model copes with both. Against the whole
            // profile a clip's level is an emotion cue, so gain is only varied by as much
            // as a speaker's takes vary.
            let speaker_norm = clf.card.features.wants_profile();
            // An enrolment model's profile is the speaker's enrolment (their other neutral
            // clips: FeaturePack::speaker_profile), never the clip itself: half the draws
            // read the clip with it and half without, as its head was trained.
            let enrolled = clf.card.features.enrolment();
            let own = speaker_norm
                && !enrolled
                && recipe.augment.enabled
                && rng.random_bool(OWN_PROFILE_P);
            let augment = if speaker_norm && !own && !enrolled {
                recipe.augment.with_gain_db(SPEAKER_GAIN_DB)
            } else {
                recipe.augment
            };
            let with_enrolment = enrolled && rng.random_bool(0.5);
            let m = augment.spectral(&pack.db_mel(i), &mut rng);
            let v = pack.voice(i);
            let mut own_profile = SpeakerProfile::default();
            let speaker = if own {
                own_profile.add_window(&m, clf.extractor.llds(&m, v.as_ref()).as_ref());
                Some(&own_profile)
            } else if enrolled && !with_enrolment {
                None
            } else {
                pack.speaker_profile(i)
            };
            let start = match fixed {
                Some(s) => s as isize,
                None => crop_start(m.frames, win, recipe.augment.enabled, &mut rng),
            };
            let vw = v.as_ref().map(|v| place_filled(v, start, win, f32::NAN));
            let mut x = clf
                .extractor
                .finish(place(&m, start, win), vw.as_ref(), speaker);
            recipe
                .augment
                .mask(&mut x, clf.card.features.n_rows(), &mut rng);
            x
        })
        .collect();
    (
        inputs,
        idx.iter().map(|&(i, _)| pack.clips[i].clip.label).collect(),
    )
}

/// One pass over the training clips `tr` (in their order, in batches, with the recipe's
/// augmentation, mixup and L2; with its `every_window`, over every window of them in a
/// shuffled order); returns the mean batch loss. `on_batch(done, total)` is
/// called before each batch and once at the end; when it returns false the pass stops
/// there with [`Error::Cancelled`].
#[allow(clippy::too_many_arguments)]
pub fn run_epoch(
    clf: &Classifier,
    pack: &FeaturePack,
    tr: &[usize],
    recipe: &Recipe,
    seed: u64,
    epoch: usize,
    opt: &mut Opt,
    weights: &[candle_core::Var],
    on_batch: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<f64> {
    let device = &clf.device;
    // Dropout masks from the run's seed and the epoch: the same seed and thread count give
    // the same weights, and a resumed run draws what an uninterrupted one would have.
    clf.net
        .seed_dropout(seed ^ 0xD0_D0 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut total = 0.0;
    let mut batches = 0;
    let items = epoch_windows(
        |i| pack.clips[i].frames,
        tr,
        clf.card.features.window_frames(),
        recipe.every_window,
        seed ^ 0x57A7 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let n_batches = items.len().div_ceil(recipe.batch_size.max(1));
    for (b, idx) in items.chunks(recipe.batch_size).enumerate() {
        if !on_batch(b, n_batches) {
            return Err(Error::Cancelled("training".into()));
        }
        if idx.len() < 2 {
            continue;
        }
        let seed = seed ^ ((epoch as u64) << 40) ^ ((b as u64) << 20);
        let (inputs, labels) = training_batch(clf, pack, idx, recipe, seed);
        let x = clf.batch_tensor(&inputs)?;
        let mut target = vec![0.0f32; labels.len() * N_LABELS];
        for (k, &l) in labels.iter().enumerate() {
            target[k * N_LABELS + l] = 1.0;
        }
        let mut y = Tensor::from_vec(target, (labels.len(), N_LABELS), device)?;
        let mut x = x;
        if recipe.mixup_alpha > 0.0 {
            // mixup with a partner permutation; lambda ~ Beta(a, a) via two gammas.
            let mut r = StdRng::seed_from_u64(seed ^ 0xA5A5);
            let lam = {
                let g = |r: &mut StdRng| -> f32 {
                    let u: f32 = r.random_range(1e-6..1.0);
                    u.powf(1.0 / recipe.mixup_alpha)
                };
                let (p, q) = (g(&mut r), g(&mut r));
                let l = p / (p + q);
                l.max(1.0 - l)
            };
            let mut perm: Vec<u32> = (0..labels.len() as u32).collect();
            perm.shuffle(&mut r);
            let perm = Tensor::from_vec(perm, labels.len(), device)?;
            x = ((&x * lam as f64)? + (x.index_select(&perm, 0)? * (1.0 - lam) as f64)?)?;
            y = ((&y * lam as f64)? + (y.index_select(&perm, 0)? * (1.0 - lam) as f64)?)?;
        }
        let logits = clf.net.forward_t(&x, true)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let mut loss = (logp * &y)?.sum(D::Minus1)?.mean_all()?.neg()?;
        if recipe.l2 > 0.0 {
            let mut l2 = Tensor::zeros((), candle_core::DType::F32, device)?;
            for w in weights {
                l2 = (l2 + w.as_tensor().sqr()?.sum_all()?)?;
            }
            loss = (loss + (l2 * recipe.l2)?)?;
        }
        opt.backward_step(&loss)?;
        total += loss.to_scalar::<f32>()? as f64;
        batches += 1;
    }
    if !on_batch(n_batches, n_batches) {
        return Err(Error::Cancelled("training".into()));
    }
    Ok(total / batches.max(1) as f64)
}

/// As many clips as `tr` holds, each corpus giving an equal share: corpora take turns,
/// each handing out its clips in a shuffled order (starting over, reshuffled, when it runs
/// out); the result is shuffled. With one corpus: `tr` itself.
pub fn balanced_order(pack: &FeaturePack, tr: &[usize], seed: u64) -> Vec<usize> {
    balanced_by(tr, |i| pack.clips[i].clip.corpus.as_str(), seed)
}

/// As many items as `items` holds, each group (by `group`) giving an equal share: groups
/// take turns, each handing out its items in a shuffled order (starting over, reshuffled,
/// when it runs out); the result is shuffled. With one group: `items` itself.
pub fn balanced_by<K: Ord>(items: &[usize], group: impl Fn(usize) -> K, seed: u64) -> Vec<usize> {
    let mut by_group: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for &i in items {
        by_group.entry(group(i)).or_default().push(i);
    }
    if by_group.len() < 2 {
        return items.to_vec();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pools: Vec<(Vec<usize>, usize)> = by_group
        .into_values()
        .map(|mut v| {
            v.shuffle(&mut rng);
            (v, 0)
        })
        .collect();
    let mut order = Vec::with_capacity(items.len());
    'fill: loop {
        for (pool, next) in pools.iter_mut() {
            if order.len() == items.len() {
                break 'fill;
            }
            if *next == pool.len() {
                pool.shuffle(&mut rng);
                *next = 0;
            }
            order.push(pool[*next]);
            *next += 1;
        }
    }
    order.shuffle(&mut rng);
    order
}

/// Settings of [`train`].
pub struct TrainArgs<'a> {
    pub arch: Arch,
    pub recipe: Recipe,
    pub seed: u64,
    pub split: Split,
    pub out: &'a Path,
    pub resume: bool,
    pub training_data: Vec<String>,
    pub device: candle_core::Device,
}

pub(super) fn progress(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Trains one model on the pack's clips outside `split`, picks the epoch with the best
/// validation UAR, fits the temperature on the validation speakers and evaluates the
/// held-out test speakers. Checkpoints go to `out/checkpoint/` every epoch.
pub fn train(pack: &FeaturePack, a: TrainArgs) -> Result<TrainOutcome> {
    let clips: Vec<Clip> = pack.clips.iter().map(|c| c.clip.clone()).collect();
    let (mut tr, mut va, mut te) = (Vec::new(), Vec::new(), Vec::new());
    for (i, c) in clips.iter().enumerate() {
        if a.split.test.contains(&c.speaker) {
            te.push(i)
        } else if a.split.validation.contains(&c.speaker) {
            va.push(i)
        } else {
            tr.push(i)
        }
    }
    if tr.is_empty() {
        return Err(Error::param(
            "test-speakers",
            a.split.test.join(","),
            "leaves no training clips",
        ));
    }
    let card = ModelCard {
        card_version: CARD_VERSION,
        emoscope_version: env!("CARGO_PKG_VERSION").into(),
        arch: a.arch.clone(),
        features: pack.spec.clone(),
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        temperature: 1.0,
        training_data: a.training_data.clone(),
        speaker_dependent: a.split.random.is_some(),
        protocol: if let Some((fraction, seed)) = a.split.random {
            format!("speaker-dependent: the same speakers are in training and test. A seeded random split of clips (fraction {fraction}, seed {seed}, stratified by label) as some papers use: {:.0} % of each label's clips are test, {:.0} % of the rest validation; the score says how well it knows voices it trained on, not new ones", fraction * 100.0, crate::corpus::RANDOM_VALIDATION_SHARE * 100.0)
        } else if a.split.test.is_empty() {
            "trained on every speaker given; no held-out test speakers".into()
        } else {
            format!("speaker-independent: test speakers {} never seen in training; validation speakers {} used only to pick the epoch and fit the temperature{}", a.split.test.join(", "), a.split.validation.join(", "),
                if pack.spec.wants_profile() { "; every speaker's features, test speakers' included, are normalised by the profile of all of that speaker's clips (unlabelled audio, as a live session accumulates)" } else { "" })
        },
        test_speakers: a.split.test.clone(),
        validation_speakers: a.split.validation.clone(),
        train_speakers: speakers_of(&tr.iter().map(|&i| clips[i].clone()).collect::<Vec<_>>()),
        epochs: a.recipe.epochs,
        seed: a.seed,
        test_metrics: None,
        test_metrics_per_corpus: Vec::new(),
        test_metrics_enrolled: None,
        date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        notes: a
            .recipe
            .every_window
            .map(|hop| format!("trained on every window of each clip, {hop} frames apart, each epoch (not one random crop)"))
            .unwrap_or_default(),
        base_model: None,
    };
    // Initial weights from the card's seed (a.seed): see model::init.
    let mut clf = Classifier::new(card, &a.device)?;
    if a.device.is_cuda() {
        a.device.set_seed(a.seed)?;
    }
    let ckpt = a.out.join("checkpoint");
    crate::util::create_dir_all(&ckpt)?;
    let mut state = CheckpointState {
        epoch: 0,
        best_epoch: 0,
        best_val_uar: -1.0,
        losses: Vec::new(),
    };
    if a.resume {
        let sp = ckpt.join("state.json");
        let text = std::fs::read_to_string(&sp).map_err(|source| Error::Open {
            path: sp.clone(),
            source,
        })?;
        state = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: sp.clone(),
            reason: e.to_string(),
        })?;
        clf.varmap.load(ckpt.join("last.safetensors"))?;
    }
    let vars: Vec<(String, candle_core::Var)> = {
        let data = clf.varmap.data().lock().expect("varmap lock");
        data.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    };
    let weights: Vec<_> = {
        let mut w: Vec<_> = vars.iter().filter(|(_, v)| v.rank() > 1).collect();
        w.sort_by(|a, b| a.0.cmp(&b.0));
        w.into_iter().map(|(_, v)| v.clone()).collect()
    };
    let mut opt = Opt::new(vars, a.recipe.optim)?;
    if a.resume {
        // The optimiser's moments and step count, so the run goes on exactly as an
        // uninterrupted one would (checkpoints made before they were saved restart them).
        let op = ckpt.join("optimizer.safetensors");
        let how = if op.exists() {
            opt.load(&op)?;
            "optimiser state restored"
        } else {
            "no optimiser state in the checkpoint: its moments restart"
        };
        log_line(&format!(
            "resuming after epoch {} (best validation UAR {:.3} at epoch {}); {how}",
            state.epoch, state.best_val_uar, state.best_epoch
        ));
    }
    let mut rng = StdRng::seed_from_u64(a.seed);
    for _ in 0..state.epoch {
        tr.shuffle(&mut rng); // keep the shuffle sequence of an uninterrupted run
    }
    log_line(&format!(
        "training on {} clips{} ({} validation clips), batch {}, {} thread(s) on {}",
        tr.len(),
        match a.recipe.every_window {
            Some(hop) => format!(
                ", every window {hop} frames apart: {} windows an epoch",
                epoch_windows(
                    |i| pack.clips[i].frames,
                    &tr,
                    clf.card.features.window_frames(),
                    Some(hop),
                    0
                )
                .len()
            ),
            None => String::new(),
        },
        va.len(),
        a.recipe.batch_size,
        rayon::current_num_threads(),
        crate::model::device_name(&a.device)
    ));
    let epochs_pb = progress(
        a.recipe.epochs as u64,
        &format!("training {}", a.arch.name()),
    );
    epochs_pb.set_position(state.epoch as u64);
    let t0 = std::time::Instant::now();
    let first_epoch = state.epoch;
    let mut stopped_early = None;
    for epoch in state.epoch..a.recipe.epochs {
        let lr = a.recipe.lr_at(epoch);
        opt.set_learning_rate(lr);
        tr.shuffle(&mut rng);
        let order = if a.recipe.balance_corpora {
            balanced_order(
                pack,
                &tr,
                a.seed ^ (epoch as u64).wrapping_mul(0xB5AD_4ECE_DA1C_E2A9),
            )
        } else {
            tr.clone()
        };
        let t_epoch = std::time::Instant::now();
        let mean_loss = run_epoch(
            &clf,
            pack,
            &order,
            &a.recipe,
            a.seed,
            epoch,
            &mut opt,
            &weights,
            &mut |_, _| true,
        )?;
        state.losses.push(mean_loss);
        let train_s = t_epoch.elapsed().as_secs_f64();
        let val_uar = if va.is_empty() {
            0.0
        } else {
            evaluate_clips(&clf, pack, &va)?.0.uar
        };
        let val_s = t_epoch.elapsed().as_secs_f64() - train_s;
        state.epoch = epoch + 1;
        if val_uar > state.best_val_uar {
            state.best_val_uar = val_uar;
            state.best_epoch = epoch + 1;
            clf.varmap.save(ckpt.join("best.safetensors"))?;
        }
        clf.varmap.save(ckpt.join("last.safetensors"))?;
        opt.save(&ckpt.join("optimizer.safetensors"))?;
        crate::util::write_atomic(
            &ckpt.join("state.json"),
            serde_json::to_string(&state).unwrap().as_bytes(),
        )?;
        epochs_pb.inc(1);
        epochs_pb.suspend(|| {
            log_line(&format!(
                "epoch {:3}/{}  loss {:.4}  val UAR {:.3}  lr {:.2e}  {:.1} s  (train {:.2} s, validation {:.2} s)",
                epoch + 1,
                a.recipe.epochs,
                mean_loss,
                val_uar,
                lr,
                t0.elapsed().as_secs_f64(),
                train_s,
                val_s
            ))
        });
        if a.recipe
            .max_seconds
            .is_some_and(|m| t0.elapsed().as_secs_f64() > m)
            && epoch + 1 < a.recipe.epochs
        {
            stopped_early = Some(epoch + 1);
            log_line(&format!(
                "time budget reached: stopping after epoch {}",
                epoch + 1
            ));
            break;
        }
    }
    epochs_pb.finish_and_clear();
    let trained = state.epoch - first_epoch;
    let seconds_per_epoch = (trained > 0).then(|| t0.elapsed().as_secs_f64() / trained as f64);
    if !va.is_empty() && ckpt.join("best.safetensors").exists() {
        clf.varmap.load(ckpt.join("best.safetensors"))?;
        let (owner, logits) = window_logits(&clf, pack, &va)?;
        let truth: Vec<usize> = va.iter().map(|&i| pack.clips[i].clip.label).collect();
        clf.card.temperature = fit_temperature(&owner, &logits, &truth);
        // After what the card already says (how the windows were drawn).
        let chosen = format!("weights of epoch {} (best validation UAR {:.3}); temperature {:.2} fitted on the validation speakers", state.best_epoch, state.best_val_uar, clf.card.temperature);
        clf.card.notes = match clf.card.notes.is_empty() {
            true => chosen,
            false => format!("{}; {chosen}", clf.card.notes),
        };
    }
    if let Some(e) = stopped_early {
        clf.card.epochs = e;
        clf.card.notes.push_str(&format!(
            "; stopped by the time budget after {e} of {} planned epochs",
            a.recipe.epochs
        ));
    }
    let (test_metrics, per_corpus) = if te.is_empty() {
        (None, Vec::new())
    } else {
        let (m, pc, _) = evaluate_clips(&clf, pack, &te)?;
        (Some(m), pc)
    };
    clf.card.test_metrics = test_metrics.clone();
    clf.card.test_metrics_per_corpus = per_corpus.clone();
    clf.save(a.out)?;
    Ok(TrainOutcome {
        classifier: clf,
        test_metrics,
        per_corpus,
        seconds_per_epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::epoch_windows;

    /// Every window of every training clip, once, at its fixed start; the same seed gives the
    /// same order; without `every_window` each clip once, its crop left to chance.
    #[test]
    fn every_window_draws_each_window_of_each_clip_once() {
        let frames = |i: usize| [94, 140, 60, 126][i];
        let tr = [3, 0, 1];
        let items = epoch_windows(frames, &tr, 94, Some(16), 7);
        let mut sorted = items.clone();
        sorted.sort();
        // 126 frames: starts 0, 16 and 32 (ending at the clip's end); 94: 0; 140: 0, 16, 32
        // (48 would end past it).
        let want = [
            (0, Some(0)),
            (1, Some(0)),
            (1, Some(16)),
            (1, Some(32)),
            (3, Some(0)),
            (3, Some(16)),
            (3, Some(32)),
        ];
        assert_eq!(sorted, want);
        assert_eq!(items, epoch_windows(frames, &tr, 94, Some(16), 7));
        assert_ne!(items, sorted, "the windows are shuffled");
        // A clip shorter than a window still gives one (placed from its start).
        assert_eq!(epoch_windows(frames, &[2], 94, Some(16), 7), [(2, Some(0))]);
        assert_eq!(
            epoch_windows(frames, &tr, 94, None, 7),
            [(3, None), (0, None), (1, None)]
        );
    }
}
