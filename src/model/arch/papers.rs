//! The papers' networks: paper 1's MFCC CNN and its two-layer LSTM, and paper 2's FSER mel-
//! spectrogram CNN.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::model::conv::Conv;
use crate::model::lstm::Lstm;

use crate::labels::N_LABELS;

use super::layers::{conv_rect, leaky, Dropout};

pub struct Paper1Cnn {
    convs: Vec<Conv>,
    fc: Linear,
}

impl Paper1Cnn {
    /// `rows` x `frames` input (40 x 160 in the paper).
    pub fn new(vb: VarBuilder, rows: usize, frames: usize) -> Result<Self> {
        let c1 = conv_rect(vb.pp("conv1"), 1, 32, 10, 3, 0)?;
        let c2 = conv_rect(vb.pp("conv2"), 32, 32, 3, 3, 0)?;
        let c3 = conv_rect(vb.pp("conv3"), 32, 32, 3, 3, 0)?;
        let (mut h, mut w) = ((rows - 9) / 2, (frames - 2) / 2);
        h = (h - 2) / 2;
        w = (w - 2) / 2;
        h = (h - 2) / 2;
        w = (w - 2) / 2;
        let fc = candle_nn::linear(32 * h * w, N_LABELS, vb.pp("fc"))?;
        Ok(Self {
            convs: vec![c1, c2, c3],
            fc,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let mut x = x.clone();
        for c in &self.convs {
            let y = c.forward(&x)?;
            x = if y.device().is_cpu() {
                // LeakyReLU and pooling in one pass (model::fused), forward and backward.
                crate::model::fused::act_pool(&y, (2, 2), 0.01)?
            } else {
                leaky(&y)?.avg_pool2d(2)?
            };
        }
        let x = drop.apply(&x.flatten_from(1)?, 0.5, train)?;
        self.fc.forward(&x)
    }
}

pub struct Paper1Lstm {
    l1: Lstm,
    l2: Lstm,
    fc1: Linear,
    fc2: Linear,
}

impl Paper1Lstm {
    pub fn new(vb: VarBuilder, rows: usize, hidden: usize) -> Result<Self> {
        Ok(Self {
            l1: Lstm::new(vb.pp("lstm1"), rows, hidden)?,
            l2: Lstm::new(vb.pp("lstm2"), hidden, hidden)?,
            fc1: candle_nn::linear(hidden, 128, vb.pp("fc1"))?,
            fc2: candle_nn::linear(128, N_LABELS, vb.pp("fc2"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        // (b, 1, rows, frames) -> (b, frames, rows)
        let x = x.squeeze(1)?.transpose(1, 2)?.contiguous()?;
        let h1 = drop.apply(&self.l1.seq_t(&x, train)?, 0.5, train)?;
        let h2 = self.l2.seq_t(&h1, train)?;
        let last = h2.narrow(1, h2.dim(1)? - 1, 1)?.squeeze(1)?;
        let z = self.fc1.forward(&last)?.relu()?;
        self.fc2.forward(&drop.apply(&z, 0.5, train)?)
    }
}

pub struct Fser {
    convs: Vec<Conv>,
    fcs: Vec<Linear>,
}

impl Fser {
    pub fn new(vb: VarBuilder, rows: usize, frames: usize) -> Result<Self> {
        // Keras defaults, as the FSER paper used: Glorot-uniform weights, zero biases
        // (candle's Kaiming init gave logits of rms 4 and a network that died in training).
        let glorot = |fan_in: usize, fan_out: usize| {
            let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
            candle_nn::Init::Uniform { lo: -b, up: b }
        };
        let chans = [1, 32, 64, 128, 128];
        let mut convs = Vec::new();
        let (mut h, mut w) = (rows, frames);
        for i in 0..4 {
            let vbi = vb.pp(format!("conv{i}"));
            let wt = vbi.get_with_hints(
                (chans[i + 1], chans[i], 3, 3),
                "weight",
                glorot(chans[i] * 9, chans[i + 1] * 9),
            )?;
            let bias = vbi.get_with_hints(chans[i + 1], "bias", candle_nn::Init::Const(0.0))?;
            convs.push(Conv::new(wt, Some(bias), 1)?);
            h /= 2;
            w /= 2;
        }
        let dims = [128 * h * w, 256, 64, N_LABELS];
        let fcs = (0..3)
            .map(|i| {
                let vbi = vb.pp(format!("fc{i}"));
                let wt = vbi.get_with_hints(
                    (dims[i + 1], dims[i]),
                    "weight",
                    glorot(dims[i], dims[i + 1]),
                )?;
                let bias = vbi.get_with_hints(dims[i + 1], "bias", candle_nn::Init::Const(0.0))?;
                Ok(Linear::new(wt, Some(bias)))
            })
            .collect::<Result<_>>()?;
        Ok(Self { convs, fcs })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let mut x = x.clone();
        for c in &self.convs {
            let y = c.forward(&x)?;
            let pooled = if y.device().is_cpu() {
                // ReLU and max pooling in one pass (model::fused), forward and backward.
                crate::model::fused::relu_max_pool(&y, (2, 2))?
            } else {
                y.relu()?.max_pool2d(2)?
            };
            x = drop.apply(&pooled, 0.25, train)?;
        }
        let mut x = x.flatten_from(1)?;
        for (i, fc) in self.fcs.iter().enumerate() {
            x = fc.forward(&x)?;
            if i < 2 {
                x = drop.apply(&x.relu()?, 0.5, train)?;
            }
        }
        Ok(x)
    }
}
