//! Heads on the frozen encoder ([`crate::model::Arch::EncoderHead`]), trained and
//! evaluated from an [`EncoderPack`]: each window's model input is made by the same
//! [`crate::features::encoder_row`] the live path and `analyze` use, against a speaker
//! profile of the windows a scope gathers.
//!
//! Training draws, per window and epoch, the profile it is normalised by among four a
//! real session can give: all of the speaker's speech, the speaker's speech in the
//! window's own emotion only (a session in one mood), the clip alone, and a few of the
//! speaker's clips; so the head learns how far the z-scores can be trusted instead of
//! assuming a profile that spans every emotion, as an acted corpus gives by construction.

use std::collections::BTreeMap;

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use super::encpack::EncoderPack;
use super::ProfileScope as Scope;
use crate::features::{encoder_row, CalmGate, FeatureMatrix, SpeakerProfile};
use crate::labels::{NEUTRAL, N_LABELS};
use crate::model::Classifier;
use crate::{Error, Result};

fn key(pack: &EncoderPack, clip: usize, scope: Scope) -> String {
    let c = &pack.clips[clip];
    match scope {
        Scope::Speaker => c.speaker.clone(),
        Scope::Emotion => format!("{}~{}", c.speaker, c.label),
        Scope::Clip => format!("clip {clip}"),
        Scope::Enrolment => super::enrolment_key(clip, c),
    }
}

/// The window's vector as the extractor's `llds` gives it (one frame).
fn vector_matrix(pack: &EncoderPack, w: usize) -> FeatureMatrix {
    FeatureMatrix {
        rows: pack.dim,
        frames: 1,
        data: pack.vector(w).to_vec(),
    }
}

/// The windows of `clips` a model reads (their speech windows; all of a clip's windows
/// where none holds speech), with the index of their clip in `clips`.
pub fn windows_of(pack: &EncoderPack, clips: &[usize]) -> Vec<(usize, usize)> {
    let mut by_clip: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (w, pw) in pack.windows.iter().enumerate() {
        by_clip.entry(pw.clip).or_default().push(w);
    }
    let mut out = Vec::new();
    for (k, c) in clips.iter().enumerate() {
        let ws = by_clip.get(c).map(Vec::as_slice).unwrap_or(&[]);
        let speech: Vec<usize> = ws
            .iter()
            .copied()
            .filter(|&w| pack.windows[w].speech)
            .collect();
        let chosen = if speech.is_empty() {
            ws.to_vec()
        } else {
            speech
        };
        out.extend(chosen.into_iter().map(|w| (w, k)));
    }
    out
}

/// Whether window `w` joins a profile: a speech window, admitted by the calm gate when
/// there is one (`calm`: what the gate says of each window of the pack, as the live path's
/// [`crate::features::FeatureExtractor::profile_admits`]).
fn joins_profile(pack: &EncoderPack, w: usize, calm: Option<&[bool]>) -> bool {
    pack.windows[w].speech && calm.is_none_or(|c| c[w])
}

/// Profiles by key of `scope` over the speech windows of `clips` (as the live path adds
/// only speech windows; with a calm gate only those it admits).
fn profiles(
    pack: &EncoderPack,
    clips: &[usize],
    scope: Scope,
    calm: Option<&[bool]>,
) -> BTreeMap<String, SpeakerProfile> {
    let mut out: BTreeMap<String, SpeakerProfile> = BTreeMap::new();
    if scope == Scope::Enrolment {
        return enrolments(pack, clips);
    }
    for &(w, k) in &windows_of(pack, clips) {
        let p = out.entry(key(pack, clips[k], scope)).or_default();
        if joins_profile(pack, w, calm) {
            p.add_llds(&vector_matrix(pack, w));
        }
    }
    out
}

/// The enrolment of every clip of `clips` by [`key`]: the speech windows of its speaker's
/// neutral clips among `clips`, its own left out (whatever a calm gate says: an
/// enrolment is what the speaker recorded for it).
fn enrolments(pack: &EncoderPack, clips: &[usize]) -> BTreeMap<String, SpeakerProfile> {
    // The speech windows of the neutral clips, once; each key's enrolment from them.
    let neutral: Vec<(usize, usize)> = windows_of(pack, clips)
        .into_iter()
        .map(|(w, k)| (w, clips[k]))
        .filter(|&(w, j)| pack.windows[w].speech && pack.clips[j].label == NEUTRAL)
        .collect();
    let mut out = BTreeMap::new();
    for &c in clips {
        let key = key(pack, c, Scope::Enrolment);
        if out.contains_key(&key) {
            continue;
        }
        let mut p = SpeakerProfile::default();
        for &(w, j) in &neutral {
            if super::in_enrolment(c, &pack.clips[c], j, &pack.clips[j]) {
                p.add_llds(&vector_matrix(pack, w));
            }
        }
        out.insert(key, p);
    }
    out
}

/// Which windows of `pack` join a profile for a model of `features`: those its calm gate
/// admits; none for an enrolment model (its profile holds only the enrolment, which
/// [`Scope::Enrolment`] gathers); `None` (every speech window) otherwise.
pub fn admitted_by(
    pack: &EncoderPack,
    features: &crate::features::FeatureSpec,
) -> Option<Vec<bool>> {
    if features.enrolment() {
        return Some(vec![false; pack.windows.len()]);
    }
    admitted(pack, features.calm_gate())
}

/// What `gate` says of every window of `pack` (`None` without a gate).
pub fn admitted(pack: &EncoderPack, gate: Option<&CalmGate>) -> Option<Vec<bool>> {
    gate.map(|g| {
        (0..pack.windows.len())
            .map(|w| g.admits(pack.vector(w)))
            .collect()
    })
}

/// Model inputs of the windows of `clips` under `scope`, with profiles of the windows
/// `calm` admits when set (see [`admitted`]): (clip position in `clips`, input row).
pub fn inputs(
    pack: &EncoderPack,
    clips: &[usize],
    scope: Scope,
    calm: Option<&[bool]>,
) -> (Vec<usize>, Vec<FeatureMatrix>) {
    let blocks = pack.spec.encoder.as_ref().map_or(0, |e| e.blocks);
    let profs = profiles(pack, clips, scope, calm);
    windows_of(pack, clips)
        .into_iter()
        .map(|(w, k)| {
            let p = &profs[&key(pack, clips[k], scope)];
            let row = encoder_row(Some(vector_matrix(pack, w)), p, blocks, calm.map(|c| c[w]));
            (k, row)
        })
        .unzip()
}

/// Whether window `w`'s clip is labelled neutral or calm (what a calm gate learns to say).
fn calm_window(pack: &EncoderPack, w: usize) -> bool {
    let label = pack.clips[pack.windows[w].clip].label;
    matches!(crate::labels::LABELS[label], "neutral" | "calm")
}

/// How sure the calm gate must be that a window is neutral or calm to admit it. At 0.5
/// (the first try) it let in enough angry, sad and fearful windows that a one-emotion
/// session of them got a "calm" reference of itself (mixed test speakers, one-emotion
/// profile: 68.8 % against 71.3 % at 0.7; docs/recognition.md).
pub const CALM_GATE_P: f64 = 0.7;

/// Fits a [`CalmGate`] on the time-mean of representation `layer` of the speech windows
/// of `clips`: a logistic regression of "neutral or calm" against every other emotion,
/// on standardised values with an L2 penalty about a logistic regression's C = 0.01
/// (as the heads), by full-batch AdamW; the standardisation and the threshold
/// [`CALM_GATE_P`] are folded into the weights and bias.
pub fn fit_calm_gate(pack: &EncoderPack, clips: &[usize], layer: usize) -> Result<CalmGate> {
    let w_dim = crate::encoder::WIDTH;
    let at = layer * 2 * w_dim;
    if at + w_dim > pack.dim {
        return Err(Error::Model(format!(
            "calm gate: representation {layer} is not in the encoder cache's vectors"
        )));
    }
    let rows: Vec<(usize, f32)> = windows_of(pack, clips)
        .into_iter()
        .filter(|&(w, _)| pack.windows[w].speech)
        .map(|(w, _)| (w, if calm_window(pack, w) { 1.0 } else { 0.0 }))
        .collect();
    let n = rows.len();
    if n == 0 || rows.iter().all(|r| r.1 == 0.0) || rows.iter().all(|r| r.1 == 1.0) {
        return Err(Error::Model(
            "calm gate: the training clips need speech windows both neutral or calm and not".into(),
        ));
    }
    let dev = candle_core::Device::Cpu;
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|&(w, _)| pack.vector(w)[at..at + w_dim].iter().copied())
        .collect();
    let x = Tensor::from_vec(flat, (n, w_dim), &dev)?;
    let mu = x.mean(0)?;
    let sd = (x.broadcast_sub(&mu)?.sqr()?.mean(0)? + 1e-6)?.sqrt()?;
    let xs = x.broadcast_sub(&mu)?.broadcast_div(&sd)?;
    let y = Tensor::from_vec(rows.iter().map(|r| r.1).collect::<Vec<f32>>(), (n, 1), &dev)?;
    let w = candle_core::Var::zeros((w_dim, 1), candle_core::DType::F32, &dev)?;
    let b = candle_core::Var::zeros(1, candle_core::DType::F32, &dev)?;
    let mut opt = AdamW::new(
        vec![w.clone(), b.clone()],
        ParamsAdamW {
            lr: 0.02,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let l2 = 1.0 / (2.0 * 0.01 * n as f64);
    for _ in 0..400 {
        let z = xs.matmul(w.as_tensor())?.broadcast_add(b.as_tensor())?;
        // Mean binary cross-entropy from logits: softplus(z) - y z, softplus stably.
        let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        let bce = (softplus - (&y * &z)?)?.mean_all()?;
        let loss = (bce + (w.as_tensor().sqr()?.sum_all()? * l2)?)?;
        opt.backward_step(&loss)?;
    }
    let w = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let (mu, sd) = (mu.to_vec1::<f32>()?, sd.to_vec1::<f32>()?);
    let weight: Vec<f32> = w.iter().zip(&sd).map(|(w, s)| w / s).collect();
    // The threshold goes into the bias: the gate admits where the logit exceeds 0.
    let threshold = (CALM_GATE_P / (1.0 - CALM_GATE_P)).ln() as f32;
    let bias = b.as_tensor().to_vec1::<f32>()?[0]
        - weight.iter().zip(&mu).map(|(w, m)| w * m).sum::<f32>()
        - threshold;
    Ok(CalmGate {
        layer,
        weight,
        bias,
    })
}

/// Raw logits of `inputs`, 512 at a time.
pub fn logits(clf: &Classifier, inputs: &[FeatureMatrix]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(512) {
        let x = clf.batch_tensor(chunk)?;
        out.extend(clf.net.forward_t(&x, false)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

/// Each clip's calibrated probabilities under `scope` (the mean over its windows).
pub fn clip_probs(
    clf: &Classifier,
    pack: &EncoderPack,
    clips: &[usize],
    scope: Scope,
) -> Result<Vec<[f32; N_LABELS]>> {
    let calm = admitted_by(pack, &clf.card.features);
    let (owner, x) = inputs(pack, clips, scope, calm.as_deref());
    let l = logits(clf, &x)?;
    Ok(super::clip_probs(
        &owner,
        &l,
        clips.len(),
        clf.card.temperature,
    ))
}

/// How a head is trained.
#[derive(Debug, Clone, Copy)]
pub struct HeadRecipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// L2 penalty on the weight matrices, added to the mean cross-entropy.
    pub l2: f64,
    pub seed: u64,
    /// Give each corpus an equal share of every epoch's windows (`train --balance-corpora`).
    pub balance_corpora: bool,
    /// How many seeds a linear head is trained from and averaged over (1: one head).
    pub seeds: usize,
}

/// Trains `clf` (an encoder head, freshly initialised) on the windows of clips `train`,
/// picking the epoch by clip accuracy of clips `val` with their speakers' profiles, then
/// fitting the temperature on `val`. Returns the validation accuracy per epoch (of the
/// last seed).
///
/// With `r.seeds` above one, a linear head is trained that many times, from seeds
/// `r.seed`, `r.seed + 1`, ..., each picking its own epoch, and `clf` gets the mean of
/// their weights: for a linear head (every map linear in its weights, the standardisation
/// the same for all) that is the mean of their logits, one head's cost to run, with less
/// of the spread that one seed's initialisation, order and picked epoch leave. An MLP head
/// (hidden > 0) is refused: the mean of its weights is no ensemble.
///
/// A head whose features have a calm gate first fits the gate on the speech windows of
/// `train` ([`fit_calm_gate`]); every profile after that is a calm reference.
pub fn train(
    clf: &mut Classifier,
    pack: &EncoderPack,
    augmented: Option<&EncoderPack>,
    train: &[usize],
    val: &[usize],
    r: &HeadRecipe,
    progress: &dyn Fn(usize, f64, f64),
) -> Result<Vec<f64>> {
    if r.seeds <= 1 {
        let curve = train_one(clf, pack, augmented, train, val, r, progress)?;
        // A hidden-layer enrolment head has its temperature from its linear part.
        if !clf.card.features.enrolment() || linear_head(clf) {
            fit_head_temperature(clf, pack, val)?;
        }
        return Ok(curve);
    }
    if !linear_head(clf) {
        return Err(Error::Model(
            "averaging seeds' weights needs a linear encoder head (hidden 0); train an MLP head with --average-seeds 1, once per --seed, and average the heads' probabilities with emoscope ensemble (as the default was made: scripts/encoder_table.sh with SEEDS=\"42 2 3\")".into(),
        ));
    }
    let mut sum: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut curve = Vec::new();
    for k in 0..r.seeds as u64 {
        let mut card = clf.card.clone();
        card.seed = r.seed + k;
        let mut m = Classifier::new(card, &clf.device)?;
        let rk = HeadRecipe {
            seed: r.seed + k,
            ..*r
        };
        curve = train_one(&mut m, pack, augmented, train, val, &rk, progress)?;
        let vars = m.varmap.data().lock().expect("varmap lock");
        for (name, v) in vars.iter() {
            let t = v.as_tensor();
            let acc = match sum.remove(name) {
                Some(a) => (a + t)?,
                None => t.copy()?,
            };
            sum.insert(name.clone(), acc);
        }
        drop(vars);
        if k == 0 {
            // The calm gate (fitted alike from the same clips by every seed) and the rest
            // of what training writes into the card.
            let seed = clf.card.seed;
            clf.card = m.card.clone();
            clf.card.seed = seed;
            clf.extractor = crate::features::FeatureExtractor::new(&clf.card.features)?;
        }
    }
    {
        let vars = clf.varmap.data().lock().expect("varmap lock");
        for (name, t) in sum {
            let v = vars.get(&name).ok_or_else(|| {
                Error::Model(format!("averaged head variable {name} is not in the head"))
            })?;
            v.set(&(t / r.seeds as f64)?)?;
        }
    }
    let averaged = format!(
        "the mean of {} heads' weights, seeds {}-{}",
        r.seeds,
        r.seed,
        r.seed + r.seeds as u64 - 1
    );
    clf.card.notes = match clf.card.notes.as_str() {
        "" => averaged,
        n => format!("{n}; {averaged}"),
    };
    fit_head_temperature(clf, pack, val)?;
    Ok(curve)
}

/// The order of the training windows epoch by epoch: all of them shuffled afresh; with
/// `balance`, each corpus an equal share of the epoch, drawn every epoch from all the
/// windows (never from the last epoch's draw, which holds only a share of them), and with
/// one corpus the shuffled order itself.
struct EpochOrder {
    all: Vec<usize>,
    balance: bool,
}

impl EpochOrder {
    fn new(n: usize, balance: bool) -> Self {
        Self {
            all: (0..n).collect(),
            balance,
        }
    }

    fn next<K: Ord>(&mut self, rng: &mut StdRng, corpus_of: impl Fn(usize) -> K) -> Vec<usize> {
        self.all.shuffle(rng);
        match self.balance {
            true => super::fit::balanced_by(&self.all, corpus_of, rng.random()),
            false => self.all.clone(),
        }
    }
}

/// Fits `clf`'s temperature on the validation clips `val`, under every kind of profile
/// (left as it is when there are none).
fn fit_head_temperature(clf: &mut Classifier, pack: &EncoderPack, val: &[usize]) -> Result<()> {
    if val.is_empty() {
        return Ok(());
    }
    let (owner, logits, truth) = temperature_set(clf, pack, val)?;
    clf.card.temperature = super::fit_temperature(&owner, &logits, &truth);
    Ok(())
}

/// Each window's reading, the window logits and each reading's label.
pub type TemperatureSet = (Vec<usize>, Vec<Vec<f32>>, Vec<usize>);

/// What a head's temperature is fitted on: the window logits of clips `idx`, read under
/// every profile the head is read under ([`read_scopes`]: with an enrolment and without
/// one for an enrolment head), each reading counted as a clip of its own; with each
/// window's reading and each reading's label. `train` and `calibrate` fit on this alike.
pub fn temperature_set(
    clf: &Classifier,
    pack: &EncoderPack,
    idx: &[usize],
) -> Result<TemperatureSet> {
    let calm = admitted_by(pack, &clf.card.features);
    let calm = calm.as_deref();
    // One temperature for both parts of an enrolment head: one of its own for each,
    // fitted on half the validation windows each, was worse on three of the four
    // held-out sets (docs/recognition.md, "Enrolment").
    let mut owner_all = Vec::new();
    let mut logits_all = Vec::new();
    let mut truth = Vec::new();
    for &scope in read_scopes(&clf.card.features) {
        let (owner, x) = inputs(pack, idx, scope, calm);
        let base = truth.len();
        owner_all.extend(owner.iter().map(|o| o + base));
        logits_all.extend(logits(clf, &x)?);
        truth.extend(idx.iter().map(|&c| pack.clips[c].label));
    }
    Ok((owner_all, logits_all, truth))
}

/// The profiles a head of `features` is calibrated and its epoch picked under: with an
/// enrolment and without one for an enrolment model (no other profile reaches it), every
/// kind a session gives for the rest.
pub fn read_scopes(features: &crate::features::FeatureSpec) -> &'static [Scope] {
    match features.enrolment() {
        true => &[Scope::Enrolment, Scope::Clip],
        false => &[Scope::Speaker, Scope::Emotion, Scope::Clip],
    }
}

/// One seed of [`train`]: the head trained, its best epoch kept; the temperature is left.
fn train_one(
    clf: &mut Classifier,
    pack: &EncoderPack,
    augmented: Option<&EncoderPack>,
    train: &[usize],
    val: &[usize],
    r: &HeadRecipe,
    progress: &dyn Fn(usize, f64, f64),
) -> Result<Vec<f64>> {
    // With a calm gate: fitted on the training clips' speech windows, it picks the windows
    // of every reference from then on. (Cross-fitted gates, so that training references
    // hold the mistakes a gate makes on new voices, measured worse on every profile of the
    // mixed test speakers: docs/recognition.md.)
    if let Some(layer) = clf.card.features.calm_gate().map(|g| g.layer) {
        let fitted = fit_calm_gate(pack, train, layer)?;
        if let Some(e) = clf.card.features.encoder.as_mut() {
            e.calm_gate = Some(fitted);
        }
        clf.extractor = crate::features::FeatureExtractor::new(&clf.card.features)?;
    }
    // What the gate says of every window of the pack (training and validation clips alike)
    // and of the perturbed copy.
    let features = &clf.card.features;
    let enrolled = features.enrolment();
    let calm = admitted_by(pack, features);
    let calm = calm.as_deref();
    let calm_aug = augmented.and_then(|a| admitted_by(a, features));
    let calm_aug = calm_aug.as_deref();
    if let (Some(c), Some(_)) = (calm, features.calm_gate()) {
        let speech: Vec<usize> = windows_of(pack, train)
            .into_iter()
            .map(|(w, _)| w)
            .filter(|&w| pack.windows[w].speech)
            .collect();
        let admitted: Vec<usize> = speech.iter().copied().filter(|&w| c[w]).collect();
        eprintln!(
            "calm gate: admits {} of {} training speech windows ({} of them neutral or calm; {} neutral or calm in all)",
            admitted.len(),
            speech.len(),
            admitted.iter().filter(|&&w| calm_window(pack, w)).count(),
            speech.iter().filter(|&&w| calm_window(pack, w)).count()
        );
    }
    let head = clf
        .net
        .encoder_head()
        .ok_or_else(|| Error::Model("train::head trains encoder heads only".into()))?;
    // Four inputs of every training window, one per kind of profile. A perturbed copy of
    // each training clip (same clip indices), when given, adds its windows, read alone,
    // to every kind.
    // An enrolment head's perturbed copies are read as their kind says (with the
    // enrolment of the perturbed copies of the speaker's other neutral clips, or alone).
    let aug_of = |scope: Scope| match augmented {
        Some(a) => inputs(
            a,
            train,
            if enrolled { scope } else { Scope::Clip },
            calm_aug,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let (aug_owner, aug_rows) = aug_of(Scope::Clip);
    let with_aug = |mut v: Vec<FeatureMatrix>, scope: Scope| {
        match scope {
            Scope::Enrolment if enrolled => v.extend(aug_of(scope).1),
            _ => v.extend(aug_rows.iter().cloned()),
        }
        v
    };
    // A head that reads no profile sees the same input under every kind: it is built once
    // and drawn four times, as the kinds are for a head that reads one.
    let reads_profile = clf.card.features.wants_profile();
    // A calm head does not train on one-emotion profiles: whether such a profile holds a
    // calm reference at all says whether its emotion is calm, a label the head would learn
    // to read from the reference's presence and misread on every whole session.
    // An enrolment head trains with the speaker's enrolment and without one (its two
    // parts, blended by whether there is one; one part after the other below).
    let kinds = match (reads_profile, enrolled, calm.is_some()) {
        (true, true, _) => &[Scope::Enrolment, Scope::Clip][..],
        (true, false, false) => &[Scope::Speaker, Scope::Emotion, Scope::Clip][..],
        (true, false, true) => &[Scope::Speaker, Scope::Clip][..],
        (false, ..) => &[Scope::Clip][..],
    };
    let scopes: Vec<Vec<FeatureMatrix>> = kinds
        .iter()
        .map(|&s| with_aug(inputs(pack, train, s, calm).1, s))
        .collect();
    let few = match reads_profile && !enrolled {
        true => with_aug(few_clip_inputs(pack, train, r.seed, calm), Scope::Clip),
        false => Vec::new(),
    };
    let variants: Vec<&Vec<FeatureMatrix>> = match (reads_profile, enrolled) {
        (true, false) => scopes.iter().chain(std::iter::once(&few)).collect(),
        (true, true) => scopes.iter().collect(),
        (false, _) => vec![&scopes[0]; 4],
    };
    let mut owner: Vec<usize> = windows_of(pack, train)
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    owner.extend(aug_owner);
    let labels: Vec<u32> = owner
        .iter()
        .map(|&k| pack.clips[train[k]].label as u32)
        .collect();
    let n = labels.len();
    if n == 0 {
        return Err(Error::Model("no training windows".into()));
    }
    // Standardise the head's features by their statistics over every variant.
    {
        let f = head.features(
            &clf.batch_tensor(
                &variants
                    .iter()
                    .flat_map(|v| v.iter().step_by(3).cloned())
                    .collect::<Vec<_>>(),
            )?,
        )?;
        let mu = f.mean(0)?;
        let sd = (f.broadcast_sub(&mu)?.sqr()?.mean(0)? + 1e-6)?.sqrt()?;
        let vars = clf.varmap.data().lock().expect("varmap lock");
        vars["norm_mean"].set(&mu)?;
        vars["norm_std"].set(&sd)?;
    }
    let stage = Stage {
        pack,
        train,
        val,
        owner: &owner,
        labels: &labels,
        r,
        progress,
    };
    if !enrolled {
        // Picked with the speaker's profile.
        return stage.fit(clf, &variants, &[Scope::Speaker], 0);
    }
    let n_alone = head.read_len();
    // An enrolment head's two parts, one after the other, each for the recipe's epochs and
    // picking its own: the part without an enrolment on the windows alone (as the plain
    // head, every draw its own), then the enrolled part on the windows with their
    // enrolments. The second stage cannot move the first's weights (they are multiplied by
    // 1 - w = 0 there) but would shrink them by the L2 penalty and move the shared bias, so
    // the first part's weights and bias are put back after it.
    //
    // With a hidden layer on the enrolled part, the first stage is the linear head's: the
    // linear head of the same card and seed is trained whole (the same standardisation,
    // initialisation, draws and dropout masks) and calibrated, its part without an
    // enrolment and its temperature are kept, and only the enrolled part is trained here.
    // So without an enrolment the head reads exactly as the linear head does.
    let linear = match linear_head(clf) {
        true => None,
        false => {
            let mut card = clf.card.clone();
            if let crate::model::Arch::EncoderHead { hidden, .. } = &mut card.arch {
                *hidden = 0;
            }
            let mut lin = Classifier::new(card, &clf.device)?;
            let curve = train_one(&mut lin, pack, augmented, train, val, r, progress)?;
            fit_head_temperature(&mut lin, pack, val)?;
            Some((lin, curve))
        }
    };
    let (alone, first, bias_alone) = match &linear {
        Some((lin, curve)) => (curve.clone(), snapshot(lin)?, part_bias(lin, 0.0)?),
        None => {
            let alone = stage.fit(clf, &[&scopes[1]], &[Scope::Clip], 0)?;
            (alone, snapshot(clf)?, part_bias(clf, 0.0)?)
        }
    };
    let with = stage.fit(clf, &[&scopes[0]], &[Scope::Enrolment], r.epochs)?;
    let bias_with = part_bias(clf, 1.0)?;
    {
        let vars = clf.varmap.data().lock().expect("varmap lock");
        let w = &vars["out.weight"];
        let (rows, f) = w.as_tensor().dims2()?;
        let n = n_alone;
        let mut now = w.as_tensor().to_vec2::<f32>()?;
        let before = first["out.weight"].to_vec2::<f32>()?;
        for (row, old) in now.iter_mut().zip(&before) {
            row[..n].copy_from_slice(&old[..n]);
        }
        w.set(&Tensor::from_vec(
            now.concat(),
            (rows, f),
            w.as_tensor().device(),
        )?)?;
    }
    set_part_biases(clf, &bias_alone, &bias_with)?;
    if let Some((lin, _)) = &linear {
        // Both parts at the linear head's temperature. One fitted to the enrolled part alone
        // on the validation speakers left it underconfident on the test speakers (mixed:
        // ECE 0.141 against 0.074; docs/recognition.md, "Enrolment").
        clf.card.temperature = lin.card.temperature;
    }
    Ok(alone
        .iter()
        .zip(&with)
        .map(|(a, b)| (a + b) / 2.0)
        .collect())
}

/// Whether `clf` is a head without a hidden layer.
fn linear_head(clf: &Classifier) -> bool {
    matches!(
        clf.card.arch,
        crate::model::Arch::EncoderHead { hidden: 0, .. }
    )
}

/// Every variable of `clf`, copied.
fn snapshot(clf: &Classifier) -> Result<BTreeMap<String, Tensor>> {
    let vars = clf.varmap.data().lock().expect("varmap lock");
    vars.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// An enrolment head's output layer, and the training mean and deviation of its
/// last feature, the enrolment's weight.
struct OutputLayer {
    weight: Vec<Vec<f32>>,
    bias: Vec<f32>,
    mu_w: f64,
    sd_w: f64,
}

impl OutputLayer {
    fn of(vars: &std::collections::HashMap<String, candle_core::Var>) -> Result<Self> {
        let (Some(w), Some(b), Some(mu), Some(sd)) = (
            vars.get("out.weight"),
            vars.get("out.bias"),
            vars.get("norm_mean"),
            vars.get("norm_std"),
        ) else {
            return Err(Error::Model(
                "an enrolment head without a linear output layer".into(),
            ));
        };
        // The weight feature is the last of the standardised features (and the last
        // column of the output layer, whose other columns may be a hidden layer's).
        let last = |t: &candle_core::Var| -> Result<f64> {
            let v = t.as_tensor().to_vec1::<f32>()?;
            v.last()
                .map(|&x| x as f64)
                .ok_or_else(|| Error::Model("an enrolment head without features".into()))
        };
        Ok(Self {
            weight: w.as_tensor().to_vec2::<f32>()?,
            bias: b.as_tensor().to_vec1::<f32>()?,
            mu_w: last(mu)?,
            sd_w: last(sd)?,
        })
    }
}

/// Each class's bias of an enrolment head's part at enrolment weight `w` (0: the
/// vector alone, 1: a full enrolment): the output bias plus the weight feature's term.
fn part_bias(clf: &Classifier, w: f64) -> Result<Vec<f64>> {
    let vars = clf.varmap.data().lock().expect("varmap lock");
    let o = OutputLayer::of(&vars)?;
    Ok(o.weight
        .iter()
        .zip(&o.bias)
        .map(|(row, &b)| row[row.len() - 1] as f64 * (w - o.mu_w) / o.sd_w + b as f64)
        .collect())
}

/// Sets the output bias and the weight feature's column of an enrolment head so
/// that its part without an enrolment has biases `alone` and its enrolled part `with`.
fn set_part_biases(clf: &Classifier, alone: &[f64], with: &[f64]) -> Result<()> {
    let vars = clf.varmap.data().lock().expect("varmap lock");
    let OutputLayer {
        weight: mut wv,
        mu_w: mu,
        sd_w: sd,
        ..
    } = OutputLayer::of(&vars)?;
    let mut bv = Vec::with_capacity(alone.len());
    for ((row, &a), &e) in wv.iter_mut().zip(alone).zip(with) {
        let last = row.len() - 1;
        // w = 0: (e - a)(-mu) + a + mu (e - a) = a; w = 1: (e - a)(1 - mu) + a + mu (e - a) = e.
        row[last] = (sd * (e - a)) as f32;
        bv.push((a + mu * (e - a)) as f32);
    }
    let (w, b) = (&vars["out.weight"], &vars["out.bias"]);
    let (rows, f) = (wv.len(), wv.first().map_or(0, Vec::len));
    w.set(&Tensor::from_vec(
        wv.concat(),
        (rows, f),
        w.as_tensor().device(),
    )?)?;
    b.set(&Tensor::from_vec(bv, rows, b.as_tensor().device())?)?;
    Ok(())
}

/// What one stage of head training reads: the windows, their clips and labels.
struct Stage<'a> {
    pack: &'a EncoderPack,
    train: &'a [usize],
    val: &'a [usize],
    owner: &'a [usize],
    labels: &'a [u32],
    r: &'a HeadRecipe,
    progress: &'a dyn Fn(usize, f64, f64),
}

impl Stage<'_> {
    /// Trains every variable of `clf` but its standardisation for the recipe's epochs,
    /// each window drawn from one of `variants` at random per epoch, and keeps the epoch
    /// whose validation clips (read under each of `pick`, mean accuracy) score best.
    /// Reports epochs from `first`. Returns the validation accuracy per epoch.
    fn fit(
        &self,
        clf: &mut Classifier,
        variants: &[&Vec<FeatureMatrix>],
        pick: &[Scope],
        first: usize,
    ) -> Result<Vec<f64>> {
        let (pack, val, r) = (self.pack, self.val, self.r);
        let n = self.labels.len();
        let (trainable, penalised): (Vec<candle_core::Var>, Vec<candle_core::Var>) = {
            let vars = clf.varmap.data().lock().expect("varmap lock");
            let t: Vec<_> = vars
                .iter()
                .filter(|(k, _)| !k.starts_with("norm_"))
                .collect();
            (
                t.iter().map(|(_, v)| (*v).clone()).collect(),
                t.iter()
                    .filter(|(k, _)| k.ends_with("weight"))
                    .map(|(_, v)| (*v).clone())
                    .collect(),
            )
        };
        let mut opt = AdamW::new(
            trainable,
            ParamsAdamW {
                lr: r.lr,
                weight_decay: r.weight_decay,
                ..Default::default()
            },
        )?;
        let mut rng = StdRng::seed_from_u64(r.seed.wrapping_add(first as u64));
        clf.net.seed_dropout(r.seed.wrapping_add(first as u64));
        let corpus_of = |i: usize| pack.clips[self.train[self.owner[i]]].corpus.as_str();
        let mut epochs = EpochOrder::new(n, r.balance_corpora);
        let mut curve = Vec::new();
        let mut best: Option<(f64, BTreeMap<String, Tensor>)> = None;
        for epoch in 0..r.epochs {
            let epoch_order = epochs.next(&mut rng, corpus_of);
            let mut loss_sum = 0.0;
            for batch in epoch_order.chunks(r.batch_size) {
                let rows: Vec<FeatureMatrix> = batch
                    .iter()
                    .map(|&i| variants[rng.random_range(0..variants.len())][i].clone())
                    .collect();
                let x = clf.batch_tensor(&rows)?;
                let y = Tensor::from_vec(
                    batch.iter().map(|&i| self.labels[i]).collect::<Vec<_>>(),
                    batch.len(),
                    &clf.device,
                )?;
                let logits = clf.net.forward_t(&x, true)?;
                let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
                let ce = loss.to_scalar::<f32>()? as f64;
                if r.l2 > 0.0 {
                    for w in &penalised {
                        loss = (loss + (w.as_tensor().sqr()?.sum_all()? * r.l2)?)?;
                    }
                }
                opt.backward_step(&loss)?;
                loss_sum += ce * batch.len() as f64;
            }
            let acc = if val.is_empty() {
                0.0
            } else {
                let mut hits = 0;
                for &scope in pick {
                    let p = clip_probs(clf, pack, val, scope)?;
                    hits += p
                        .iter()
                        .zip(val)
                        .filter(|(p, &c)| crate::labels::argmax(&p[..]) == pack.clips[c].label)
                        .count();
                }
                hits as f64 / (val.len() * pick.len()) as f64
            };
            curve.push(acc);
            (self.progress)(first + epoch, loss_sum / n as f64, acc);
            if best.as_ref().is_none_or(|(b, _)| acc > *b) || val.is_empty() {
                best = Some((acc, snapshot(clf)?));
            }
        }
        if let Some((_, snap)) = best {
            let vars = clf.varmap.data().lock().expect("varmap lock");
            for (k, t) in snap {
                vars[&k].set(&t)?;
            }
        }
        Ok(curve)
    }
}

/// Each training window normalised by a profile of a few of its speaker's clips (2 to
/// 10, its own among them), drawn once from `seed`.
fn few_clip_inputs(
    pack: &EncoderPack,
    clips: &[usize],
    seed: u64,
    calm: Option<&[bool]>,
) -> Vec<FeatureMatrix> {
    let blocks = pack.spec.encoder.as_ref().map_or(0, |e| e.blocks);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_f00d);
    let mut by_speaker: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, &c) in clips.iter().enumerate() {
        by_speaker
            .entry(pack.clips[c].speaker.as_str())
            .or_default()
            .push(k);
    }
    let windows = windows_of(pack, clips);
    let mut by_clip: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(w, k) in &windows {
        by_clip.entry(k).or_default().push(w);
    }
    // One drawn profile per clip, shared by its windows.
    let mut prof: BTreeMap<usize, SpeakerProfile> = BTreeMap::new();
    for (k, &c) in clips.iter().enumerate() {
        let mates = &by_speaker[pack.clips[c].speaker.as_str()];
        let m = rng.random_range(2..=10usize).min(mates.len());
        let mut chosen: Vec<usize> = mates.choose_multiple(&mut rng, m).copied().collect();
        if !chosen.contains(&k) {
            chosen[0] = k;
        }
        let mut p = SpeakerProfile::default();
        for j in chosen {
            for &w in by_clip.get(&j).map(Vec::as_slice).unwrap_or(&[]) {
                if joins_profile(pack, w, calm) {
                    p.add_llds(&vector_matrix(pack, w));
                }
            }
        }
        prof.insert(k, p);
    }
    windows
        .into_iter()
        .map(|(w, k)| {
            encoder_row(
                Some(vector_matrix(pack, w)),
                &prof[&k],
                blocks,
                calm.map(|c| c[w]),
            )
        })
        .collect()
}

#[cfg(test)]
mod calm_tests {
    use super::*;
    use crate::corpus::Clip;
    use crate::encoder::{pooled_len, WIDTH};
    use crate::train::encpack::PackWindow;

    /// Speech windows a clip.
    const WINDOWS: usize = 8;

    /// Four speakers, 16 clips each (every label twice), 8 speech windows a clip (enough
    /// for the gate's penalty, sized for thousands of windows); block 3's mean is noise
    /// plus -1.5 (neutral, calm) or +1.5 (other emotions) on its first 64 values.
    fn pack() -> EncoderPack {
        pack_for("encoder_head_calm")
    }

    /// [`pack`] with the feature spec of architecture `arch`.
    pub(super) fn pack_for(arch: &str) -> EncoderPack {
        let arch = crate::model::Arch::from_name(arch).unwrap();
        let spec = crate::train::default_spec(&arch);
        let dim = pooled_len(3);
        let mut rng = StdRng::seed_from_u64(7);
        let (mut clips, mut windows, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..4 {
            for i in 0..16 {
                let label = i % 8;
                clips.push(Clip {
                    path: format!("s{s}_{i}.wav").into(),
                    label,
                    speaker: format!("x_{s}"),
                    corpus: "x".into(),
                });
                for k in 0..WINDOWS {
                    windows.push(PackWindow {
                        clip: clips.len() - 1,
                        start: k,
                        speech: true,
                    });
                    let shift = if label < 2 { -1.5 } else { 1.5 };
                    data.extend((0..dim).map(|j| {
                        let noise: f32 = rng.random_range(-1.0..1.0);
                        let at = 3 * 2 * WIDTH;
                        noise
                            + if (at..at + 64).contains(&j) {
                                shift
                            } else {
                                0.0
                            }
                    }));
                }
            }
        }
        EncoderPack {
            spec,
            clips,
            windows,
            dim,
            data,
        }
    }

    #[test]
    fn a_fitted_gate_admits_the_calm_windows_of_a_voice_it_never_heard() {
        let p = pack();
        let train: Vec<usize> = (0..48).collect();
        let g = fit_calm_gate(&p, &train, 3).unwrap();
        assert_eq!((g.layer, g.weight.len()), (3, WIDTH));
        let said = admitted(&p, Some(&g)).unwrap();
        for (w, &yes) in said.iter().enumerate().skip(48 * WINDOWS) {
            let label = p.clips[p.windows[w].clip].label;
            assert_eq!(yes, label < 2, "window {w}, label {label}");
        }
        // The reference of the new speaker holds exactly its 4 calm clips' windows; a window
        // counts itself only when admitted.
        let test: Vec<usize> = (48..64).collect();
        let (owner, rows) = inputs(&p, &test, Scope::Speaker, Some(&said));
        let d = p.dim;
        for (k, row) in owner.iter().zip(&rows) {
            assert_eq!(row.data[2 * d], (4 * WINDOWS) as f32);
            let calm = p.clips[test[*k]].label < 2;
            assert_eq!(row.data[2 * d + 1], if calm { 1.0 } else { 0.0 });
        }
        // A gate needs both kinds of window to learn from.
        let calm_only: Vec<usize> = (0..48).filter(|&c| p.clips[c].label < 2).collect();
        let e = fit_calm_gate(&p, &calm_only, 3).unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;
    use crate::model::{Arch, ModelCard};

    pub(super) fn head(arch: Arch, pack: &EncoderPack, seed: u64) -> Classifier {
        let card = ModelCard {
            card_version: crate::model::CARD_VERSION,
            emoscope_version: String::new(),
            arch,
            features: pack.spec.clone(),
            labels: crate::labels::LABELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            temperature: 1.0,
            training_data: Vec::new(),
            protocol: String::new(),
            speaker_dependent: false,
            test_speakers: Vec::new(),
            validation_speakers: Vec::new(),
            train_speakers: Vec::new(),
            epochs: 3,
            seed,
            test_metrics: None,
            test_metrics_per_corpus: Vec::new(),
            test_metrics_enrolled: None,
            date: String::new(),
            notes: String::new(),
            base_model: None,
        };
        Classifier::new(card, &candle_core::Device::Cpu).unwrap()
    }

    fn recipe(seed: u64, seeds: usize, balance_corpora: bool) -> HeadRecipe {
        HeadRecipe {
            epochs: 3,
            batch_size: 64,
            lr: 1e-2,
            weight_decay: 0.0,
            l2: 1e-3,
            seed,
            balance_corpora,
            seeds,
        }
    }

    fn weights(clf: &Classifier) -> BTreeMap<String, Vec<f32>> {
        let vars = clf.varmap.data().lock().unwrap();
        vars.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_head_averaged_over_seeds_holds_the_mean_of_the_seeds_weights() {
        let p = calm_tests::pack_for("encoder_head");
        let arch = Arch::from_name("encoder_head").unwrap();
        let (tr, va): (Vec<usize>, Vec<usize>) = ((0..40).collect(), (40..48).collect());
        let one = |seed| {
            let mut m = head(arch.clone(), &p, seed);
            train(
                &mut m,
                &p,
                None,
                &tr,
                &va,
                &recipe(seed, 1, false),
                &|_, _, _| {},
            )
            .unwrap();
            weights(&m)
        };
        let (a, b) = (one(11), one(12));
        let mut avg = head(arch.clone(), &p, 11);
        train(
            &mut avg,
            &p,
            None,
            &tr,
            &va,
            &recipe(11, 2, false),
            &|_, _, _| {},
        )
        .unwrap();
        let avg_w = weights(&avg);
        assert_eq!(avg_w.len(), a.len());
        let mut apart = 0.0f32;
        for (name, w) in &avg_w {
            for ((&m, &x), &y) in w.iter().zip(&a[name]).zip(&b[name]) {
                assert!(
                    (m - (x + y) / 2.0).abs() < 1e-5,
                    "{name}: {m} against {x}, {y}"
                );
                apart = apart.max((x - y).abs());
            }
        }
        // The two seeds did train to different heads, so the mean is not one of them.
        assert!(apart > 1e-3, "the seeds' heads differ by at most {apart}");
        assert!(avg.card.temperature > 0.0 && avg.card.temperature.is_finite());
        assert!(
            avg.card
                .notes
                .contains("the mean of 2 heads' weights, seeds 11-12"),
            "{}",
            avg.card.notes
        );
        // An MLP head's weights cannot be averaged into an ensemble: refused by name.
        let mut mlp = arch.clone();
        if let Arch::EncoderHead { hidden, .. } = &mut mlp {
            *hidden = 16;
        }
        let mut m = head(mlp, &p, 11);
        let e = train(
            &mut m,
            &p,
            None,
            &tr,
            &va,
            &recipe(11, 2, false),
            &|_, _, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("linear")
                && e.contains("--average-seeds 1")
                && e.contains("emoscope ensemble"),
            "{e}"
        );
    }

    #[test]
    fn balancing_gives_every_group_an_equal_share_of_an_epoch() {
        // 90 items of corpus "a", 10 of "b": balanced, each gives 50 of the 100 draws, every
        // "b" item five times over, and no item comes from outside the list.
        let items: Vec<usize> = (0..100).collect();
        let group = |i: usize| if i < 90 { "a" } else { "b" };
        let order = crate::train::balanced_by(&items, group, 5);
        assert_eq!(order.len(), 100);
        assert_eq!(order.iter().filter(|&&i| group(i) == "b").count(), 50);
        for i in 90..100 {
            assert_eq!(order.iter().filter(|&&j| j == i).count(), 5, "item {i}");
        }
        assert_eq!(order, crate::train::balanced_by(&items, group, 5), "seeded");
        // One group: the items as given.
        assert_eq!(crate::train::balanced_by(&items, |_| 0, 5), items);
    }

    #[test]
    fn balanced_epochs_draw_from_every_window_each_epoch() {
        // 90 windows of corpus "a", 10 of "b": an epoch gives each 50 draws, so "a" shows
        // at most 50 of its 90 windows an epoch, but over epochs every one of them; and
        // one corpus alone is the plain shuffled order.
        let group = |i: usize| if i < 90 { "a" } else { "b" };
        let mut rng = StdRng::seed_from_u64(3);
        let mut epochs = EpochOrder::new(100, true);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let order = epochs.next(&mut rng, group);
            assert_eq!(order.iter().filter(|&&i| group(i) == "b").count(), 50);
            seen.extend(order.into_iter().filter(|&i| group(i) == "a"));
        }
        assert!(
            seen.len() >= 85,
            "corpus a's windows seen over 8 epochs: {}",
            seen.len()
        );
        let mut one = EpochOrder::new(100, true);
        let order = one.next(&mut rng, |_| 0);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(order, sorted, "shuffled");
    }
}

#[cfg(test)]
mod enrol_tests {
    use super::calm_tests::pack_for;
    use super::*;
    use crate::corpus::Clip;
    use crate::encoder::{pooled_len, WIDTH};
    use crate::train::encpack::PackWindow;

    #[test]
    fn an_enrolment_holds_the_speakers_other_neutral_clips_and_never_the_session() {
        // 4 speakers, 16 clips each, labels i % 8: two neutral clips a speaker, 8 windows each.
        let p = pack_for("encoder_head_enrol");
        let calm = admitted_by(&p, &p.spec);
        assert!(
            calm.as_ref().unwrap().iter().all(|&a| !a),
            "no session window joins"
        );
        let test: Vec<usize> = (48..64).collect();
        let d = p.dim;
        let (owner, rows) = inputs(&p, &test, Scope::Enrolment, calm.as_deref());
        let mean_of = |clips: &[usize]| -> Vec<f32> {
            let ws: Vec<usize> = (0..p.windows.len())
                .filter(|&w| clips.contains(&p.windows[w].clip))
                .collect();
            (0..d)
                .map(|j| {
                    ws.iter().map(|&w| p.vector(w)[j] as f64).sum::<f64>() as f32 / ws.len() as f32
                })
                .collect()
        };
        let (n0, n1) = (48, 56); // speaker 3's neutral clips
        let order = windows_of(&p, &test);
        assert_eq!(order.iter().map(|&(_, k)| k).collect::<Vec<_>>(), owner);
        for (&(w, k), row) in order.iter().zip(&rows) {
            let c = test[k];
            // A neutral clip's enrolment is the other neutral clip; everyone else's both.
            let enrolled: Vec<usize> = match c {
                48 => vec![n1],
                56 => vec![n0],
                _ => vec![n0, n1],
            };
            assert_eq!(row.data[2 * d], (8 * enrolled.len()) as f32, "clip {c}");
            assert_eq!(
                row.data[2 * d + 1],
                0.0,
                "the window is not in its enrolment"
            );
            let m = mean_of(&enrolled);
            for j in [0, 3 * 2 * WIDTH, d - 1] {
                let want = p.vector(w)[j] - m[j];
                assert!((row.data[d + j] - want).abs() < 1e-4, "clip {c} value {j}");
            }
        }
        // Under any other profile the session's own speech never enters: no reference.
        for scope in [Scope::Speaker, Scope::Emotion, Scope::Clip] {
            let (_, rows) = inputs(&p, &test, scope, calm.as_deref());
            for row in &rows {
                assert_eq!(row.data[2 * d], 0.0, "{scope:?}");
                assert!(row.data[d..2 * d].iter().all(|&x| x == 0.0), "{scope:?}");
            }
        }
    }

    /// 18 speakers, each with a voice of its own: an offset drawn from -3 to 3 on each
    /// eighth of the first 64 values of block 3's mean, of the size of the emotions' own marks (emotion l: +2 on
    /// its 8 values l*8..l*8+8 of it). Read alone a voice's offset passes for an emotion;
    /// against the speaker's neutral speech it is gone.
    fn voices() -> EncoderPack {
        let arch = crate::model::Arch::from_name("encoder_head_enrol").unwrap();
        let spec = crate::train::default_spec(&arch);
        let dim = pooled_len(3);
        let at = 3 * 2 * WIDTH;
        let mut rng = StdRng::seed_from_u64(5);
        let (mut clips, mut windows, mut data) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..18 {
            let voice: Vec<f32> = (0..8).map(|_| rng.random_range(-3.0..3.0)).collect();
            for i in 0..16 {
                let label = i % 8;
                clips.push(Clip {
                    path: format!("s{s}_{i}.wav").into(),
                    label,
                    speaker: format!("x_{s:02}"),
                    corpus: "x".into(),
                });
                for k in 0..4 {
                    windows.push(PackWindow {
                        clip: clips.len() - 1,
                        start: k,
                        speech: true,
                    });
                    data.extend((0..dim).map(|j| {
                        let noise: f32 = rng.random_range(-0.5..0.5);
                        match j.checked_sub(at).filter(|&v| v < 64) {
                            Some(v) => {
                                noise + voice[v / 8] + if v / 8 == label { 2.0 } else { 0.0 }
                            }
                            None => noise,
                        }
                    }));
                }
            }
        }
        EncoderPack {
            spec,
            clips,
            windows,
            dim,
            data,
        }
    }

    #[test]
    fn each_part_of_an_enrolment_head_gets_the_bias_it_is_given() {
        let p = pack_for("encoder_head_enrol");
        let clf = enrol_head(&p, 4);
        {
            // A weight feature whose training mean and deviation are not 0 and 1.
            let vars = clf.varmap.data().lock().unwrap();
            let f = vars["norm_mean"].as_tensor().dims1().unwrap();
            let dev = candle_core::Device::Cpu;
            vars["norm_mean"]
                .set(&Tensor::new(vec![0.4f32; f], &dev).unwrap())
                .unwrap();
            vars["norm_std"]
                .set(&Tensor::new(vec![0.7f32; f], &dev).unwrap())
                .unwrap();
        }
        let alone: Vec<f64> = (0..8).map(|k| k as f64 * 0.5 - 1.0).collect();
        let with: Vec<f64> = (0..8).map(|k| 2.0 - k as f64 * 0.3).collect();
        set_part_biases(&clf, &alone, &with).unwrap();
        for (got, want) in [
            (part_bias(&clf, 0.0).unwrap(), &alone),
            (part_bias(&clf, 1.0).unwrap(), &with),
        ] {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5, "{g} against {w}");
            }
        }
    }

    /// A linear enrolment head on `p`'s spec, its weights drawn from `seed`.
    fn enrol_head(p: &EncoderPack, seed: u64) -> Classifier {
        mlp_enrol_head(p, seed, 0)
    }

    /// An enrolment head whose enrolled part has a hidden layer of `hidden` (0: linear).
    fn mlp_enrol_head(p: &EncoderPack, seed: u64, hidden: usize) -> Classifier {
        let mut arch = crate::model::Arch::from_name("encoder_head_enrol").unwrap();
        if let crate::model::Arch::EncoderHead { hidden: h, .. } = &mut arch {
            *h = hidden;
        }
        super::seed_tests::head(arch, p, seed)
    }

    /// With a hidden layer the head still reads a window without an enrolment through its
    /// linear part alone (whatever the hidden layer holds), and a window with a full
    /// enrolment through the hidden layer alone (whatever the linear part holds).
    #[test]
    fn an_mlp_enrolment_head_reads_each_part_through_its_own_weights() {
        let p = voices();
        let clf = mlp_enrol_head(&p, 3, 16);
        let idx: Vec<usize> = (0..40).collect();
        let calm = admitted_by(&p, &clf.card.features);
        let read = |scope| logits(&clf, &inputs(&p, &idx, scope, calm.as_deref()).1).unwrap();
        // Only windows whose enrolment holds two speech windows or more count it fully.
        let full: Vec<bool> = inputs(&p, &idx, Scope::Enrolment, calm.as_deref())
            .1
            .iter()
            .map(|m| m.data[m.data.len() - 2] >= crate::model::DEFAULT_ENROL_RAMP as f32)
            .collect();
        assert!(full.iter().filter(|&&f| f).count() >= 20);
        let read_full = || -> Vec<Vec<f32>> {
            read(Scope::Enrolment)
                .into_iter()
                .zip(&full)
                .filter(|(_, &f)| f)
                .map(|(l, _)| l)
                .collect()
        };
        let (alone, enrolled) = (read(Scope::Clip), read_full());
        let dev = candle_core::Device::Cpu;
        let moved = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            a.iter()
                .flatten()
                .zip(b.iter().flatten())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        {
            let vars = clf.varmap.data().lock().unwrap();
            let w = &vars["hidden.weight"];
            let shape = w.as_tensor().shape().clone();
            w.set(&Tensor::randn(0f32, 1.0, shape, &dev).unwrap())
                .unwrap();
        }
        assert!(moved(&alone, &read(Scope::Clip)) < 1e-6);
        let enrolled_now = read_full();
        assert!(moved(&enrolled, &enrolled_now) > 1e-2);
        {
            let vars = clf.varmap.data().lock().unwrap();
            let w = &vars["out.weight"];
            let mut v = w.as_tensor().to_vec2::<f32>().unwrap();
            for row in &mut v {
                for x in &mut row[..WIDTH] {
                    *x += 1.0;
                }
            }
            let (r, c) = (v.len(), v[0].len());
            w.set(&Tensor::from_vec(v.concat(), (r, c), &dev).unwrap())
                .unwrap();
        }
        assert!(moved(&enrolled_now, &read_full()) < 1e-5);
        assert!(moved(&alone, &read(Scope::Clip)) > 1e-2);
    }

    #[test]
    fn an_enrolled_head_reads_voices_it_never_heard_against_their_neutral_speech() {
        for hidden in [0, 32] {
            enrolled_head_reads_new_voices(hidden);
        }
    }

    fn enrolled_head_reads_new_voices(hidden: usize) {
        let p = voices();
        let (tr, va, te): (Vec<usize>, Vec<usize>, Vec<usize>) = (
            (0..192).collect(),
            (192..224).collect(),
            (224..288).collect(),
        );
        let mut clf = mlp_enrol_head(&p, 1, hidden);
        let r = HeadRecipe {
            epochs: 40,
            batch_size: 64,
            lr: 1e-2,
            weight_decay: 0.0,
            l2: 1e-4,
            seed: 1,
            balance_corpora: false,
            seeds: 1,
        };
        train(&mut clf, &p, None, &tr, &va, &r, &|_, _, _| {}).unwrap();
        let acc = |scope| {
            let probs = clip_probs(&clf, &p, &te, scope).unwrap();
            let hits = probs
                .iter()
                .zip(&te)
                .filter(|(q, &c)| crate::labels::argmax(&q[..]) == p.clips[c].label)
                .count();
            hits as f64 / te.len() as f64
        };
        let (alone, enrolled) = (acc(Scope::Clip), acc(Scope::Enrolment));
        assert!(
            enrolled >= 0.9,
            "hidden {hidden}, with the enrolment: {enrolled}"
        );
        assert!(
            enrolled >= alone + 0.2,
            "hidden {hidden}: alone {alone}, enrolled {enrolled}"
        );
        // Without an enrolment every profile reads alike: the session never enters.
        assert_eq!(acc(Scope::Speaker), alone);
    }
}
