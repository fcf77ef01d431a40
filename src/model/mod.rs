//! Models: the architectures, the JSON model card stored beside the safetensors weights,
//! loading with version/architecture checks, device choice, and window classification.

#[forbid(unsafe_code)]
mod arch;
#[forbid(unsafe_code)]
pub mod compute;
pub mod conv;
#[forbid(unsafe_code)]
mod fused;
mod gates;
#[forbid(unsafe_code)]
mod init;
#[forbid(unsafe_code)]
pub mod lstm;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

pub use arch::{
    member_prefix, profile_ramp_allowed, Arch, Member, Net, DEFAULT_ENROL_RAMP, MAX_MEMBERS,
    MAX_PROFILE_RAMP,
};
pub use compute::{device_name, place, Compute, Placement, CUDA_BUILT};
pub use lstm::Lstm;

use crate::features::{FeatureExtractor, FeatureMatrix, FeatureSpec};
use crate::labels::{LABELS, N_LABELS};
use crate::{Error, Result};

/// Version of the card + weights layout. A card of another version is refused.
pub const CARD_VERSION: u32 = 1;

/// The name that stands for the default model compiled into the binary. It is used where a
/// model folder would be (`--model builtin:encoder_head`, the window's picker, a
/// fine-tuned card's `base_model`), so emoscope works from any folder and any install.
pub const BUILTIN_MODEL: &str = "builtin:encoder_head";
/// The models compiled into the binary, by name: card and weights of `weights/NAME` as of
/// the build, the default first. `encoder_head` (the default): a linear head on the frozen
/// Whisper base encoder's third block (`crate::encoder`), no speaker profile.
/// `fusion_prosody` (the former default, lighter): the fusion model and the prosody MLP averaged, the MLP weighed by how much of the speaker's speech the profile
/// holds (none on one short file alone, full in a session). `fusion`: the log-mel CNN with
/// the speaker-normalised prosody functionals alone, trained on RAVDESS, EMOVO and nEMO.
const BUILTINS: [(&str, &str, &[u8]); 3] = [
    (
        BUILTIN_MODEL,
        include_str!("../../weights/encoder_head/card.json"),
        include_bytes!("../../weights/encoder_head/model.safetensors"),
    ),
    (
        "builtin:fusion_prosody",
        include_str!("../../weights/fusion_prosody/card.json"),
        include_bytes!("../../weights/fusion_prosody/model.safetensors"),
    ),
    (
        "builtin:fusion",
        include_str!("../../weights/fusion/card.json"),
        include_bytes!("../../weights/fusion/model.safetensors"),
    ),
];
/// The built-in model of emoscope before the prosody models (now `weights/emocnn`).
const FORMER_BUILTIN: &str = "builtin:emocnn";

/// The built-in card and weights `dir` names, if it names one.
fn builtin(dir: &Path) -> Option<(&'static str, &'static [u8])> {
    BUILTINS
        .iter()
        .find(|(name, _, _)| dir == Path::new(name))
        .map(|&(_, card, weights)| (card, weights))
}

/// The names of the built-in models, the default first.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _, _)| *name)
}

/// Whether `dir` names a built-in model rather than a folder.
pub fn is_builtin(dir: &Path) -> bool {
    builtin(dir).is_some()
}

/// What to call a model in menus and status lines: "fusion (built in)" or its folder.
pub fn display_name(dir: &Path) -> String {
    match dir.to_str().and_then(|d| d.strip_prefix("builtin:")) {
        Some(name) if is_builtin(dir) => format!("{name} (built in)"),
        _ => dir.display().to_string(),
    }
}

/// Metrics of one evaluation, as stored in cards and written by `emoscope eval --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub accuracy: f64,
    pub uar: f64,
    pub macro_f1: f64,
    /// Mean one-vs-rest ROC-AUC over the labels present; `None` (JSON `null`, printed
    /// `n/a`) where it is undefined: a set holding clips of one label only.
    pub roc_auc_mean: Option<f64>,
    pub ece: f64,
    /// The ECE a perfectly calibrated model would show on as many clips of these
    /// confidences by chance alone (`metrics::ece_by_chance`); 0 in cards made before it.
    #[serde(default)]
    pub ece_by_chance: f64,
    pub labels: Vec<String>,
    /// Labels with no clip in the data: left out of UAR, macro F1 and ROC-AUC.
    pub absent: Vec<String>,
    pub per_class: Vec<ClassMetrics>,
    /// confusion[true][predicted], label order as `labels`.
    pub confusion: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub support: usize,
    pub recall: f64,
    pub precision: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
}

/// How a model was trained and what it scored: shipped beside every set of weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub card_version: u32,
    pub emoscope_version: String,
    pub arch: Arch,
    pub features: FeatureSpec,
    pub labels: Vec<String>,
    /// Softmax temperature fitted on validation speakers (1.0 = uncalibrated).
    pub temperature: f64,
    /// `KIND=PATH` sources the model was trained on.
    pub training_data: Vec<String>,
    /// e.g. "speaker-independent: test speakers ravdess_01, ravdess_02 never in training".
    pub protocol: String,
    /// Trained and tested on a random split of clips (`train --split random:...`): the
    /// test clips' speakers are also in training, so the test figure is not one on new
    /// voices. Every place that shows the figure says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub speaker_dependent: bool,
    pub test_speakers: Vec<String>,
    pub validation_speakers: Vec<String>,
    /// Speakers whose clips trained the weights.
    #[serde(default)]
    pub train_speakers: Vec<String>,
    pub epochs: usize,
    pub seed: u64,
    /// Metrics on the held-out test speakers (clip level), after calibration.
    pub test_metrics: Option<Metrics>,
    /// Per-corpus test metrics where the test set spans several corpora.
    #[serde(default)]
    pub test_metrics_per_corpus: Vec<(String, Metrics)>,
    /// For a model that reads an enrolment: the same test speakers each read against an
    /// enrolment (their other clips labelled neutral); `test_metrics` is without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_metrics_enrolled: Option<Metrics>,
    pub date: String,
    #[serde(default)]
    pub notes: String,
    /// The model this one was fine-tuned from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
}

/// The largest `card.json` emoscope reads (a card is a file anyone can edit; the largest
/// shipped, with a calm gate's 512 weights, is about 12 KB).
pub const MAX_CARD_BYTES: u64 = 1 << 20;

impl ModelCard {
    /// Reads `dir/card.json` (or the built-in card for [`BUILTIN_MODEL`]), refusing other
    /// card versions and label orders.
    pub fn load(dir: &Path) -> Result<Self> {
        let (card_path, _) = model_files(dir);
        if dir == Path::new(FORMER_BUILTIN) {
            return Err(Error::Format {
                path: dir.to_path_buf(),
                reason: format!("the built-in model is now {BUILTIN_MODEL} (a linear head on the pretrained Whisper base encoder; the previous default is builtin:fusion_prosody); the former built-in emocnn is the folder weights/emocnn of the source tree: --model weights/emocnn"),
            });
        }
        if let Some((card, _)) = builtin(dir) {
            return Self::parse(card, &card_path);
        }
        let bytes = crate::util::read_bounded(&card_path, MAX_CARD_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::Format {
            path: card_path.clone(),
            reason: "not a model card: not UTF-8 text".into(),
        })?;
        Self::parse(&text, &card_path)
    }

    /// A card from its JSON text; `card_path` names it in errors.
    fn parse(text: &str, card_path: &Path) -> Result<Self> {
        let card_path = card_path.to_path_buf();
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::Format {
            path: card_path.clone(),
            reason: format!("not a model card: {e}"),
        })?;
        let version = v.get("card_version").and_then(|x| x.as_u64());
        if version != Some(CARD_VERSION as u64) {
            return Err(Error::Format {
                path: card_path,
                reason: format!(
                    "model card version {} but this emoscope ({}) reads version {CARD_VERSION}; retrain the model or use a matching emoscope",
                    version.map_or("missing".into(), |x| x.to_string()),
                    env!("CARGO_PKG_VERSION")
                ),
            });
        }
        let card: ModelCard = serde_json::from_value(v).map_err(|e| Error::Format {
            path: card_path.clone(),
            reason: format!("model card does not parse: {e}"),
        })?;
        if card.labels != LABELS {
            return Err(Error::Format {
                path: card_path,
                reason: format!(
                    "label order {:?} differs from emoscope's {:?}",
                    card.labels, LABELS
                ),
            });
        }
        card.features.validate().map_err(|e| Error::Format {
            path: card_path.clone(),
            reason: format!("features: {e}"),
        })?;
        card.arch
            .check(&card.features)
            .map_err(|reason| Error::Format {
                path: card_path,
                reason,
            })?;
        Ok(card)
    }

    /// Writes `dir/card.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let (card_path, _) = model_files(dir);
        let text = serde_json::to_string_pretty(self).expect("card serialises");
        crate::util::write_atomic(&card_path, text.as_bytes())
    }

    /// One line for status bars: "emocnn — 71.2 % acc / 0.70 UAR on held-out ravdess_01, ravdess_02".
    pub fn headline(&self) -> String {
        match &self.test_metrics {
            Some(m) if self.base_model.is_some() => format!(
                "{} fine-tuned - {:.1} % accuracy, UAR {:.3} on {} held-out clips of the voices it was tuned to (speaker-dependent)",
                self.arch.label(),
                m.accuracy * 100.0,
                m.uar,
                m.n
            ),
            Some(m) if self.speaker_dependent => format!(
                "{} - {:.1} % accuracy, UAR {:.3} on a random part of the clips of its training speakers (speaker-dependent: not a figure on new voices)",
                self.arch.label(),
                m.accuracy * 100.0,
                m.uar
            ),
            Some(m) => format!(
                "{} - {:.1} % accuracy, UAR {:.3} on held-out speakers {}{}",
                self.arch.label(),
                m.accuracy * 100.0,
                m.uar,
                self.test_speakers.join(", "),
                match &self.test_metrics_enrolled {
                    Some(e) => format!(" ({:.1} % with an enrolment)", e.accuracy * 100.0),
                    None => String::new(),
                }
            ),
            None => format!("{} - not evaluated", self.arch.label()),
        }
    }
}

/// The device models run on when nothing is asked: as `--compute auto` ([`compute::place`]).
pub fn default_device() -> Device {
    place(Compute::Auto).device
}

/// Paths of a model directory's two files.
pub fn model_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("card.json"), dir.join("model.safetensors"))
}

/// A model ready to classify windows: network, its weights, card and feature extractor.
pub struct Classifier {
    pub card: ModelCard,
    pub net: Net,
    pub varmap: VarMap,
    pub device: Device,
    pub extractor: FeatureExtractor,
    /// The speaker's enrolment, for a model whose profile is one (set by `--enrol` or the
    /// window's Enrol button; the live pipeline and `analyze` read every window against it).
    pub enrolment: Option<crate::features::Enrolment>,
}

impl Classifier {
    /// A freshly initialised model (for training), its weights drawn from `card.seed`.
    pub fn new(card: ModelCard, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let init = init::SeededInit {
            varmap: varmap.clone(),
            seed: card.seed,
        };
        Self::build(card, device, varmap, Box::new(init))
    }

    /// The network of `card`, its variables made by `backend` into `varmap`.
    fn build(
        card: ModelCard,
        device: &Device,
        varmap: VarMap,
        backend: Box<dyn candle_nn::var_builder::SimpleBackend>,
    ) -> Result<Self> {
        let extractor = FeatureExtractor::new(&card.features)?;
        card.arch
            .check(&card.features)
            .map_err(|reason| Error::Format {
                path: PathBuf::from("model card"),
                reason,
            })?;
        let vb = VarBuilder::from_backend(backend, DType::F32, device.clone());
        let net = Net::new(
            &card.arch,
            vb,
            card.features.input_rows(),
            match card.features.encoder_input_len() {
                0 => card.features.window_frames(),
                n => n,
            },
        )?;
        Ok(Self {
            card,
            net,
            varmap,
            device: device.clone(),
            extractor,
            enrolment: None,
        })
    }

    /// The network of `card` with every variable taken from `tensors` (nothing is drawn
    /// first); a missing tensor or one of the wrong shape is an error naming `path`.
    fn from_tensors(
        card: ModelCard,
        device: &Device,
        tensors: std::collections::HashMap<String, Tensor>,
        path: &Path,
    ) -> Result<Self> {
        let arch = card.arch.name();
        let varmap = VarMap::new();
        let backend = init::LoadedWeights {
            varmap: varmap.clone(),
            tensors,
        };
        Self::build(card, device, varmap, Box::new(backend)).map_err(|e| match e {
            Error::Format { .. } => e,
            e => Error::Format {
                path: path.to_path_buf(),
                reason: format!("weights do not fit architecture {arch} of card.json: {e}"),
            },
        })
    }

    /// Loads `dir/card.json` and `dir/model.safetensors` (or the built-in model for
    /// [`BUILTIN_MODEL`]), refusing other card versions, other label orders and weights that
    /// do not fit the card's architecture.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (_, weights) = model_files(dir);
        let card = ModelCard::load(dir)?;
        let owned;
        let bytes = match builtin(dir) {
            Some((_, bytes)) => bytes,
            None => {
                owned = std::fs::read(&weights).map_err(|source| Error::Open {
                    path: weights.clone(),
                    source,
                })?;
                &owned[..]
            }
        };
        // Read whole, not memory-mapped: a file truncated underneath cannot crash the
        // process.
        let tensors =
            candle_core::safetensors::load_buffer(bytes, device).map_err(|e| Error::Format {
                path: weights.clone(),
                reason: format!("not a safetensors file: {e}"),
            })?;
        Self::from_tensors(card, device, tensors, &weights)
    }

    /// Loads the model at `dir` where `compute` asks, or on the CPU when that cannot be
    /// used ([`Placement::fallback`] says why).
    pub fn load_on(dir: &Path, compute: Compute) -> Result<(Self, Placement)> {
        let placement = place(compute);
        Ok((Self::load(dir, &placement.device)?, placement))
    }

    /// The same model, weights copied, on `device` (the live path's move to the CPU when
    /// the GPU fails mid-session).
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        let tensors = {
            let vars = self.varmap.data().lock().expect("varmap lock");
            vars.iter()
                .map(|(name, v)| Ok((name.clone(), v.as_tensor().to_device(device)?)))
                .collect::<Result<std::collections::HashMap<_, _>>>()?
        };
        Self::from_tensors(
            self.card.clone(),
            device,
            tensors,
            Path::new("the running model"),
        )
    }

    /// Saves card and weights into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::util::create_dir_all(dir)?;
        let (_, weights) = model_files(dir);
        self.varmap.save(&weights).map_err(|e| Error::Format {
            path: weights.clone(),
            reason: e.to_string(),
        })?;
        self.card.save(dir)
    }

    /// Stacks model-input matrices into a `(n, 1, rows, frames)` tensor.
    pub fn batch_tensor(&self, inputs: &[FeatureMatrix]) -> Result<Tensor> {
        let (rows, frames) = (inputs[0].rows, inputs[0].frames);
        let mut flat = Vec::with_capacity(inputs.len() * rows * frames);
        for m in inputs {
            flat.extend_from_slice(&m.data);
        }
        Ok(Tensor::from_vec(
            flat,
            (inputs.len(), 1, rows, frames),
            &self.device,
        )?)
    }

    /// Calibrated probabilities (rows of 8) for model-input matrices.
    pub fn probs(&self, inputs: &[FeatureMatrix]) -> Result<Vec<[f32; N_LABELS]>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(64) {
            let x = self.batch_tensor(chunk)?;
            let logits = (self.net.forward_t(&x, false)? / self.card.temperature)?;
            let p = candle_nn::ops::softmax(&logits, 1)?.to_vec2::<f32>()?;
            out.extend(p.into_iter().map(|r| {
                let mut a = [0.0; N_LABELS];
                a.copy_from_slice(&r);
                a
            }));
        }
        Ok(out)
    }
}
