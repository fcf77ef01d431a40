//! A pretrained speech encoder, frozen: OpenAI Whisper base's audio encoder (MIT), its
//! convolutional front end and first blocks, on candle, on the CPU.
//!
//! The weights are `weights/whisper_base/encoder.safetensors` (float16, written by
//! `scripts/convert_whisper.py` from the CTranslate2 conversion; compiled into the binary),
//! widened to f32 once when loaded. The input is Whisper's log-mel spectrogram, which is the
//! feature extractor's dB mel of [`whisper_spec`] (16 kHz, n_fft 400, hop 160, 80 Slaney
//! bands, top_db 80) mapped by `dB / 40 + 1` (= `(max(log10, max - 8) + 4) / 4`), its last
//! frame dropped as Whisper does; no padding to 30 s: a window is encoded at its own length.
//!
//! What leaves this module is [`Encoder::pooled`]: per representation (the input to block 0
//! and each block's output) the mean and standard deviation over time, one vector per
//! window. Parity with the numpy reference of `shared/tools/whisper_probe.py` is tested on
//! real clips (tests/encoder.rs).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Module, Tensor};

use crate::features::{EncoderSpec, FeatureKind, FeatureMatrix, FeatureSpec, Normalisation};
use crate::{Error, Result};

/// The built-in encoder's weights (float16 safetensors).
const BUILTIN_WEIGHTS: &[u8] = include_bytes!("../weights/whisper_base/encoder.safetensors");
/// Width of every representation.
pub const WIDTH: usize = 512;

/// The level, in dB of the dB mel's loudest value, at which encoder heads read every window
/// (the features' `level_db`): about where EMOVO's and nEMO's clips peak (median 7-7.5 dB;
/// RAVDESS's -2.3 dB), so that a quiet microphone is not read as a calm voice.
pub const DEFAULT_LEVEL_DB: f32 = 8.0;
/// Attention heads per block.
const HEADS: usize = 8;
/// Log-mel bands of the input.
pub const N_MELS: usize = 80;
/// Frames of the position table: Whisper's 30 s of input after the stride-2 convolution.
const MAX_FRAMES: usize = 1500;
/// The most blocks whisper-base has.
const MAX_BLOCKS: usize = 6;

/// The front end's feature spec: the extractor's dB mel of it is Whisper's log-mel, up to
/// the affine map `dB / 40 + 1`.
pub fn whisper_spec(window_seconds: f32) -> FeatureSpec {
    FeatureSpec {
        kind: FeatureKind::Mel,
        sample_rate: 16000,
        n_fft: 400,
        hop_length: 160,
        n_mels: N_MELS,
        n_mfcc: 20,
        fmin: 0.0,
        fmax: None,
        db: true,
        window_seconds,
        normalisation: Normalisation::None,
        prosody: false,
        encoder: None,
    }
}

/// The feature spec of heads on the built-in encoder: its front end, 3 s windows, all
/// of its blocks, each window read at [`DEFAULT_LEVEL_DB`].
pub fn encoder_spec() -> FeatureSpec {
    FeatureSpec {
        encoder: Some(EncoderSpec {
            name: "whisper_base".into(),
            blocks: BUILTIN_BLOCKS,
            calm_gate: None,
            enrolment: false,
            level_db: Some(DEFAULT_LEVEL_DB),
        }),
        ..whisper_spec(3.0)
    }
}

struct Block {
    attn_norm: candle_nn::LayerNorm,
    qkv: Dense,
    out: Dense,
    ffn_norm: candle_nn::LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

/// A linear layer of the encoder, `y = x W^T + b`. Where the CPU has AVX-512 its weight is
/// packed once, when the encoder loads, for the kernel the LSTM uses
/// ([`crate::kernel::packed::PackedRhs`]): candle's gemm repacks the weight inside every product
/// and ran the encoder's at about a third of that kernel's speed. Elsewhere candle's own.
/// The weight is held one way only.
struct Dense {
    weight: Weight,
    out: usize,
}

enum Weight {
    Packed(crate::kernel::packed::PackedRhs, Vec<f32>),
    Candle(candle_nn::Linear),
}

impl Dense {
    fn new(weight: Tensor, bias: Tensor) -> Result<Self> {
        Self::held(weight, bias, crate::kernel::packed::PackedRhs::available())
    }

    /// The layer with its weight packed (only where the CPU has AVX-512) or candle's.
    fn held(weight: Tensor, bias: Tensor, packed: bool) -> Result<Self> {
        let (out, inp) = weight.dims2()?;
        let weight = match packed {
            // B = W^T (inp x out): B[r][c] = W[c][r] = w[c * inp + r].
            true => Weight::Packed(
                crate::kernel::packed::PackedRhs::new(
                    &weight.flatten_all()?.to_vec1::<f32>()?,
                    (inp, out),
                    (1, inp),
                ),
                bias.to_vec1::<f32>()?,
            ),
            false => Weight::Candle(candle_nn::Linear::new(weight, Some(bias))),
        };
        Ok(Self { weight, out })
    }

    /// `y` of the rows of `x` (`rows x inp`, row-major), row-major `rows x out`.
    fn rows(&self, x: &[f32], rows: usize, inp: usize) -> Result<Vec<f32>> {
        match &self.weight {
            Weight::Packed(w, b) => {
                let mut y = vec![0f32; rows * self.out];
                w.mul(x, rows, inp, &mut y, false);
                for r in y.chunks_exact_mut(self.out) {
                    r.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                Ok(y)
            }
            Weight::Candle(l) => {
                let t = Tensor::from_slice(x, (rows, inp), &Device::Cpu)?;
                Ok(l.forward(&t)?.flatten_all()?.to_vec1::<f32>()?)
            }
        }
    }

    /// `y` of `x` (`rows x inp`).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Weight::Candle(l) = &self.weight {
            return Ok(l.forward(x)?);
        }
        let (rows, inp) = x.dims2()?;
        let y = self.rows(&x.flatten_all()?.to_vec1::<f32>()?, rows, inp)?;
        Ok(Tensor::from_vec(y, (rows, self.out), &Device::Cpu)?)
    }

    /// `fc2(gelu(fc1(x)))`, the block's feed-forward part, its hidden values kept as one
    /// vector (the GELU in place, vectorised: [`crate::kernel::activation::gelu_erf`]).
    fn feed_forward(fc1: &Dense, fc2: &Dense, x: &Tensor) -> Result<Tensor> {
        let (rows, inp) = x.dims2()?;
        let mut h = fc1.rows(&x.flatten_all()?.to_vec1::<f32>()?, rows, inp)?;
        crate::kernel::activation::gelu_erf(&mut h);
        let y = fc2.rows(&h, rows, fc1.out)?;
        Ok(Tensor::from_vec(y, (rows, fc2.out), &Device::Cpu)?)
    }
}

/// Whisper base's encoder up to `blocks` blocks, weights in f32 on the CPU.
pub struct Encoder {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    positions: Tensor,
    blocks: Vec<Block>,
    /// The final layer norm Whisper applies after its sixth block (present only in a
    /// file of all six blocks; used by the parity check against CTranslate2).
    final_norm: Option<candle_nn::LayerNorm>,
}

impl Encoder {
    /// The encoder of `bytes` (safetensors as `scripts/convert_whisper.py` writes), its
    /// first `blocks` blocks; `path` names the weights in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, blocks: usize) -> Result<Self> {
        let bad = |reason: String| Error::Format {
            path: path.to_path_buf(),
            reason,
        };
        if !(1..=MAX_BLOCKS).contains(&blocks) {
            return Err(bad(format!(
                "{blocks} encoder blocks asked for; whisper-base has 1 to {MAX_BLOCKS}"
            )));
        }
        let dev = Device::Cpu;
        let tensors = candle_core::safetensors::load_buffer(bytes, &dev).map_err(|e| {
            bad(format!(
                "not a safetensors file ({e}); rebuild it with scripts/convert_whisper.py"
            ))
        })?;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = tensors.get(name).ok_or_else(|| {
                bad(format!("no tensor {name}: the file holds fewer blocks than the {blocks} asked for, or is not whisper-base's encoder"))
            })?;
            if t.dims() != shape {
                return Err(bad(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let norm = |p: &str| -> Result<candle_nn::LayerNorm> {
            Ok(candle_nn::LayerNorm::new(
                get(&format!("{p}/gamma"), &[WIDTH])?,
                get(&format!("{p}/beta"), &[WIDTH])?,
                1e-5,
            ))
        };
        let linear = |p: &str, out: usize, inp: usize| -> Result<Dense> {
            Dense::new(
                get(&format!("{p}/weight"), &[out, inp])?,
                get(&format!("{p}/bias"), &[out])?,
            )
        };
        let conv1 = (
            get("conv1/weight", &[WIDTH, N_MELS, 3])?,
            get("conv1/bias", &[WIDTH])?,
        );
        let conv2 = (
            get("conv2/weight", &[WIDTH, WIDTH, 3])?,
            get("conv2/bias", &[WIDTH])?,
        );
        let positions = get("position_encodings/encodings", &[MAX_FRAMES, WIDTH])?;
        let blocks = (0..blocks)
            .map(|k| {
                let p = format!("layer_{k}");
                Ok(Block {
                    attn_norm: norm(&format!("{p}/self_attention/layer_norm"))?,
                    qkv: linear(&format!("{p}/self_attention/linear_0"), 3 * WIDTH, WIDTH)?,
                    out: linear(&format!("{p}/self_attention/linear_1"), WIDTH, WIDTH)?,
                    ffn_norm: norm(&format!("{p}/ffn/layer_norm"))?,
                    fc1: linear(&format!("{p}/ffn/linear_0"), 4 * WIDTH, WIDTH)?,
                    fc2: linear(&format!("{p}/ffn/linear_1"), WIDTH, 4 * WIDTH)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = match (blocks.len(), tensors.contains_key("layer_norm/gamma")) {
            (MAX_BLOCKS, true) => Some(norm("layer_norm")?),
            _ => None,
        };
        Ok(Self {
            conv1,
            conv2,
            positions,
            blocks,
            final_norm,
        })
    }

    /// Reads an encoder weights file (e.g. one written by `scripts/convert_whisper.py`
    /// with more blocks), at most 256 MiB.
    pub fn from_file(path: &Path, blocks: usize) -> Result<Self> {
        let bytes = crate::util::read_bounded(path, 256 << 20)?;
        Self::from_bytes(&bytes, path, blocks)
    }

    /// The built-in encoder (blocks 0-3), loaded once per process and shared.
    pub fn builtin() -> Result<&'static Encoder> {
        static ENC: OnceLock<std::result::Result<Encoder, String>> = OnceLock::new();
        ENC.get_or_init(|| {
            Encoder::from_bytes(
                BUILTIN_WEIGHTS,
                &PathBuf::from("builtin:whisper_base"),
                BUILTIN_BLOCKS,
            )
            .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Model(e.clone()))
    }

    /// Blocks this encoder runs.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whisper's log-mel, `(80, frames - 1)`, of a dB mel matrix of [`whisper_spec`]:
    /// floored against its own maximum, mapped by `dB / 40 + 1`, the last frame dropped.
    pub fn log_mel(db_mel: &FeatureMatrix) -> Result<Tensor> {
        Self::log_mel_at(db_mel, None)
    }

    /// [`log_mel`](Self::log_mel) of `db_mel` shifted so that its maximum reads `level_db`
    /// (unshifted when `None`): the same window at any gain gives the same log-mel.
    pub fn log_mel_at(db_mel: &FeatureMatrix, level_db: Option<f32>) -> Result<Tensor> {
        if db_mel.rows != N_MELS || db_mel.frames < 3 {
            return Err(Error::Model(format!(
                "the encoder needs {N_MELS} mel bands and at least 3 frames, got {} x {}",
                db_mel.rows, db_mel.frames
            )));
        }
        let t = db_mel.frames - 1;
        let max = db_mel.data.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let floor = max - crate::dsp::TOP_DB;
        let shift = level_db.map_or(0.0, |l| l - max);
        let mut data = Vec::with_capacity(N_MELS * t);
        for row in db_mel.data.chunks_exact(db_mel.frames) {
            data.extend(
                row[..t]
                    .iter()
                    .map(|&x| (x.max(floor) + shift) / 40.0 + 1.0),
            );
        }
        Ok(Tensor::from_vec(data, (1, N_MELS, t), &Device::Cpu)?)
    }

    /// Every representation of a log-mel `(1, 80, T)`: the input to block 0, then each
    /// block's output, each `(T', 512)` with `T' = (T - 1) / 2 + 1` (at most 1500).
    pub fn forward(&self, mel: &Tensor) -> Result<Vec<Tensor>> {
        self.forward_upto(mel, self.blocks.len())
    }

    /// [`forward`](Self::forward) through the first `blocks` blocks only.
    pub fn forward_upto(&self, mel: &Tensor, blocks: usize) -> Result<Vec<Tensor>> {
        let (_, _, t) = mel.dims3()?;
        let frames = (t - 1) / 2 + 1;
        if frames > MAX_FRAMES {
            return Err(Error::Model(format!(
                "the encoder reads at most 30 s at once, got {} frames",
                t
            )));
        }
        let x = mel.conv1d(&self.conv1.0, 1, 1, 1, 1)?;
        let x = x
            .broadcast_add(&self.conv1.1.reshape((1, WIDTH, 1))?)?
            .gelu_erf()?;
        let x = x.conv1d(&self.conv2.0, 1, 2, 1, 1)?;
        let x = x
            .broadcast_add(&self.conv2.1.reshape((1, WIDTH, 1))?)?
            .gelu_erf()?;
        let mut x = (x.squeeze(0)?.t()? + self.positions.narrow(0, 0, frames)?)?;
        let mut outs = vec![x.clone()];
        let d = WIDTH / HEADS;
        let scale = 1.0 / (d as f64).sqrt();
        for b in &self.blocks[..blocks.min(self.blocks.len())] {
            let h = b.qkv.forward(&b.attn_norm.forward(&x)?)?;
            let heads = |i: usize| -> Result<Tensor> {
                Ok(h.narrow(1, i * WIDTH, WIDTH)?
                    .reshape((frames, HEADS, d))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
            let a = (q.matmul(&k.t()?)? * scale)?;
            let a = candle_nn::ops::softmax_last_dim(&a)?;
            let o = a.matmul(&v)?.transpose(0, 1)?.reshape((frames, WIDTH))?;
            x = (x + b.out.forward(&o)?)?;
            let f = Dense::feed_forward(&b.fc1, &b.fc2, &b.ffn_norm.forward(&x)?)?;
            x = (x + f)?;
            outs.push(x.clone());
        }
        if let (Some(n), true) = (&self.final_norm, blocks >= MAX_BLOCKS) {
            let last = outs.pop().expect("six outputs");
            outs.push(n.forward(&last)?);
        }
        Ok(outs)
    }

    /// The window's pooled vector: for each representation (block 0's input, then each
    /// block's output) its mean over time, then its standard deviation over time;
    /// `(blocks + 1) * 2 * 512` values.
    pub fn pooled(&self, db_mel: &FeatureMatrix) -> Result<Vec<f32>> {
        self.pooled_upto(db_mel, self.blocks.len(), None)
    }

    /// [`pooled`](Self::pooled) of the first `blocks` blocks: `(blocks + 1) * 2 * 512`
    /// values; with `level_db`, of the log-mel at that level ([`Self::log_mel_at`]).
    pub fn pooled_upto(
        &self,
        db_mel: &FeatureMatrix,
        blocks: usize,
        level_db: Option<f32>,
    ) -> Result<Vec<f32>> {
        let outs = self.forward_upto(&Self::log_mel_at(db_mel, level_db)?, blocks)?;
        let mut v = Vec::with_capacity(outs.len() * 2 * WIDTH);
        for o in &outs {
            let mean = o.mean_keepdim(0)?;
            let std = o.broadcast_sub(&mean)?.sqr()?.mean(0)?.sqrt()?;
            v.extend(mean.squeeze(0)?.to_vec1::<f32>()?);
            v.extend(std.to_vec1::<f32>()?);
        }
        Ok(v)
    }

    /// The mean over time of every representation, `(blocks + 1) x 512`, as
    /// `whisper_probe.py`'s `layer_means` gives them (the tests' parity check).
    pub fn layer_means(&self, db_mel: &FeatureMatrix) -> Result<Vec<Vec<f32>>> {
        self.forward(&Self::log_mel(db_mel)?)?
            .iter()
            .map(|o| Ok(o.mean(0)?.to_vec1::<f32>()?))
            .collect()
    }
}

/// Blocks of the built-in encoder.
pub const BUILTIN_BLOCKS: usize = 4;

/// Length of [`Encoder::pooled`] for `blocks` blocks.
pub fn pooled_len(blocks: usize) -> usize {
    (blocks + 1) * 2 * WIDTH
}

#[cfg(test)]
mod dense_tests {
    use super::*;

    /// The packed layer gives candle's `x W^T + b` (where this CPU has AVX-512; elsewhere
    /// only candle's runs, and the test says so by returning).
    #[test]
    fn a_packed_dense_layer_equals_candles() {
        if !crate::kernel::packed::PackedRhs::available() {
            eprintln!("no AVX-512 here: only candle's layer runs");
            return;
        }
        let (out, inp, rows) = (70, 45, 13);
        let v = |n: usize, s: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * s) % 97) as f32 / 48.0 - 1.0).collect()
        };
        let w = Tensor::from_vec(v(out * inp, 31), (out, inp), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(v(out, 7), out, &Device::Cpu).unwrap();
        let x = Tensor::from_vec(v(rows * inp, 13), (rows, inp), &Device::Cpu).unwrap();
        let packed = Dense::held(w.clone(), b.clone(), true).unwrap();
        let candle = Dense::held(w, b, false).unwrap();
        assert!(matches!(packed.weight, Weight::Packed(..)));
        let (p, c) = (packed.forward(&x).unwrap(), candle.forward(&x).unwrap());
        assert_eq!(p.dims(), &[rows, out]);
        let worst = (p - c)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(worst < 1e-5, "packed and candle's layers differ by {worst}");
    }
}
