//! emoscope's own CNN: conv blocks over the log-mel image, pooled over time by learned
//! attention and by max.

use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{BatchNorm, Linear, VarBuilder};

use crate::model::conv::Conv;

use crate::labels::N_LABELS;

use super::layers::Dropout;

pub(super) struct ConvBlock {
    conv: Conv,
    bn: BatchNorm,
    pool: (usize, usize),
}

impl ConvBlock {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, pool: (usize, usize)) -> Result<Self> {
        // As candle_nn::conv2d_no_bias: Kaiming-normal weights, no bias.
        let w = vb.pp("conv").get_with_hints(
            (c_out, c_in, 3, 3),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        Ok(Self {
            conv: Conv::new(w, None, 1)?,
            bn: candle_nn::batch_norm(c_out, 1e-5, vb.pp("bn"))?,
            pool,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        if train && y.device().is_cpu() {
            // One fused pass for batch norm, ReLU and pooling (model::fused); the same maths.
            if let Some((gamma, beta)) = self.bn.weight_and_bias() {
                let running = (
                    candle_core::Var::from_tensor(self.bn.running_mean())?,
                    candle_core::Var::from_tensor(self.bn.running_var())?,
                );
                return crate::model::fused::bn_relu_pool_train(
                    &y,
                    gamma,
                    beta,
                    (&running.0, &running.1),
                    self.pool,
                    self.bn.eps(),
                );
            }
        }
        if y.device().is_cpu() && self.bn.weight_and_bias().is_some() {
            return crate::model::fused::bn_relu_pool_eval(&y, &self.bn, self.pool);
        }
        let y = self.bn.forward_t(&y, train)?.relu()?;
        y.avg_pool2d_with_stride(self.pool, self.pool)
    }
}

/// emoscope's model: conv blocks over the log-mel image, then per-frame features pooled
/// over time by learned attention (where the emotion is) and by max (its peaks).
pub struct EmoCnn {
    blocks: Vec<ConvBlock>,
    att_hidden: Linear,
    att_score: Linear,
    head: Linear,
}

impl EmoCnn {
    pub fn new(vb: VarBuilder, width: usize) -> Result<Self> {
        let c = [1, width, width * 2, width * 4, width * 4];
        let pools = [(2, 2), (2, 2), (2, 2), (2, 1)];
        let blocks = (0..4)
            .map(|i| ConvBlock::new(vb.pp(format!("block{i}")), c[i], c[i + 1], pools[i]))
            .collect::<Result<_>>()?;
        let d = c[4];
        Ok(Self {
            blocks,
            att_hidden: candle_nn::linear(d, 64, vb.pp("att_hidden"))?,
            att_score: candle_nn::linear(64, 1, vb.pp("att_score"))?,
            head: candle_nn::linear(2 * d, N_LABELS, vb.pp("head"))?,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let z = drop.apply(&self.embed(x, train)?, 0.3, train)?;
        self.head.forward(&z)
    }

    /// The pooled embedding `(batch, 2 * 4 * width)`: attention and max over time.
    pub(super) fn embed(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward_t(&x, train)?;
        }
        // (b, c, f, t) -> mean over frequency -> (b, t, c)
        let h = x.mean(2)?.transpose(1, 2)?.contiguous()?;
        let scores = self
            .att_score
            .forward(&self.att_hidden.forward(&h)?.tanh()?)?; // (b, t, 1)
        let w = candle_nn::ops::softmax(&scores, 1)?;
        let att = h.broadcast_mul(&w)?.sum(1)?; // (b, c)
        let mx = h.max(1)?;
        Tensor::cat(&[att, mx], D::Minus1)
    }
}
