//! Networks on the prosody functionals: an MLP alone (`prosody`) and fused with the CNN
//! (`fusion`).

use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{BatchNorm, Linear, VarBuilder};

use crate::features::N_FUNCTIONALS;
use crate::labels::N_LABELS;

use super::emocnn::EmoCnn;
use super::layers::Dropout;

/// The prosody functionals of a batch: `(batch, N_FUNCTIONALS)` from the input's last row.
pub(super) fn functionals_of(x: &Tensor) -> Result<Tensor> {
    let rows = x.dim(2)?;
    x.narrow(2, rows - 1, 1)?
        .narrow(3, 0, N_FUNCTIONALS)?
        .flatten_from(1)?
        .contiguous()
}

/// An MLP over the prosody functionals: batch norm (the functionals' scales differ),
/// then dense layers with ReLU and dropout.
pub struct ProsodyMlp {
    bn: BatchNorm,
    layers: Vec<Linear>,
}

impl ProsodyMlp {
    fn new(vb: VarBuilder, sizes: &[usize]) -> Result<Self> {
        let mut d = N_FUNCTIONALS;
        let mut layers = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            layers.push(candle_nn::linear(d, n, vb.pp(format!("fc{i}")))?);
            d = n;
        }
        Ok(Self {
            bn: candle_nn::batch_norm(N_FUNCTIONALS, 1e-5, vb.pp("bn"))?,
            layers,
        })
    }

    /// The last hidden layer's activations (ReLU, dropout after each layer).
    pub(super) fn embed(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let mut h = self.bn.forward_t(&functionals_of(x)?, train)?;
        for l in &self.layers {
            h = drop.apply(&l.forward(&h)?.relu()?, 0.3, train)?;
        }
        Ok(h)
    }
}

/// Functionals alone: MLP 128-64, then the head.
pub struct Prosody {
    mlp: ProsodyMlp,
    head: Linear,
}

impl Prosody {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            mlp: ProsodyMlp::new(vb.pp("prosody"), &[128, 64])?,
            head: candle_nn::linear(64, N_LABELS, vb.pp("head"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        self.head.forward(&self.mlp.embed(x, train, drop)?)
    }
}

/// emocnn over the spectrogram rows and the prosody MLP over the functionals row, their
/// embeddings concatenated before one linear head.
pub struct Fusion {
    cnn: EmoCnn,
    mlp: ProsodyMlp,
    head: Linear,
}

impl Fusion {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        Ok(Self {
            cnn: EmoCnn::new(vb.pp("cnn"), width)?,
            mlp: ProsodyMlp::new(vb.pp("prosody"), &[64])?,
            head: candle_nn::linear(8 * width + 64, N_LABELS, vb.pp("head"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let rows = x.dim(2)?;
        let spectrogram = x.narrow(2, 0, rows - 1)?.contiguous()?;
        let a = drop.apply(&self.cnn.embed(&spectrogram, train)?, 0.3, train)?;
        let b = self.mlp.embed(x, train, drop)?;
        self.head.forward(&Tensor::cat(&[a, b], D::Minus1)?)
    }
}
