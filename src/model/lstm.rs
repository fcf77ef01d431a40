//! An LSTM layer (paper 1's) whose training on the CPU is a few large matrix products
//! instead of thousands of small autograd operations:
//!
//! - the input projection of every frame, `x · W_ihᵀ + b`, is one product before the
//!   recurrence (candle's `LSTM` does two products and two bias additions a frame);
//! - the recurrence is one operation ([`Recurrence`]) over the whole sequence: per frame one
//!   `(batch, hidden) · (hidden, 4 hidden)` product and the gate arithmetic in one pass,
//!   parallel over the batch (each sequence's recurrence is independent);
//! - its backward pass recomputes the gates, walks back through time with one
//!   `(batch, 4 hidden) · (4 hidden, hidden)` product a frame, and forms the recurrent
//!   weight gradient as one product over all frames at the end (`dW_hh = Σ_t dgates_tᵀ ·
//!   h_{t-1}`, inner size batch × frames).
//!
//! Through candle's autograd the per-frame slices of the input projection each sent back a
//! zero-padded gradient of the whole sequence; that alone made a training step of a
//! 1024-unit layer take tens of seconds. Gate order and parameter names are PyTorch's (as
//! candle's), so weights are interchangeable; equality of states and of every gradient
//! with candle's `LSTM` is tested below. On CUDA the recurrence runs as candle operations.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::conv::{data, matmul, pieces};

/// One LSTM layer (gates in the order input, forget, cell, output), from zero state.
pub struct Lstm {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: usize,
}

impl Lstm {
    /// Parameters `weight_ih_l0` (4H x input), `weight_hh_l0` (4H x H), `bias_ih_l0`,
    /// `bias_hh_l0` (4H), initialised as candle's `LSTMConfig::default()`.
    pub fn new(vb: VarBuilder, input: usize, hidden: usize) -> Result<Self> {
        let w = candle_nn::init::DEFAULT_KAIMING_UNIFORM;
        let zero = candle_nn::Init::Const(0.0);
        Ok(Self {
            w_ih: vb.get_with_hints((4 * hidden, input), "weight_ih_l0", w)?,
            w_hh: vb.get_with_hints((4 * hidden, hidden), "weight_hh_l0", w)?,
            b_ih: vb.get_with_hints(4 * hidden, "bias_ih_l0", zero)?,
            b_hh: vb.get_with_hints(4 * hidden, "bias_hh_l0", zero)?,
            hidden,
        })
    }

    /// Hidden states `(batch, frames, hidden)` for input `(batch, frames, input)`.
    pub fn seq(&self, x: &Tensor) -> Result<Tensor> {
        self.seq_with(x, x.device().is_cpu())
    }

    /// As [`Lstm::seq`]; `fused` picks the CPU recurrence operation or candle operations.
    pub fn seq_with(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h4 = 4 * self.hidden;
        let bias = (&self.b_ih + &self.b_hh)?;
        let projected = x
            .reshape((b * t, d))?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&bias)?
            .reshape((b, t, h4))?;
        if fused {
            return projected.apply_op2(&self.w_hh.contiguous()?, Recurrence);
        }
        let w_hh_t = self.w_hh.t()?;
        let n = self.hidden;
        let mut h = Tensor::zeros((b, n), x.dtype(), x.device())?;
        let mut c = h.clone();
        let mut states = Vec::with_capacity(t);
        for s in 0..t {
            let gates = (projected.narrow(1, s, 1)?.squeeze(1)? + h.matmul(&w_hh_t)?)?;
            let i = candle_nn::ops::sigmoid(&gates.narrow(1, 0, n)?)?;
            let f = candle_nn::ops::sigmoid(&gates.narrow(1, n, n)?)?;
            let g = gates.narrow(1, 2 * n, n)?.tanh()?;
            let o = candle_nn::ops::sigmoid(&gates.narrow(1, 3 * n, n)?)?;
            c = ((f * &c)? + (i * g)?)?;
            h = (o * c.tanh()?)?;
            states.push(h.clone());
        }
        Tensor::stack(&states, 1)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The recurrence over a whole sequence: `(projected (B, T, 4H), W_hh (4H, H)) -> h (B, T,
/// H)`, where `projected` holds each frame's `x_t · W_ihᵀ + b`.
struct Recurrence;

/// What one batch slice's forward pass keeps for the backward pass: each frame's gate
/// activations (i, f, g, o) and cell state.
struct Kept<'a> {
    acts: &'a mut [f32],
    cells: &'a mut [f32],
}

/// Runs `rows` sequences of `t` frames through the recurrence, writing their states into
/// `states` (rows, t, h) and, if asked, the activations and cells into `kept`.
fn forward_slice(
    proj: &[f32],
    w: &[f32],
    (rows, t, h): (usize, usize, usize),
    states: &mut [f32],
    mut kept: Option<Kept>,
) {
    let h4 = 4 * h;
    let mut gates = vec![0f32; rows * h4];
    let mut c = vec![0f32; rows * h];
    let mut hprev = vec![0f32; rows * h];
    for s in 0..t {
        for r in 0..rows {
            let at = (r * t + s) * h4;
            gates[r * h4..(r + 1) * h4].copy_from_slice(&proj[at..at + h4]);
        }
        if s > 0 {
            // gates += h_{t-1} · W_hhᵀ; W_hh is (4H, H) row-major, so Wᵀ[k][n] = W[n*H + k].
            matmul((rows, h4, h), &mut gates, true, &hprev, (h, 1), w, (1, h));
        }
        for r in 0..rows {
            let g = &gates[r * h4..(r + 1) * h4];
            let at = r * t + s;
            for j in 0..h {
                let (ig, fg) = (sigmoid(g[j]), sigmoid(g[h + j]));
                let (cg, og) = (g[2 * h + j].tanh(), sigmoid(g[3 * h + j]));
                let cc = fg * c[r * h + j] + ig * cg;
                c[r * h + j] = cc;
                let hh = og * cc.tanh();
                hprev[r * h + j] = hh;
                states[at * h + j] = hh;
                if let Some(k) = kept.as_mut() {
                    let a = &mut k.acts[at * h4..(at + 1) * h4];
                    (a[j], a[h + j], a[2 * h + j], a[3 * h + j]) = (ig, fg, cg, og);
                    k.cells[at * h + j] = cc;
                }
            }
        }
    }
}

fn dims3(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match *l.dims() {
        [a, b, c] => Ok((a, b, c)),
        ref other => candle_core::bail!("lstm: {what} must have 3 dimensions, has {other:?}"),
    }
}

impl CustomOp2 for Recurrence {
    fn name(&self) -> &'static str {
        "emoscope-lstm-recurrence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, h4) = dims3(l1, "projected input")?;
        let h = h4 / 4;
        if h4 % 4 != 0 || l2.dims() != [h4, h] {
            candle_core::bail!(
                "lstm: projected input {:?} and recurrent weights {:?} do not fit",
                l1.dims(),
                l2.dims()
            );
        }
        let (proj, w) = (
            data(s1, l1, "projected input")?,
            data(s2, l2, "recurrent weights")?,
        );
        let mut out = vec![0f32; b * t * h];
        let per = b.div_ceil(pieces(b)).max(1);
        out.par_chunks_mut(per * t * h)
            .enumerate()
            .for_each(|(p, os)| {
                let rows = os.len() / (t * h);
                let b0 = p * per;
                let pr = &proj[b0 * t * h4..(b0 + rows) * t * h4];
                forward_slice(pr, w, (rows, t, h), os, None);
            });
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        proj: &Tensor,
        w: &Tensor,
        states: &Tensor,
        dstates: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, h4) = proj.dims3()?;
        let h = h4 / 4;
        let flat = |x: &Tensor| -> Result<Vec<f32>> { x.flatten_all()?.to_vec1::<f32>() };
        let (pv, wv, sv, dv) = (flat(proj)?, flat(w)?, flat(states)?, flat(dstates)?);
        let mut dproj = vec![0f32; b * t * h4];
        let per = b.div_ceil(pieces(b)).max(1);
        dproj
            .par_chunks_mut(per * t * h4)
            .enumerate()
            .for_each(|(p, dp)| {
                let rows = dp.len() / (t * h4);
                let b0 = p * per;
                let range = |n: usize| b0 * t * n..(b0 + rows) * t * n;
                // Recompute the gates (cheaper than keeping them from the forward pass,
                // which custom operations cannot).
                let mut acts = vec![0f32; rows * t * h4];
                let mut cells = vec![0f32; rows * t * h];
                let mut again = vec![0f32; rows * t * h];
                forward_slice(
                    &pv[range(h4)],
                    &wv,
                    (rows, t, h),
                    &mut again,
                    Some(Kept {
                        acts: &mut acts,
                        cells: &mut cells,
                    }),
                );
                let ds = &dv[range(h)];
                let mut dh_next = vec![0f32; rows * h];
                let mut dc_next = vec![0f32; rows * h];
                for s in (0..t).rev() {
                    for r in 0..rows {
                        let at = r * t + s;
                        let a = &acts[at * h4..(at + 1) * h4];
                        let g = &mut dp[at * h4..(at + 1) * h4];
                        for j in 0..h {
                            let (ig, fg, cg, og) = (a[j], a[h + j], a[2 * h + j], a[3 * h + j]);
                            let c = cells[at * h + j];
                            let c_prev = if s > 0 { cells[(at - 1) * h + j] } else { 0.0 };
                            let tc = c.tanh();
                            let dh = ds[at * h + j] + dh_next[r * h + j];
                            let dc = dc_next[r * h + j] + dh * og * (1.0 - tc * tc);
                            dc_next[r * h + j] = dc * fg;
                            g[j] = dc * cg * ig * (1.0 - ig);
                            g[h + j] = dc * c_prev * fg * (1.0 - fg);
                            g[2 * h + j] = dc * ig * (1.0 - cg * cg);
                            g[3 * h + j] = dh * tc * og * (1.0 - og);
                        }
                    }
                    if s > 0 {
                        // dh_{t-1} = dgates_t · W_hh: rows of dp at frame s (row stride t*4H).
                        matmul(
                            (rows, h, h4),
                            &mut dh_next,
                            false,
                            &dp[s * h4..],
                            (t * h4, 1),
                            &wv,
                            (h, 1),
                        );
                    }
                }
            });
        // dW_hh = Σ_{b,t} dgates[b,t]ᵀ h[b,t-1]: one product over all frames, its 4H output
        // rows shared among the threads.
        let mut hprev = vec![0f32; b * t * h];
        for r in 0..b {
            for s in 1..t {
                let to = (r * t + s) * h;
                let from = (r * t + s - 1) * h;
                hprev[to..to + h].copy_from_slice(&sv[from..from + h]);
            }
        }
        let mut dw = vec![0f32; h4 * h];
        let rows_per = h4.div_ceil(pieces(h4)).max(1);
        dw.par_chunks_mut(rows_per * h)
            .enumerate()
            .for_each(|(p, dws)| {
                let m0 = p * rows_per;
                let m = dws.len() / h;
                matmul(
                    (m, h, b * t),
                    dws,
                    false,
                    &dproj[m0..],
                    (1, h4),
                    &hprev,
                    (h, 1),
                );
            });
        let dev = proj.device();
        Ok((
            Some(Tensor::from_vec(dproj, (b, t, h4), dev)?),
            Some(Tensor::from_vec(dw, (h4, h), dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::rnn::{LSTMConfig, RNN};
    use candle_nn::VarMap;

    /// Both forms of the layer (the CPU recurrence operation and candle operations) equal
    /// candle's LSTM on the same weights: states and the gradients of the input and of
    /// every parameter, random inputs and non-zero biases, odd sizes and a batch that does
    /// not split evenly between threads.
    #[test]
    fn lstm_layer_equals_candles_states_and_gradients() {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let ours = Lstm::new(vb.pp("l"), 5, 7).unwrap();
        for (name, var) in vm.data().lock().unwrap().iter() {
            if name.contains("bias") {
                var.set(&Tensor::randn(0f32, 0.5, 28, &dev).unwrap())
                    .unwrap();
            }
        }
        let theirs = candle_nn::rnn::lstm(5, 7, LSTMConfig::default(), vb.pp("l")).unwrap();
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 11, 5), &dev).unwrap()).unwrap();
        let reference = theirs
            .states_to_tensor(&theirs.seq(x.as_tensor()).unwrap())
            .unwrap();
        let close = |p: &Tensor, q: &Tensor, what: &str| {
            let r = crate::model::conv::tests::rel(p, q);
            assert!(r <= 1e-5, "{what}: relative difference {r}");
        };
        // A loss that weighs every state differently.
        let w = Tensor::randn(0f32, 1.0, (3, 11, 7), &dev).unwrap();
        let gb = (&reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for fused in [true, false] {
            let a = ours.seq_with(x.as_tensor(), fused).unwrap();
            close(&a, &reference, &format!("states (fused {fused})"));
            let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                ga.get(&x).unwrap(),
                gb.get(&x).unwrap(),
                &format!("input gradient (fused {fused})"),
            );
            for (name, var) in vm.data().lock().unwrap().iter() {
                close(
                    ga.get(var.as_tensor()).unwrap(),
                    gb.get(var.as_tensor()).unwrap(),
                    &format!("{name} gradient (fused {fused})"),
                );
            }
        }
    }

    /// The fused recurrence's gradients against finite differences of the loss, one
    /// element of the input projection and of W_hh at a time (f64 sums in the check).
    #[test]
    fn recurrence_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let proj = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 6, 12), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.5, (12, 3), &dev).unwrap()).unwrap();
        let weights = Tensor::randn(0f32, 1.0, (2, 6, 3), &dev).unwrap();
        let loss = |p: &Tensor, w: &Tensor| -> f64 {
            let h = p.apply_op2(w, Recurrence).unwrap();
            let a = h.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let b = weights.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum()
        };
        let h = proj
            .as_tensor()
            .apply_op2(w.as_tensor(), Recurrence)
            .unwrap();
        let g = (&h * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (var, n) in [(&proj, 144usize), (&w, 36)] {
            let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let grad = values(g.get(var.as_tensor()).unwrap());
            let base = values(var.as_tensor());
            for k in (0..n).step_by(5) {
                let eps = 1e-2f32;
                let at = |d: f32| {
                    let mut v = base.clone();
                    v[k] += d;
                    Tensor::from_vec(v, var.as_tensor().shape(), &dev).unwrap()
                };
                let (plus, minus) = if std::ptr::eq(var, &proj) {
                    (
                        loss(&at(eps), w.as_tensor()),
                        loss(&at(-eps), w.as_tensor()),
                    )
                } else {
                    (
                        loss(proj.as_tensor(), &at(eps)),
                        loss(proj.as_tensor(), &at(-eps)),
                    )
                };
                let fd = (plus - minus) / (2.0 * eps as f64);
                assert!(
                    (fd - grad[k] as f64).abs() <= 2e-3 * fd.abs().max(1.0),
                    "element {k}: finite difference {fd}, gradient {}",
                    grad[k]
                );
            }
        }
    }
}
