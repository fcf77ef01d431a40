//! The architectures, each a struct built from a `VarBuilder` with a `forward`: the two
//! models of paper 1 (MFCC CNN and LSTM), the FSER mel CNN of paper 2, and emoscope's own
//! attention CNN. All take `(batch, 1, rows, frames)` and return `(batch, 8)` logits.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use serde::{Deserialize, Serialize};

use crate::features::PROFILE_FRAMES_AT;

mod emocnn;
mod encoder_head;
mod layers;
mod papers;
mod prosody;

pub use emocnn::*;
pub use encoder_head::*;
pub use layers::*;
pub use papers::*;
pub use prosody::*;

/// Which architecture, with its size parameters; stored in the model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Arch {
    /// Paper 1 CNN: 3 conv layers of 32 kernels (first 10x3), 2x2 average pooling,
    /// LeakyReLU 0.01, dropout 0.5, one dense layer.
    Paper1Cnn,
    /// Paper 1 LSTM: two stacked LSTM layers (dropout 0.5 between), MLP head.
    Paper1Lstm { hidden: usize },
    /// FSER (paper 2): four conv blocks (conv, ReLU, 2x2 max-pool, dropout), three dense layers.
    Fser,
    /// emoscope's model: four conv-BN-ReLU-pool blocks, attention + max pooling over time.
    #[serde(rename = "emocnn")]
    EmoCnn { width: usize },
    /// An MLP on the window's speaker-normalised prosody functionals alone (the input's
    /// last row); the spectrogram rows are not read.
    Prosody,
    /// emocnn's spectrogram embedding and the prosody MLP's, side by side before the head.
    Fusion { width: usize },
    /// A head on the frozen pretrained encoder (an encoder spec's one input row): the
    /// window's pooled vector standardised by training statistics, with (when
    /// `profile_ramp` is set) the same vector z-scored by the speaker profile, weighed by
    /// how much the profile holds beyond the window (none for one window alone, full once
    /// it holds `profile_ramp` windows more); an MLP of one hidden layer of `hidden`
    /// (0: a linear head). A head on a reference (calm or enrolment) with a hidden layer
    /// reads the vector alone linearly and only the vector minus the reference through the
    /// hidden layer.
    EncoderHead {
        hidden: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile_ramp: Option<f64>,
        /// Read only the time-mean of this representation (0: block 0's input, k: block
        /// k's output); unset: every representation's mean and standard deviation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        layer: Option<usize>,
        /// The profile is a calm reference (the features' [`crate::features::CalmGate`]
        /// picks the windows it holds) and the second part of the input is the vector
        /// minus its mean: set exactly when the features have a calm gate.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        calm: bool,
        /// The profile is an enrolment (the features' [`crate::features::EncoderSpec::enrolment`]:
        /// the speaker's neutral speech recorded before the session) and the second part of
        /// the input is the vector minus its mean: set exactly when the features have one.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        enrol: bool,
    },
    /// Trained models of one feature spec averaged (`emoscope ensemble`): each member's
    /// probabilities at its own temperature, averaged; the output is the log of that mean.
    /// Not trained as such; built from models trained alone.
    Ensemble { members: Vec<Member> },
}

/// One model of an ensemble: its architecture and the temperature it was calibrated with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub arch: Arch,
    pub temperature: f64,
    /// Where the member came from (its folder when the ensemble was made); for people.
    #[serde(default)]
    pub from: String,
    /// Set for a member whose speaker-normalised features say little until the profile
    /// holds more than the window itself (the prosody MLP: against a profile of one
    /// window alone its z-scores have zero mean by construction). Its weight in the
    /// average is the speech the profile holds beyond the window, in windows' worth,
    /// divided by this, at most 1: none for one file alone or the first window of a live
    /// session, full once the profile holds this many windows more than the window.
    /// Unset: weight 1 always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_ramp: Option<f64>,
}

/// The most a [`Member::profile_ramp`] may ask for, in windows.
pub const MAX_PROFILE_RAMP: f64 = 10_000.0;

/// Whether `r` may be a [`Member::profile_ramp`]: above 0, at most [`MAX_PROFILE_RAMP`].
pub fn profile_ramp_allowed(r: f64) -> bool {
    r.is_finite() && r > 0.0 && r <= MAX_PROFILE_RAMP
}

/// The most members an ensemble may have (a card is a file anyone can edit).
pub const MAX_MEMBERS: usize = 16;

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "paper1_cnn" => Arch::Paper1Cnn,
            "paper1_lstm" => Arch::Paper1Lstm { hidden: 1024 },
            "fser" => Arch::Fser,
            "emocnn" => Arch::EmoCnn { width: 24 },
            "prosody" => Arch::Prosody,
            "fusion" => Arch::Fusion { width: 8 },
            "encoder_head" => Arch::EncoderHead {
                hidden: 0,
                profile_ramp: None,
                layer: Some(DEFAULT_HEAD_LAYER),
                calm: false,
                enrol: false,
            },
            "encoder_head_profile" => Arch::EncoderHead {
                hidden: 0,
                profile_ramp: Some(DEFAULT_HEAD_RAMP),
                layer: Some(DEFAULT_HEAD_LAYER),
                calm: false,
                enrol: false,
            },
            "encoder_head_calm" => Arch::EncoderHead {
                hidden: 0,
                profile_ramp: Some(DEFAULT_CALM_RAMP),
                layer: Some(DEFAULT_HEAD_LAYER),
                calm: true,
                enrol: false,
            },
            "encoder_head_enrol" => Arch::EncoderHead {
                hidden: 0,
                profile_ramp: Some(DEFAULT_ENROL_RAMP),
                layer: Some(DEFAULT_HEAD_LAYER),
                calm: false,
                enrol: true,
            },
            _ => return None,
        })
    }

    /// Refuses sizes that would make the network absurdly large (a card is a file anyone can
    /// edit) and architectures whose input the feature spec does not provide.
    pub fn check(
        &self,
        features: &crate::features::FeatureSpec,
    ) -> std::result::Result<(), String> {
        match *self {
            Arch::EmoCnn { width } | Arch::Fusion { width } if !(1..=256).contains(&width) => {
                return Err(format!("{} width {width} must be 1 to 256", self.name()))
            }
            Arch::Paper1Lstm { hidden } if !(1..=4096).contains(&hidden) => {
                return Err(format!(
                    "paper1_lstm hidden size {hidden} must be 1 to 4096"
                ))
            }
            Arch::Ensemble { ref members } => {
                if !(1..=MAX_MEMBERS).contains(&members.len()) {
                    return Err(format!(
                        "ensemble of {} members: it must have 1 to {MAX_MEMBERS}",
                        members.len()
                    ));
                }
                // No larger in all than the largest single model a card may ask for.
                let total = self.approx_params();
                let most = (Arch::Paper1Lstm { hidden: 4096 }).approx_params();
                if total > most {
                    return Err(format!(
                        "ensemble of about {total} parameters in all: at most {most}, the largest single model"
                    ));
                }
                for (i, m) in members.iter().enumerate() {
                    if matches!(m.arch, Arch::Ensemble { .. }) {
                        return Err(format!("ensemble member {i} is itself an ensemble"));
                    }
                    if !(m.temperature.is_finite() && (0.01..=100.0).contains(&m.temperature)) {
                        return Err(format!(
                            "ensemble member {i} has temperature {}: it must be 0.01 to 100",
                            m.temperature
                        ));
                    }
                    if let Some(r) = m.profile_ramp {
                        if !profile_ramp_allowed(r) {
                            return Err(format!(
                                "ensemble member {i} has profile_ramp {r}: it must be above 0 and at most {MAX_PROFILE_RAMP}"
                            ));
                        }
                        if !features.prosody {
                            return Err(format!(
                                "ensemble member {i} is weighed by the speaker profile, whose size only a prosody spec's input carries (\"prosody\": false)"
                            ));
                        }
                    }
                    m.arch
                        .check(features)
                        .map_err(|e| format!("ensemble member {i}: {e}"))?;
                }
            }
            _ => {}
        }
        if let Arch::EncoderHead {
            hidden,
            profile_ramp,
            layer,
            calm,
            enrol,
        } = *self
        {
            if calm != features.calm_gate().is_some() {
                return Err("encoder_head reads a calm reference exactly when it has \"calm\": true and the features have a \"calm_gate\"".into());
            }
            if enrol != features.enrolment() {
                return Err("encoder_head reads an enrolment exactly when it has \"enrol\": true and the features have \"enrolment\": true".into());
            }
            if enrol && profile_ramp.is_none() {
                return Err("encoder_head with \"enrol\": true needs a \"profile_ramp\" (windows of enrolment it needs)".into());
            }
            let blocks = features.encoder.as_ref().map_or(0, |e| e.blocks);
            if layer.is_some_and(|l| l > blocks) {
                return Err(format!(
                    "encoder_head layer {layer:?} must be 0 to the encoder's {blocks} blocks"
                ));
            }
            if features.encoder.is_none() {
                return Err("encoder_head reads the encoder's vectors, but the card's features have no \"encoder\"".into());
            }
            if hidden > 4096 {
                return Err(format!(
                    "encoder_head hidden size {hidden} must be 0 to 4096"
                ));
            }
            if profile_ramp.is_some()
                != (features.normalisation == crate::features::Normalisation::Speaker)
            {
                return Err("encoder_head reads the speaker profile exactly when it has a profile_ramp and the features have \"normalisation\": \"speaker\"".into());
            }
            if profile_ramp.is_some_and(|r| !profile_ramp_allowed(r)) {
                return Err(format!(
                    "encoder_head profile_ramp {profile_ramp:?} must be above 0 and at most {MAX_PROFILE_RAMP}"
                ));
            }
        } else if features.encoder.is_some() && !matches!(self, Arch::Ensemble { .. }) {
            return Err(format!(
                "{} reads a spectrogram, but the card's features are an encoder's vectors",
                self.name()
            ));
        }
        if matches!(self, Arch::Prosody | Arch::Fusion { .. }) && !features.prosody {
            return Err(format!(
                "{} reads the prosody functionals, but the card's features have \"prosody\": false",
                self.name()
            ));
        }
        Ok(())
    }

    /// About how many weights the architecture has (its large layers; input sizes as
    /// trained): what an ensemble's members add up to.
    pub fn approx_params(&self) -> usize {
        match self {
            Arch::Paper1Cnn => 40_000,
            // Two layers of 4h(input + h) weights, the second with input h.
            Arch::Paper1Lstm { hidden: h } => 4 * h * (40 + h) + 8 * h * h + 128 * h,
            Arch::Fser => 1_000_000,
            Arch::EmoCnn { width: w } | Arch::Fusion { width: w } => 9 * 26 * w * w + 20_000,
            Arch::Prosody => 30_000,
            Arch::EncoderHead { hidden, .. } => {
                let d = 2 * crate::encoder::pooled_len(crate::encoder::BUILTIN_BLOCKS);
                (d + 8) * hidden.max(&8) + 4 * d
            }
            Arch::Ensemble { members } => members.iter().map(|m| m.arch.approx_params()).sum(),
        }
    }

    /// Whether `other` builds the same network with the same weighing of members: equal
    /// but for where ensemble members came from.
    pub fn same_network(&self, other: &Arch) -> bool {
        let plain = |a: &Arch| {
            let mut a = a.clone();
            if let Arch::Ensemble { members } = &mut a {
                members.iter_mut().for_each(|m| m.from.clear());
            }
            a
        };
        plain(self) == plain(other)
    }

    /// What to call the network in status lines and reports: its name, or for an
    /// ensemble its members' ("fusion+prosody"), several alike counted ("encoder_head x3").
    pub fn label(&self) -> String {
        match self {
            Arch::Ensemble { members } => {
                let mut runs: Vec<(&str, usize)> = Vec::new();
                for m in members {
                    match runs.last_mut() {
                        Some((name, n)) if *name == m.arch.name() => *n += 1,
                        _ => runs.push((m.arch.name(), 1)),
                    }
                }
                runs.iter()
                    .map(|&(name, n)| match n {
                        1 => name.to_string(),
                        n => format!("{name} x{n}"),
                    })
                    .collect::<Vec<_>>()
                    .join("+")
            }
            a => a.name().to_string(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Arch::Paper1Cnn => "paper1_cnn",
            Arch::Paper1Lstm { .. } => "paper1_lstm",
            Arch::Fser => "fser",
            Arch::EmoCnn { .. } => "emocnn",
            Arch::Prosody => "prosody",
            Arch::Fusion { .. } => "fusion",
            Arch::EncoderHead { .. } => "encoder_head",
            Arch::Ensemble { .. } => "ensemble",
        }
    }

    pub const NAMES: [&'static str; 7] = [
        "paper1_cnn",
        "paper1_lstm",
        "fser",
        "emocnn",
        "prosody",
        "fusion",
        "encoder_head",
    ];
}

/// A built model of any architecture, with its dropout generator.
pub struct Net {
    body: Body,
    dropout: Dropout,
}

enum Body {
    EncoderHead(EncoderHead),
    Paper1Cnn(Paper1Cnn),
    Paper1Lstm(Box<Paper1Lstm>),
    Fser(Fser),
    EmoCnn(EmoCnn),
    Prosody(Prosody),
    Fusion(Box<Fusion>),
    /// Members with their temperatures and profile ramps.
    Ensemble(Vec<(Body, f64, Option<f64>)>),
}

impl Net {
    pub fn new(arch: &Arch, vb: VarBuilder, rows: usize, frames: usize) -> Result<Self> {
        Ok(Net {
            body: Body::new(arch, vb, rows, frames)?,
            dropout: Dropout::default(),
        })
    }

    /// The encoder head this network is, if it is one.
    pub fn encoder_head(&self) -> Option<&EncoderHead> {
        match &self.body {
            Body::EncoderHead(h) => Some(h),
            _ => None,
        }
    }

    /// Restarts the dropout generator from `seed` (see [`Dropout::reseed`]).
    pub fn seed_dropout(&self, seed: u64) {
        self.dropout.reseed(seed);
    }

    /// Logits `(batch, 8)` for input `(batch, 1, rows, frames)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.body.forward_t(x, train, &self.dropout)
    }
}

impl Body {
    fn new(arch: &Arch, vb: VarBuilder, rows: usize, frames: usize) -> Result<Self> {
        Ok(match arch {
            Arch::Paper1Cnn => Body::Paper1Cnn(Paper1Cnn::new(vb, rows, frames)?),
            Arch::Paper1Lstm { hidden } => {
                Body::Paper1Lstm(Box::new(Paper1Lstm::new(vb, rows, *hidden)?))
            }
            Arch::Fser => Body::Fser(Fser::new(vb, rows, frames)?),
            Arch::EmoCnn { width } => Body::EmoCnn(EmoCnn::new(vb, *width)?),
            Arch::Prosody => Body::Prosody(Prosody::new(vb)?),
            Arch::EncoderHead {
                hidden,
                profile_ramp,
                layer,
                calm,
                enrol,
            } => Body::EncoderHead(EncoderHead::new(
                vb,
                frames,
                *hidden,
                *profile_ramp,
                *layer,
                match (calm, enrol) {
                    (true, _) => Some(CALM_SHARE),
                    (false, true) => Some(ENROL_SHARE),
                    (false, false) => None,
                },
            )?),
            Arch::Fusion { width } => Body::Fusion(Box::new(Fusion::new(vb, *width)?)),
            Arch::Ensemble { members } => Body::Ensemble(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        Ok((
                            Body::new(&m.arch, vb.pp(member_prefix(i)), rows, frames)?,
                            m.temperature,
                            m.profile_ramp,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool, d: &Dropout) -> Result<Tensor> {
        match self {
            Body::Paper1Cnn(m) => m.forward_t(x, train, d),
            Body::Paper1Lstm(m) => m.forward_t(x, train, d),
            Body::Fser(m) => m.forward_t(x, train, d),
            Body::EmoCnn(m) => m.forward_t(x, train, d),
            Body::Prosody(m) => m.forward_t(x, train, d),
            Body::EncoderHead(m) => m.forward_t(x, train, d),
            Body::Fusion(m) => m.forward_t(x, train, d),
            Body::Ensemble(members) => {
                // log(sum_i a_i softmax(z_i / t_i) / sum_i a_i)
                //   = logsumexp_i(log_softmax(z_i / t_i) + ln a_i) - ln sum_i a_i,
                // a_i = 1, or per window the profile weight of a member with a ramp.
                let batch = x.dim(0)?;
                let ones = Tensor::ones((batch, 1), x.dtype(), x.device())?;
                let (logp, weights) = members
                    .iter()
                    .map(|(b, t, ramp)| {
                        let lp = candle_nn::ops::log_softmax(
                            &(b.forward_t(x, train, d)? / *t)?,
                            D::Minus1,
                        )?;
                        let a = match ramp {
                            Some(r) => profile_weight(x, *r)?,
                            None => ones.clone(),
                        };
                        Ok((lp.broadcast_add(&a.log()?)?, a))
                    })
                    .collect::<Result<(Vec<_>, Vec<_>)>>()?;
                let stacked = Tensor::stack(&logp, 0)?;
                let mx = stacked.max_keepdim(0)?.detach();
                let lse = (stacked.broadcast_sub(&mx)?.exp()?.sum_keepdim(0)?.log()? + mx)?;
                let total = Tensor::stack(&weights, 0)?.sum(0)?; // (batch, 1)
                lse.squeeze(0)?.broadcast_sub(&total.log()?)
            }
        }
    }
}

/// The weight `(batch, 1)` of a member with profile ramp `ramp` on each window of `x`:
/// the profile's descriptor frames beyond the window's own, in windows (the counts the
/// functionals row carries at [`PROFILE_FRAMES_AT`]), over `ramp`, within 1e-6 and 1 (a
/// member is never weighed exactly 0, so the log stays finite).
fn profile_weight(x: &Tensor, ramp: f64) -> Result<Tensor> {
    let rows = x.dim(2)?;
    let counts = x
        .narrow(2, rows - 1, 1)?
        .narrow(3, PROFILE_FRAMES_AT, 2)?
        .flatten_from(1)?
        .detach(); // (batch, 2): profile, window
    let profile = counts.narrow(1, 0, 1)?;
    let own = counts.narrow(1, 1, 1)?.clamp(1.0, f32::MAX as f64)?;
    let beyond = (profile - &own)?.clamp(0.0, f32::MAX as f64)?;
    (beyond / own)?.affine(1.0 / ramp, 0.0)?.clamp(1e-6, 1.0)
}

/// The name prefix of ensemble member `i`'s weights (`m0.cnn.block0...`).
pub fn member_prefix(i: usize) -> String {
    format!("m{i}")
}

#[cfg(test)]
mod init_tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn initial_logits_are_moderate_for_every_cnn() {
        for arch in [Arch::Fser, Arch::Paper1Cnn, Arch::EmoCnn { width: 8 }] {
            let (rows, frames) = match arch {
                Arch::Paper1Cnn => (40, 160),
                Arch::Fser => (64, 94),
                _ => (64, 188),
            };
            // The median over five initialisations: one draw of emocnn's in a hundred
            // reaches 2.4.
            let mut draws: Vec<f32> = (0..5)
                .map(|_| {
                    let vm = VarMap::new();
                    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
                    let net = Net::new(&arch, vb, rows, frames).unwrap();
                    let x = Tensor::randn(0f32, 1.0, (4, 1, rows, frames), &Device::Cpu).unwrap();
                    let y = net.forward_t(&x, false).unwrap();
                    y.sqr()
                        .unwrap()
                        .mean_all()
                        .unwrap()
                        .sqrt()
                        .unwrap()
                        .to_scalar()
                        .unwrap()
                })
                .collect();
            draws.sort_by(f32::total_cmp);
            let s = draws[2];
            // Moderate logits at initialisation: FSER with candle's Kaiming init gave rms 4.2
            // and died in training; Glorot init (Keras, as the paper) gives about 0.2.
            assert!(s < 2.0, "{}: initial logit rms {s}", arch.name());
        }
    }
}

#[cfg(test)]
mod ensemble_tests {
    use super::*;
    use crate::labels::N_LABELS;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// Two prosody MLPs, the second weighed by the profile (ramp 8): a window whose
    /// profile holds 3 windows' worth (2 beyond itself) weighs it 2/8, so the ensemble
    /// gives log((p1 + 0.25 p2) / 1.25); none beyond, p1; 20 beyond, the plain mean.
    #[test]
    fn a_profile_weighted_member_is_weighed_by_the_speech_beyond_the_window() {
        let member = |ramp| Member {
            arch: Arch::Prosody,
            temperature: 1.0,
            from: String::new(),
            profile_ramp: ramp,
        };
        let arch = Arch::Ensemble {
            members: vec![member(None), member(Some(8.0))],
        };
        let (rows, frames) = (2, 120);
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let net = Net::new(&arch, vb.clone(), rows, frames).unwrap();
        let m1 = Prosody::new(vb.pp(member_prefix(0))).unwrap();
        let m2 = Prosody::new(vb.pp(member_prefix(1))).unwrap();
        let dev = Device::Cpu;
        let mut x: Vec<f32> = Tensor::randn(0f32, 1.0, (3, 1, rows, frames), &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (b, profile) in [(0, 100.0), (1, 300.0), (2, 2100.0)] {
            let row = b * rows * frames + (rows - 1) * frames;
            x[row + PROFILE_FRAMES_AT] = profile;
            x[row + PROFILE_FRAMES_AT + 1] = 100.0;
        }
        let x = Tensor::from_vec(x, (3, 1, rows, frames), &dev).unwrap();
        let d = Dropout::default();
        let probs = |t: Tensor| -> Vec<Vec<f32>> {
            candle_nn::ops::softmax(&t, D::Minus1)
                .unwrap()
                .to_vec2()
                .unwrap()
        };
        let p1 = probs(m1.forward_t(&x, false, &d).unwrap());
        let p2 = probs(m2.forward_t(&x, false, &d).unwrap());
        let pe: Vec<Vec<f32>> = net
            .forward_t(&x, false)
            .unwrap()
            .exp()
            .unwrap()
            .to_vec2()
            .unwrap();
        for (b, w) in [(0, 1e-6f32), (1, 0.25), (2, 1.0)] {
            for k in 0..N_LABELS {
                let want = (p1[b][k] + w * p2[b][k]) / (1.0 + w);
                assert!(
                    (pe[b][k] - want).abs() < 1e-6,
                    "window {b}, label {k}: {} against {want}",
                    pe[b][k]
                );
            }
        }
        // The counts are not features: a member's output does not move with them.
        let zeroed = x
            .narrow(3, 0, PROFILE_FRAMES_AT)
            .and_then(|a| {
                Tensor::cat(
                    &[
                        a,
                        x.narrow(3, PROFILE_FRAMES_AT, frames - PROFILE_FRAMES_AT)?
                            .zeros_like()?,
                    ],
                    3,
                )
            })
            .unwrap();
        assert_eq!(probs(m1.forward_t(&zeroed, false, &d).unwrap()), p1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ensemble_is_labelled_by_its_members_alike_ones_counted() {
        let member = |arch: Arch| Member {
            arch,
            temperature: 1.0,
            from: String::new(),
            profile_ramp: None,
        };
        let head = || Arch::EncoderHead {
            hidden: 256,
            profile_ramp: None,
            layer: Some(3),
            calm: false,
            enrol: true,
        };
        let three = Arch::Ensemble {
            members: vec![member(head()), member(head()), member(head())],
        };
        assert_eq!(three.label(), "encoder_head x3");
        let duo = Arch::Ensemble {
            members: vec![member(Arch::Fusion { width: 32 }), member(Arch::Prosody)],
        };
        assert_eq!(duo.label(), "fusion+prosody");
        assert_eq!(head().label(), "encoder_head");
    }
}
