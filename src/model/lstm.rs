//! An LSTM layer (paper 1's) whose training on the CPU is a few large matrix products
//! instead of thousands of small autograd operations. The whole layer is one operation
//! ([`Layer`]) with a hand-written backward pass, so its large intermediates (84 MB of gate
//! values for paper 1's step) never pass through candle's graph, where each gradient is
//! zeroed, added and copied once more:
//!
//! - the input projection of every frame, `x · W_ihᵀ`, is one product, written time-major
//!   straight into the gate buffer (the bias rides as one more column of `W_ih`);
//! - then per frame one `(batch, hidden) · (hidden, 4 hidden)` product over the whole batch
//!   (`W_hh` packed once a step, the panels split over the threads) added to that frame's
//!   block, and the gate arithmetic with the bias in parallel over the batch
//!   ([`super::gates`], sixteen lanes wide on AVX-512); in training it keeps each frame's
//!   gate activations, cells and states (time-major);
//! - its backward pass uses them (no recomputation), walks back through time with one
//!   `(batch, 4 hidden) · (4 hidden, hidden)` product a frame over the whole batch, each
//!   frame's gate activations turned into its gate gradients in place, and forms the weight
//!   gradients as one product each over all frames at the end (`dW_hh = Σ_t dgates_tᵀ ·
//!   h_{t-1}`: time-major states of frames 0..T-1 against gate gradients of frames 1..T,
//!   no copy; `dW_ih = dgatesᵀ · x`; the bias's as the gate gradients' sum) and the input's
//!   as one more (`dgates · W_ih`).
//!
//! Every product runs on the packed AVX-512 kernel of [`super::packed`] where the CPU has
//! it (gemm elsewhere). Through candle's autograd the per-frame slices of the input
//! projection each sent back a zero-padded gradient of the whole sequence; that alone made
//! a training step of a 1024-unit layer take tens of seconds. Gate order and parameter
//! names are PyTorch's (as candle's), so weights are interchangeable; equality of states
//! and of every gradient with candle's `LSTM` is tested below. On CUDA the layer runs as
//! candle operations.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::conv::product;
use super::gates::{gates_backward_wide, gates_forward_wide, GateRow};
use crate::kernel::packed::PackedRhs;

use super::conv::{data, with_values, zeroed};

/// The recurrent matrix as the right operand of every frame's product over the batch:
/// packed once for the whole sequence where the CPU runs the packed kernel, read in place
/// by gemm elsewhere.
enum Recurrent<'a> {
    Packed(PackedRhs),
    Gemm(&'a [f32], (usize, usize), (usize, usize)),
}

impl<'a> Recurrent<'a> {
    /// `B` (`k x n`) given by strides: `B[r][c] = b[r * rs + c * cs]`.
    fn new(b: &'a [f32], (k, n): (usize, usize), strides: (usize, usize)) -> Self {
        match PackedRhs::available() {
            true => Self::Packed(PackedRhs::new(b, (k, n), strides)),
            false => Self::Gemm(b, (k, n), strides),
        }
    }

    /// `C (m x n) (+)= A (m x k, rows a_rs apart) . B`: added to `c` when `accumulate`.
    fn mul(&self, a: &[f32], m: usize, a_rs: usize, c: &mut [f32], accumulate: bool) {
        match self {
            Self::Packed(p) => p.mul(a, m, a_rs, c, accumulate),
            // No AVX-512 here, so `product` is gemm split over the threads.
            Self::Gemm(b, (k, n), strides) => {
                product((m, *n, *k), c, accumulate, a, (a_rs, 1), b, *strides)
            }
        }
    }
}

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

    /// Hidden states `(batch, frames, hidden)` for input `(batch, frames, input)`, keeping
    /// what a backward pass needs.
    pub fn seq(&self, x: &Tensor) -> Result<Tensor> {
        self.seq_t(x, true)
    }

    /// As [`Lstm::seq`]; with `train` false nothing is kept for a backward pass (it would
    /// recompute the gates), so inference holds no activations.
    pub fn seq_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.run(x, x.device().is_cpu(), train)
    }

    /// As [`Lstm::seq`]; `fused` picks the CPU recurrence operation or candle operations.
    pub fn seq_with(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        self.run(x, fused, true)
    }

    fn run(&self, x: &Tensor, fused: bool, keep: bool) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let h4 = 4 * self.hidden;
        let bias = (&self.b_ih + &self.b_hh)?;
        if fused {
            // The bias as one more column of W_ih (its input a constant 1), so that the
            // whole layer is one operation of three inputs.
            let w_ihb = Tensor::cat(&[&self.w_ih, &bias.unsqueeze(1)?], 1)?;
            return x
                .contiguous()?
                .apply_op3(&w_ihb, &self.w_hh.contiguous()?, Layer::new(keep));
        }
        let x = x.reshape((b * t, d))?;
        let projected = x
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&bias)?
            .reshape((b, t, h4))?;
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

/// The whole layer as one operation: `(x (B, T, D), [W_ih | b] (4H, D + 1), W_hh (4H, H))
/// -> h (B, T, H)`, where the last column of the input weights is the bias `b_ih + b_hh`
/// (its input a constant 1). Inside, the frames are time-major: each frame's projections of
/// the whole batch are one block, which the recurrence reads in place and whose gradient
/// becomes the input's and the weights' gradients without passing through candle's graph
/// (where every gradient of 84 MB was zeroed, added and copied again). With `keep` set
/// (training), the forward pass keeps what the backward pass needs (the input time-major,
/// each frame's gate activations, cell and state), so the backward pass does not recompute
/// them.
struct Layer {
    keep: bool,
    kept: std::sync::Mutex<Option<Kept>>,
}

impl Layer {
    fn new(keep: bool) -> Self {
        Self {
            keep,
            kept: std::sync::Mutex::new(None),
        }
    }
}

/// A forward pass's frames, time-major: the input `(T, B, D)`, gate activations (i, f, g,
/// o) `(T, B, 4H)`, cells and states `(T, B, H)`.
struct Kept {
    x: Vec<f32>,
    acts: Vec<f32>,
    cells: Vec<f32>,
    states: Vec<f32>,
}

/// `A (m x k) · B (k x n)`, each given by strides as in [`product`], into a new buffer.
fn product_of(
    (m, n, k): (usize, usize, usize),
    (a, a_strides): (&[f32], (usize, usize)),
    (b, b_strides): (&[f32], (usize, usize)),
) -> Vec<f32> {
    let mut c = zeroed(m * n);
    product((m, n, k), &mut c, false, a, a_strides, b, b_strides);
    c
}

/// `f` run on one of rayon's threads: the passes start hundreds of parallel loops a step
/// (several a frame), and each started from a thread outside the pool is handed over to it
/// and waited for, where one started inside it is shared with the other threads as they
/// come free.
fn on_the_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// `(A, B, n)` to `(B, A, n)`: batch-major to time-major and back.
fn swap_major(v: &[f32], (a, b, n): (usize, usize, usize)) -> Vec<f32> {
    let mut out = zeroed(a * b * n);
    out.par_chunks_mut(a * n).enumerate().for_each(|(r, o)| {
        for s in 0..a {
            o[s * n..(s + 1) * n].copy_from_slice(&v[(s * b + r) * n..(s * b + r + 1) * n]);
        }
    });
    out
}

/// The forward pass over the whole batch: every frame's input projection as one product
/// (time-major, into the gate buffer), then frame by frame one `(B, H) · (H, 4H)` product
/// over all threads (W_hh packed once for the sequence) and the gate arithmetic with the
/// bias in parallel over the batch rows. `x` is `(B, T, D)`, `w_ihb` `(4H, D + 1)`, `w_hh`
/// `(4H, H)`.
fn forward(
    x: &[f32],
    w_ihb: &[f32],
    w: &[f32],
    (b, t, d, h): (usize, usize, usize, usize),
) -> Kept {
    let h4 = 4 * h;
    let x = swap_major(x, (b, t, d));
    // Each frame's pre-activations less the bias, overwritten with its activations below:
    // (T B x D) · W_ihᵀ, W_ihᵀ[k][c] = w_ihb[c (D + 1) + k].
    let mut acts = product_of((t * b, h4, d), (&x, (d, 1)), (w_ihb, (1, d + 1)));
    let bias: Vec<f32> = (0..h4).map(|c| w_ihb[c * (d + 1) + d]).collect();
    let bias = &bias[..];
    let mut cells = zeroed(t * b * h);
    let mut states = zeroed(t * b * h);
    // W_hhᵀ (H x 4H): W_hh is (4H, H) row-major, so Wᵀ[k][n] = W[n*H + k].
    let w_t = Recurrent::new(w, (h, h4), (1, h));
    // The cell before the first frame.
    let zeros = vec![0f32; b * h];
    for s in 0..t {
        let gates = &mut acts[s * b * h4..(s + 1) * b * h4];
        if s > 0 {
            // gates += h_{t-1} · W_hhᵀ.
            let hprev = &states[(s - 1) * b * h..s * b * h];
            w_t.mul(hprev, b, h, gates, true);
        }
        let (before, now) = cells.split_at_mut(s * b * h);
        let c_prev: &[f32] = match s {
            0 => &zeros,
            _ => &before[(s - 1) * b * h..],
        };
        let now = &mut now[..b * h];
        let st = &mut states[s * b * h..(s + 1) * b * h];
        gates
            .par_chunks_mut(h4)
            .zip(now.par_chunks_mut(h))
            .zip(st.par_chunks_mut(h))
            .enumerate()
            .for_each(|(r, ((g, c), hs))| {
                gates_forward_wide(g, bias, &c_prev[r * h..(r + 1) * h], c, hs)
            });
    }
    Kept {
        x,
        acts,
        cells,
        states,
    }
}

fn dims(l: &Layout, what: &str, n: usize) -> Result<Vec<usize>> {
    match l.dims().len() == n {
        true => Ok(l.dims().to_vec()),
        false => candle_core::bail!("lstm: {what} must have {n} dimensions, has {:?}", l.dims()),
    }
}

impl CustomOp3 for Layer {
    fn name(&self) -> &'static str {
        "emoscope-lstm-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xd, wd, hd) = (
            dims(l1, "input", 3)?,
            dims(l2, "input weights", 2)?,
            dims(l3, "recurrent weights", 2)?,
        );
        let (b, t, d) = (xd[0], xd[1], xd[2]);
        let (h4, h) = (hd[0], hd[1]);
        if h4 != 4 * h || wd != [h4, d + 1] {
            candle_core::bail!(
                "lstm: input {xd:?}, input weights and bias {wd:?} and recurrent weights {hd:?} do not fit"
            );
        }
        let (x, w_ihb, w_hh) = (
            data(s1, l1, "input")?,
            data(s2, l2, "input weights")?,
            data(s3, l3, "recurrent weights")?,
        );
        let kept = on_the_pool(|| forward(x, w_ihb, w_hh, (b, t, d, h)));
        let out = swap_major(&kept.states, (t, b, h));
        if self.keep {
            *self.kept.lock().expect("lstm state lock") = Some(kept);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w_ihb: &Tensor,
        w_hh: &Tensor,
        _states: &Tensor,
        dstates: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, d) = x.dims3()?;
        let h = w_hh.dim(1)?;
        let taken = self.kept.lock().expect("lstm state lock").take();
        let grads = on_the_pool(|| {
            with_values(w_ihb, "input weights", |wi| {
                with_values(w_hh, "recurrent weights", |wh| {
                    let kept = match taken {
                        Some(k) => k,
                        // Not kept (an inference-mode pass differentiated after all):
                        // recompute.
                        None => with_values(x, "input", |xv| forward(xv, wi, wh, (b, t, d, h)))?,
                    };
                    with_values(dstates, "state gradient", |dv| {
                        backward(kept, (wi, wh), dv, (b, t, d, h))
                    })
                })
            })
        })???;
        let (dx, dw_ihb, dw_hh) = grads;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, t, d), dev)?),
            Some(Tensor::from_vec(dw_ihb, (4 * h, d + 1), dev)?),
            Some(Tensor::from_vec(dw_hh, (4 * h, h), dev)?),
        ))
    }
}

/// The backward pass of [`forward`]: from what it kept, the weights (`[W_ih | b]` and
/// `W_hh`) and the loss's gradient of the states `dv` (B, T, H), the gradients of the input
/// `(B, T, D)`, of `[W_ih | b]` and of `W_hh`.
fn backward(
    kept: Kept,
    (w_ihb, wv): (&[f32], &[f32]),
    dv: &[f32],
    (b, t, d, h): (usize, usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h4 = 4 * h;
    let Kept {
        x,
        acts: mut dgates,
        cells,
        states,
    } = kept;
    // Gate gradients, time-major (T, B, 4H), walking back through time; per frame the
    // element-wise part in parallel over the batch (each frame's gate activations turn
    // into its gate gradients in place), then dh_{t-1} = dgates_t · W_hh as one product
    // over the whole batch.
    let w_hh = Recurrent::new(wv, (h4, h), (h, 1));
    let mut dh_next = vec![0f32; b * h];
    let mut dc_next = vec![0f32; b * h];
    // The cell before the first frame, as in the forward pass.
    let zeros = vec![0f32; b * h];
    for s in (0..t).rev() {
        let g_s = &mut dgates[s * b * h4..(s + 1) * b * h4];
        let c_s = &cells[s * b * h..(s + 1) * b * h];
        let c_prev: &[f32] = match s {
            0 => &zeros,
            _ => &cells[(s - 1) * b * h..s * b * h],
        };
        g_s.par_chunks_mut(h4)
            .zip(dc_next.par_chunks_mut(h))
            .zip(dh_next.par_chunks(h))
            .enumerate()
            .for_each(|(r, ((g, dcn), dhn))| {
                let row = GateRow {
                    cell: &c_s[r * h..(r + 1) * h],
                    c_prev: &c_prev[r * h..(r + 1) * h],
                    dstate: &dv[(r * t + s) * h..(r * t + s + 1) * h],
                    dh_next: dhn,
                };
                gates_backward_wide(&row, g, dcn)
            });
        if s > 0 {
            w_hh.mul(g_s, b, h4, &mut dh_next, false);
        }
    }
    // dW_hh = Σ_{t≥1} dgates_tᵀ · h_{t-1}: time-major, frames 1..T of the gate
    // gradients against frames 0..T-1 of the states, one product of inner size B(T-1).
    let dw = match t > 1 {
        true => product_of(
            (h4, h, b * (t - 1)),
            (&dgates[b * h4..], (1, h4)),
            (&states, (h, 1)),
        ),
        false => zeroed(h4 * h),
    };
    // The bias's gradient: the gate gradients summed over every frame and row.
    let add = |mut acc: Vec<f32>, row: &[f32]| {
        acc.iter_mut().zip(row).for_each(|(a, g)| *a += g);
        acc
    };
    let dbias = dgates
        .par_chunks(b * h4)
        .map(|frame| frame.chunks(h4).fold(vec![0f32; h4], add))
        .reduce(|| vec![0f32; h4], |acc, f| add(acc, &f));
    // The input's gradient, (T B x 4H) · W_ih, back to batch-major; W_ih[k][c] =
    // w_ihb[k (D + 1) + c].
    let dx = product_of((t * b, d, h4), (&dgates, (h4, 1)), (w_ihb, (d + 1, 1)));
    let dx = swap_major(&dx, (t, b, d));
    // dW_ih = dgatesᵀ · x over every frame and row, then the bias's gradient as its last
    // column.
    let dw_ih = product_of((h4, d, t * b), (&dgates, (1, h4)), (&x, (d, 1)));
    let mut dw_ihb = zeroed(h4 * (d + 1));
    dw_ihb
        .par_chunks_mut(d + 1)
        .zip(dw_ih.par_chunks(d))
        .zip(&dbias)
        .for_each(|((out, row), db)| {
            out[..d].copy_from_slice(row);
            out[d] = *db;
        });
    (dx, dw_ihb, dw)
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
        // (fused and kept, fused and recomputed as after an inference pass, candle ops)
        for (fused, keep) in [(true, true), (true, false), (false, true)] {
            let a = if keep {
                ours.seq_with(x.as_tensor(), fused).unwrap()
            } else {
                ours.seq_t(x.as_tensor(), false).unwrap()
            };
            close(
                &a,
                &reference,
                &format!("states (fused {fused}, kept {keep})"),
            );
            let ga = (&a * &w).unwrap().sum_all().unwrap().backward().unwrap();
            close(
                ga.get(&x).unwrap(),
                gb.get(&x).unwrap(),
                &format!("input gradient (fused {fused}, kept {keep})"),
            );
            for (name, var) in vm.data().lock().unwrap().iter() {
                close(
                    ga.get(var.as_tensor()).unwrap(),
                    gb.get(var.as_tensor()).unwrap(),
                    &format!("{name} gradient (fused {fused}, kept {keep})"),
                );
            }
        }
    }

    /// The fused layer's gradients against finite differences of the loss, one element of
    /// the input, of `[W_ih | b]` and of W_hh at a time (f64 sums in the check).
    #[test]
    fn layer_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let var = |t: Tensor| Var::from_tensor(&t).unwrap();
        // A batch of 2, 6 frames of 4 inputs, 3 hidden units.
        let vars = [
            var(Tensor::randn(0f32, 1.0, (2, 6, 4), &dev).unwrap()),
            var(Tensor::randn(0f32, 0.5, (12, 5), &dev).unwrap()),
            var(Tensor::randn(0f32, 0.5, (12, 3), &dev).unwrap()),
        ];
        let weights = Tensor::randn(0f32, 1.0, (2, 6, 3), &dev).unwrap();
        let run = |a: &[Tensor]| a[0].apply_op3(&a[1], &a[2], Layer::new(true)).unwrap();
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let loss = |a: &[Tensor]| -> f64 {
            let (h, w) = (values(&run(a)), values(&weights));
            h.iter().zip(&w).map(|(x, y)| *x as f64 * *y as f64).sum()
        };
        let base: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let g = (&run(&base) * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (i, v) in vars.iter().enumerate() {
            let grad = values(g.get(v.as_tensor()).unwrap());
            let at = values(v.as_tensor());
            for k in (0..at.len()).step_by(5) {
                let eps = 1e-2f32;
                let moved = |d: f32| {
                    let mut x = at.clone();
                    x[k] += d;
                    let mut a = base.clone();
                    a[i] = Tensor::from_vec(x, v.as_tensor().shape(), &dev).unwrap();
                    loss(&a)
                };
                let fd = (moved(eps) - moved(-eps)) / (2.0 * eps as f64);
                assert!(
                    (fd - grad[k] as f64).abs() <= 2e-3 * fd.abs().max(1.0),
                    "input {i} element {k}: finite difference {fd}, gradient {}",
                    grad[k]
                );
            }
        }
    }
}
