//! Building blocks the architectures share: leaky ReLU, seeded dropout, rectangular
//! convolutions.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use crate::model::conv::Conv;

pub(super) fn leaky(x: &Tensor) -> Result<Tensor> {
    // max(x, 0) + 0.01 * min(x, 0)
    let pos = x.relu()?;
    let neg = (x - &pos)?;
    pos + (neg * 0.01)?
}

/// Dropout with masks drawn from the model's own seeded generator (candle's CPU dropout
/// draws from a generator that cannot be seeded), so two training runs with the same seed
/// and thread count give the same weights. The masks are made on the CPU and moved to the
/// model's device: dropout is applied to small tensors only (pooled features, dense layers).
pub struct Dropout(std::sync::Mutex<rand::rngs::StdRng>);

impl Default for Dropout {
    fn default() -> Self {
        Self::seeded(0)
    }
}

impl Dropout {
    pub fn seeded(seed: u64) -> Self {
        use rand::SeedableRng;
        Self(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(
            seed,
        )))
    }

    /// Restarts the generator (training does so at the start of every epoch, from the run's
    /// seed and the epoch, so a resumed run draws the masks an uninterrupted one would).
    pub fn reseed(&self, seed: u64) {
        *self.0.lock().expect("dropout generator lock") = {
            use rand::SeedableRng;
            rand::rngs::StdRng::seed_from_u64(seed)
        };
    }

    /// `x` with each element zeroed with probability `p` and the rest scaled by 1/(1-p)
    /// while training; `x` itself otherwise.
    pub fn apply(&self, x: &Tensor, p: f32, train: bool) -> Result<Tensor> {
        use rand::Rng;
        if !train || p <= 0.0 {
            return Ok(x.clone());
        }
        let scale = 1.0 / (1.0 - p);
        let mask: Vec<f32> = {
            let mut rng = self.0.lock().expect("dropout generator lock");
            (0..x.elem_count())
                .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
                .collect()
        };
        x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?
    }
}

/// A conv layer with a rectangular kernel (candle's helper makes square ones only).
pub(super) fn conv_rect(
    vb: VarBuilder,
    c_in: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    padding: usize,
) -> Result<Conv> {
    let fan_in = (c_in * kh * kw) as f64;
    let bound = 1.0 / fan_in.sqrt();
    let init = candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let w = vb.get_with_hints((c_out, c_in, kh, kw), "weight", init)?;
    let b = vb.get_with_hints(c_out, "bias", init)?;
    Conv::new(w, Some(b), padding)
}
