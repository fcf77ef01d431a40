//! The head on the frozen Whisper encoder's pooled outputs: a standardised linear (or one-
//! hidden-layer) classifier, optionally with the speaker profile ramped in.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::labels::N_LABELS;

use super::layers::Dropout;

/// The profile ramp `encoder_head_profile` gets by name, in windows.
pub const DEFAULT_HEAD_RAMP: f64 = 4.0;
/// The ramp of `encoder_head_calm`, in windows: its calm reference counts fully once it
/// holds two calm windows besides the window read (three with it).
pub const DEFAULT_CALM_RAMP: f64 = 2.0;
/// The share of the calm reference a calm head removes from the vector: half, as measured
/// best for one-emotion sessions (`scripts/profile_tradeoff.py`, docs/recognition.md).
pub const CALM_SHARE: f64 = 0.5;
/// The ramp of `encoder_head_enrol`, in windows: its enrolment counts fully once it holds
/// two speech windows (as `scripts/profile_tradeoff.py` measured it).
pub const DEFAULT_ENROL_RAMP: f64 = 2.0;
/// The share of the enrolment an enrolled head removes from the vector: all of it, so the
/// head reads the voice against how it sounds at rest (0.75 and 1 measured alike, 0.5
/// lower: docs/recognition.md).
pub const ENROL_SHARE: f64 = 1.0;
/// The representation heads read by name: block 3's output (of 0-4), the one that
/// carried the most in the probe and in leave-one-corpus-out runs (docs/recognition.md).
pub const DEFAULT_HEAD_LAYER: usize = 3;

/// See [`Arch::EncoderHead`]. Input `(batch, 1, 1, 2d + 2)`: vector, z-scores, profile
/// windows, window count.
pub struct EncoderHead {
    d: usize,
    /// Where in the vector the values read start, and how many.
    read: (usize, usize),
    ramp: Option<f64>,
    /// Set: the second part of the input is the vector minus a reference (a calm
    /// reference or an enrolment; not z-scores), and this share of it is removed.
    share: Option<f64>,
    /// Standardisation of the head's features (training statistics; not trained).
    mu: Tensor,
    sd: Tensor,
    hidden: Option<Linear>,
    out: Linear,
}

impl EncoderHead {
    pub fn new(
        vb: VarBuilder,
        len: usize,
        hidden: usize,
        ramp: Option<f64>,
        layer: Option<usize>,
        share: Option<f64>,
    ) -> Result<Self> {
        let d = len.saturating_sub(2) / 2;
        let w = crate::encoder::WIDTH;
        let read = match layer {
            Some(l) if (l + 1) * 2 * w <= d => (l * 2 * w, w),
            Some(l) => candle_core::bail!("encoder_head layer {l} is not in a vector of {d}"),
            None => (0, d),
        };
        let f = Self::features_len(read.1, ramp);
        let mu = vb.get_with_hints(f, "norm_mean", candle_nn::Init::Const(0.0))?;
        let sd = vb.get_with_hints(f, "norm_std", candle_nn::Init::Const(1.0))?;
        let (hidden, width) = match (hidden, share) {
            (0, _) => (None, f),
            // On a reference: the hidden layer reads the referenced part alone; the part
            // without a reference stays linear (see `logits`).
            (h, Some(_)) => (
                Some(candle_nn::linear(read.1, h, vb.pp("hidden"))?),
                read.1 + h + 1,
            ),
            (h, None) => (Some(candle_nn::linear(f, h, vb.pp("hidden"))?), h),
        };
        Ok(Self {
            d,
            read,
            ramp,
            share,
            mu,
            sd,
            hidden,
            out: candle_nn::linear(width, N_LABELS, vb.pp("out"))?,
        })
    }

    /// Length of the head's feature vector for vectors of `d`.
    pub fn features_len(d: usize, ramp: Option<f64>) -> usize {
        if ramp.is_some() {
            2 * d + 1
        } else {
            d
        }
    }

    /// The head's features `(batch, f)` before standardisation: the vector, and with a
    /// ramp the z-scores times the profile weight, then the weight.
    ///
    /// A head on a reference (a calm reference or an enrolment) instead reads two linear
    /// models blended by the weight `w`: the vector, the vector minus a share of the
    /// reference ([`CALM_SHARE`], [`ENROL_SHARE`]), then `w`, the first weighed by
    /// `1 - w` and the second by `w` once standardised ([`logits`](Self::logits)); so before the reference holds enough it reads the vector alone, after it the
    /// vector with a fixed share of the reference removed (a share the head cannot raise
    /// to fit acted speakers' references, which span a session's every calm moment).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.flatten_from(1)?;
        let (at, n) = self.read;
        let raw = x.narrow(1, at, n)?;
        let Some(ramp) = self.ramp else {
            return Ok(raw);
        };
        let z = x.narrow(1, self.d + at, n)?;
        let counts = x.narrow(1, 2 * self.d, 2)?;
        let own = counts.narrow(1, 1, 1)?;
        let beyond = (counts.narrow(1, 0, 1)? - &own)?.clamp(0.0, f32::MAX as f64)?;
        let w = beyond.affine(1.0 / ramp, 0.0)?.clamp(0.0, 1.0)?;
        if let Some(share) = self.share {
            // z = vector - reference, so vector - share * reference = (1 - share) vector + share z.
            let centred = ((&raw * (1.0 - share))? + (&z * share)?)?;
            // Blended by the weight after standardisation (see `logits`).
            return Tensor::cat(&[raw, centred, w], 1);
        }
        Tensor::cat(&[raw, z.broadcast_mul(&w)?, w], 1)
    }

    /// How many values of the vector the head reads (one part's width).
    pub fn read_len(&self) -> usize {
        self.read.1
    }

    /// Logits from standardised features `(batch, f)`.
    ///
    /// A head on a reference with a hidden layer reads the vector alone linearly and the
    /// vector with the reference removed through the hidden layer, the two parts' logits
    /// blended by the weight: `(1 - w) A x + w B relu(H (x - r)) + bias(w)`.
    pub fn logits(&self, f: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        let mut h = f.broadcast_sub(&self.mu)?.broadcast_div(&self.sd)?;
        if let (Some(_), Some(l)) = (self.share, &self.hidden) {
            let n = self.read.1;
            let w = f.narrow(1, 2 * n, 1)?;
            let alone = h.narrow(1, 0, n)?.broadcast_mul(&w.affine(-1.0, 1.0)?)?;
            let centred = drop.apply(&h.narrow(1, n, n)?, 0.2, train)?;
            let hid = drop.apply(&l.forward(&centred)?.relu()?, 0.3, train)?;
            let x = Tensor::cat(
                &[
                    drop.apply(&alone, 0.2, train)?,
                    hid.broadcast_mul(&w)?,
                    h.narrow(1, 2 * n, 1)?,
                ],
                1,
            )?;
            return self.out.forward(&x);
        }
        if self.share.is_some() {
            // Each part standardised by its own statistics, then weighed: the vector alone
            // by 1 - w, the vector with part of the reference removed by w.
            let n = self.read.1;
            let w = f.narrow(1, 2 * n, 1)?;
            h = Tensor::cat(
                &[
                    h.narrow(1, 0, n)?.broadcast_mul(&w.affine(-1.0, 1.0)?)?,
                    h.narrow(1, n, n)?.broadcast_mul(&w)?,
                    h.narrow(1, 2 * n, 1)?,
                ],
                1,
            )?;
        }
        let h = match &self.hidden {
            Some(l) => drop.apply(
                &l.forward(&drop.apply(&h, 0.2, train)?)?.relu()?,
                0.3,
                train,
            )?,
            None => drop.apply(&h, 0.2, train)?,
        };
        self.out.forward(&h)
    }

    pub fn forward_t(&self, x: &Tensor, train: bool, drop: &Dropout) -> Result<Tensor> {
        self.logits(&self.features(x)?, train, drop)
    }
}
