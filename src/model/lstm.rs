//! An LSTM layer (paper 1's) whose training on the CPU is a few large matrix products
//! instead of thousands of small autograd operations:
//!
//! - the input projection of every frame, `x · W_ihᵀ`, is one operation ([`Project`])
//!   before the recurrence, forward and backward three products (candle's `LSTM` does two
//!   products and two bias additions a frame);
//! - the recurrence is one operation ([`Recurrence`]) over the whole sequence: per frame the
//!   projection plus the bias, then one `(batch, hidden) · (hidden, 4 hidden)` product over
//!   the whole batch (`W_hh` packed once a step, the panels split over the threads), then
//!   the gate arithmetic in parallel over the batch; in training it keeps each frame's gate
//!   activations, cells and states (time-major);
//! - its backward pass uses them (no recomputation), walks back through time with one
//!   `(batch, 4 hidden) · (4 hidden, hidden)` product a frame over the whole batch, and
//!   forms the recurrent weight gradient as one product over all frames at the end
//!   (`dW_hh = Σ_t dgates_tᵀ · h_{t-1}`, inner size batch × frames, no copy: time-major
//!   states of frames 0..T-1 against gate gradients of frames 1..T) and the bias's as the
//!   gate gradients' sum.
//!
//! Every product runs on the packed AVX-512 kernel of [`super::packed`] where the CPU has
//! it (gemm elsewhere). Through candle's autograd the per-frame slices of the input
//! projection each sent back a zero-padded gradient of the whole sequence; that alone made
//! a training step of a 1024-unit layer take tens of seconds. Gate order and parameter
//! names are PyTorch's (as candle's), so weights are interchangeable; equality of states
//! and of every gradient with candle's `LSTM` is tested below. On CUDA the layer runs as
//! candle operations.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::packed::{matmul as product, PackedRhs};

use super::conv::data;

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
            Self::Gemm(b, (k, n), strides) => {
                super::conv::matmul_parallel((m, *n, *k), c, accumulate, a, (a_rs, 1), b, *strides)
            }
        }
    }
}

/// `f` of a CPU tensor's values, read in place (made contiguous first if it is not): the
/// backward passes read their operands, up to 84 MB each, without copying them out.
fn with_values<R>(x: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => Ok(f(data(s, layout, what)?)),
        _ => candle_core::bail!("lstm: {what} is not on the CPU"),
    }
}

/// The input projection of every frame, `x (N, D) . Wᵀ` for `W (4H, D)`, forward and
/// backward as three products of [`super::packed::matmul`] (candle's matmul runs gemm's
/// AVX2 kernel, which on an AVX-512 CPU took two thirds of a training step's products).
struct Project;

impl CustomOp2 for Project {
    fn name(&self) -> &'static str {
        "emoscope-lstm-projection"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (&[n, d], &[m, d2]) = (l1.dims(), l2.dims()) else {
            candle_core::bail!("lstm: projection of {:?} by {:?}", l1.dims(), l2.dims())
        };
        if d != d2 {
            candle_core::bail!(
                "lstm: input {:?} and input weights {:?} do not fit",
                l1.dims(),
                l2.dims()
            );
        }
        let (x, w) = (data(s1, l1, "input")?, data(s2, l2, "input weights")?);
        let mut y = vec![0f32; n * m];
        product((n, m, d), &mut y, false, x, (d, 1), w, (1, d));
        Ok((CpuStorage::F32(y), Shape::from((n, m))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ((n, d), m) = (x.dims2()?, w.dim(0)?);
        // dx = dy . W, (n x m) . (m x d); dW = dyᵀ . x, (m x n) . (n x d).
        let mut dx = vec![0f32; n * d];
        let mut dw = vec![0f32; m * d];
        with_values(dy, "projection gradient", |dyv| {
            with_values(w, "input weights", |wv| {
                product((n, d, m), &mut dx, false, dyv, (m, 1), wv, (d, 1))
            })?;
            with_values(x, "input", |xv| {
                product((m, d, n), &mut dw, false, dyv, (1, m), xv, (d, 1))
            })
        })??;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (n, d), dev)?),
            Some(Tensor::from_vec(dw, (m, d), dev)?),
        ))
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
            // Time-major: each frame's projections of the whole batch are one block, which
            // the recurrence reads in place and whose gradient it hands back as it made it.
            // The bias is added with the gates.
            let projected = x
                .transpose(0, 1)?
                .contiguous()?
                .reshape((t * b, d))?
                .apply_op2(&self.w_ih.contiguous()?, Project)?
                .reshape((t, b, h4))?;
            return projected.apply_op3(&self.w_hh.contiguous()?, &bias, Recurrence::new(keep));
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

/// `e^x` without a library call or a branch, so the gate loops vectorise: `x = n ln 2 + r`,
/// `|r| <= ln 2 / 2`, `e^r` by its Taylor polynomial to `r^7` (relative error below 2e-7
/// there), times `2^n` built in the exponent bits; `x` clamped to where `e^x` is a normal
/// f32 (so `e^x` is 0 or a large finite value beyond, which the gates saturate on alike).
#[inline(always)]
fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer without `round`.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

/// `tanh x = 1 - 2 / (e^{2x} + 1)`: within 2e-7 of libm's everywhere (absolute; a value
/// near 0 loses relative precision, never absolute).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp_fast(2.0 * x) + 1.0)
}

/// One batch row's gates of one frame, forward: `g` holds the pre-activations (i, f, g, o)
/// less the bias, and is overwritten with the activations; the cell and state are written.
#[inline(always)]
fn gates_forward(g: &mut [f32], bias: &[f32], c_prev: &[f32], c: &mut [f32], hs: &mut [f32]) {
    let h = c.len();
    let (bi, bf, bc, bo) = (
        &bias[..h],
        &bias[h..2 * h],
        &bias[2 * h..3 * h],
        &bias[3 * h..4 * h],
    );
    // The four gates as separate slices of one length, so the loop vectorises.
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (gi, gf, gc, go, cp, hs) = (
        &mut gi[..h],
        &mut gf[..h],
        &mut gc[..h],
        &mut go[..h],
        &c_prev[..h],
        &mut hs[..h],
    );
    for j in 0..h {
        let (ig, fg) = (sigmoid(gi[j] + bi[j]), sigmoid(gf[j] + bf[j]));
        let (cg, og) = (tanh(gc[j] + bc[j]), sigmoid(go[j] + bo[j]));
        let cc = fg * cp[j] + ig * cg;
        c[j] = cc;
        hs[j] = og * tanh(cc);
        (gi[j], gf[j], gc[j], go[j]) = (ig, fg, cg, og);
    }
}

/// What one batch row's backward step through a frame reads beside its gate activations:
/// the frame's cell, the cell before it, the loss's gradient of the frame's state and the
/// gradient that came back from the next frame.
struct GateRow<'a> {
    cell: &'a [f32],
    c_prev: &'a [f32],
    dstate: &'a [f32],
    dh_next: &'a [f32],
}

/// One batch row's gate gradients of one frame, written over its gate activations in `g`
/// (i, f, g, o; each read before it is overwritten); `dc` holds the cell gradient from
/// the next frame and is left holding the one for the frame before.
#[inline(always)]
fn gates_backward(row: &GateRow, g: &mut [f32], dc_next: &mut [f32]) {
    let h = dc_next.len();
    let (gi, rest) = g.split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gc, go) = rest.split_at_mut(h);
    let (cs, cps, ds, dhn) = (
        &row.cell[..h],
        &row.c_prev[..h],
        &row.dstate[..h],
        &row.dh_next[..h],
    );
    let (gi, gf, gc, go) = (&mut gi[..h], &mut gf[..h], &mut gc[..h], &mut go[..h]);
    for j in 0..h {
        let (ig, fg, cg, og) = (gi[j], gf[j], gc[j], go[j]);
        let tc = tanh(cs[j]);
        let dh = ds[j] + dhn[j];
        let dc = dc_next[j] + dh * og * (1.0 - tc * tc);
        dc_next[j] = dc * fg;
        gi[j] = dc * cg * ig * (1.0 - ig);
        gf[j] = dc * cps[j] * fg * (1.0 - fg);
        gc[j] = dc * ig * (1.0 - cg * cg);
        go[j] = dh * tc * og * (1.0 - og);
    }
}

/// The recurrence over a whole sequence: `(projected (T, B, 4H), W_hh (4H, H), bias (4H))
/// -> h (B, T, H)`, where `projected` holds each frame's `x_t · W_ihᵀ`, time-major, and
/// `bias` is `b_ih + b_hh`; its gradient comes back time-major too. With `keep` set (training),
/// the forward pass keeps what the backward pass needs (each frame's gate activations, cell
/// and state), so the backward pass does not recompute them.
struct Recurrence {
    keep: bool,
    kept: std::sync::Mutex<Option<Kept>>,
}

impl Recurrence {
    fn new(keep: bool) -> Self {
        Self {
            keep,
            kept: std::sync::Mutex::new(None),
        }
    }
}

/// A forward pass's frames, time-major: gate activations (i, f, g, o) `(T, B, 4H)`, cells
/// and states `(T, B, H)`.
struct Kept {
    acts: Vec<f32>,
    cells: Vec<f32>,
    states: Vec<f32>,
}

/// The forward pass over the whole batch, frame by frame: the batch's gates of a frame are
/// its projection (time-major, `(T, B, 4H)`) plus one `(B, H) · (H, 4H)` product over all
/// threads (W_hh packed once for the sequence), then the gate arithmetic with the bias in
/// parallel over the batch rows.
fn forward(proj: &[f32], w: &[f32], bias: &[f32], (b, t, h): (usize, usize, usize)) -> Kept {
    let h4 = 4 * h;
    // Each frame's pre-activations, overwritten with its activations below.
    let mut acts = proj[..t * b * h4].to_vec();
    let mut cells = vec![0f32; t * b * h];
    let mut states = vec![0f32; t * b * h];
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
                // AVX2 where the CPU has it: the crate's baseline vectorises 4 lanes wide.
                let c_prev = &c_prev[r * h..(r + 1) * h];
                crate::dsp::vectorised(|| gates_forward(g, bias, c_prev, c, hs))
            });
    }
    Kept {
        acts,
        cells,
        states,
    }
}

/// `(T, B, n)` time-major to `(B, T, n)` batch-major.
fn to_batch_major(v: &[f32], (b, t, n): (usize, usize, usize)) -> Vec<f32> {
    let mut out = vec![0f32; b * t * n];
    out.par_chunks_mut(t * n).enumerate().for_each(|(r, o)| {
        for s in 0..t {
            o[s * n..(s + 1) * n].copy_from_slice(&v[(s * b + r) * n..(s * b + r + 1) * n]);
        }
    });
    out
}

fn dims3(l: &Layout, what: &str) -> Result<(usize, usize, usize)> {
    match *l.dims() {
        [a, b, c] => Ok((a, b, c)),
        ref other => candle_core::bail!("lstm: {what} must have 3 dimensions, has {other:?}"),
    }
}

impl CustomOp3 for Recurrence {
    fn name(&self) -> &'static str {
        "emoscope-lstm-recurrence"
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
        let (t, b, h4) = dims3(l1, "projected input")?;
        let h = h4 / 4;
        if h4 % 4 != 0 || l2.dims() != [h4, h] || l3.dims() != [h4] {
            candle_core::bail!(
                "lstm: projected input {:?}, recurrent weights {:?} and bias {:?} do not fit",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let (proj, w, bias) = (
            data(s1, l1, "projected input")?,
            data(s2, l2, "recurrent weights")?,
            data(s3, l3, "bias")?,
        );
        let kept = forward(proj, w, bias, (b, t, h));
        let out = to_batch_major(&kept.states, (b, t, h));
        if self.keep {
            *self.kept.lock().expect("lstm state lock") = Some(kept);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        proj: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _states: &Tensor,
        dstates: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (t, b, h4) = proj.dims3()?;
        let h = h4 / 4;
        let taken = self.kept.lock().expect("lstm state lock").take();
        let kept = match taken {
            Some(k) => k,
            // Not kept (an inference-mode pass differentiated after all): recompute.
            None => with_values(proj, "projected input", |p| {
                with_values(bias, "bias", |bv| {
                    with_values(w, "recurrent weights", |wv| forward(p, wv, bv, (b, t, h)))
                })
            })???,
        };
        let (dgates, dw, dbias) = with_values(w, "recurrent weights", |wv| {
            with_values(dstates, "state gradient", |dv| {
                backward(kept, wv, dv, (b, t, h))
            })
        })??;
        let dev = proj.device();
        Ok((
            Some(Tensor::from_vec(dgates, (t, b, h4), dev)?),
            Some(Tensor::from_vec(dw, (h4, h), dev)?),
            Some(Tensor::from_vec(dbias, h4, dev)?),
        ))
    }
}

/// The backward pass of [`forward`]: from what it kept, the recurrent weights `w` (4H, H) and
/// the loss's gradient of the states `dv` (B, T, H), the gradients of the projected input
/// (time-major `(T, B, 4H)`, written over the kept gate activations), of the recurrent
/// weights and of the bias.
fn backward(
    kept: Kept,
    wv: &[f32],
    dv: &[f32],
    (b, t, h): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h4 = 4 * h;
    let Kept {
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
                crate::dsp::vectorised(|| gates_backward(&row, g, dcn))
            });
        if s > 0 {
            w_hh.mul(g_s, b, h4, &mut dh_next, false);
        }
    }
    // dW_hh = Σ_{t≥1} dgates_tᵀ · h_{t-1}: time-major, frames 1..T of the gate
    // gradients against frames 0..T-1 of the states, one product of inner size B(T-1).
    let mut dw = vec![0f32; h4 * h];
    if t > 1 {
        product(
            (h4, h, b * (t - 1)),
            &mut dw,
            false,
            &dgates[b * h4..],
            (1, h4),
            &states[..b * (t - 1) * h],
            (h, 1),
        );
    }
    // The bias's gradient: the gate gradients summed over every frame and row.
    let add = |mut acc: Vec<f32>, row: &[f32]| {
        acc.iter_mut().zip(row).for_each(|(a, g)| *a += g);
        acc
    };
    let dbias = dgates
        .par_chunks(b * h4)
        .map(|frame| frame.chunks(h4).fold(vec![0f32; h4], add))
        .reduce(|| vec![0f32; h4], |acc, f| add(acc, &f));
    (dgates, dw, dbias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use candle_nn::rnn::{LSTMConfig, RNN};
    use candle_nn::VarMap;

    /// The gates' branch-free exp, sigmoid and tanh against libm's, over and beyond every
    /// value a gate meets, and saturating without NaN far out.
    #[test]
    fn fast_gate_functions_match_libm() {
        let (mut e_rel, mut s_abs, mut t_abs) = (0f64, 0f64, 0f64);
        for i in -800_000..=800_000 {
            let x = i as f32 * 1e-4;
            let e = exp_fast(x) as f64;
            e_rel = e_rel.max((e - (x as f64).exp()).abs() / (x as f64).exp());
            let sx = 1.0 / (1.0 + (-(x as f64)).exp());
            s_abs = s_abs.max((sigmoid(x) as f64 - sx).abs());
            t_abs = t_abs.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        assert!(e_rel < 1e-6, "exp: relative error {e_rel}");
        assert!(s_abs < 1e-6, "sigmoid: absolute error {s_abs}");
        assert!(t_abs < 1e-6, "tanh: absolute error {t_abs}");
        for x in [-1e4f32, -200.0, 200.0, 1e4, f32::MAX, f32::MIN] {
            let (sg, th) = (sigmoid(x), tanh(x));
            assert!(sg.is_finite() && th.is_finite(), "{x}: {sg}, {th}");
            assert!(
                (sg - if x > 0.0 { 1.0 } else { 0.0 }).abs() < 1e-6,
                "sigmoid({x}) = {sg}"
            );
            assert!((th - x.signum()).abs() < 1e-6, "tanh({x}) = {th}");
        }
    }

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

    /// The fused recurrence's gradients against finite differences of the loss, one
    /// element of the input projection, of W_hh and of the bias at a time (f64 sums in the
    /// check).
    #[test]
    fn recurrence_gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let var = |t: Tensor| Var::from_tensor(&t).unwrap();
        let vars = [
            // The projection, time-major (6 frames of a batch of 2); the states (2, 6, 3).
            var(Tensor::randn(0f32, 1.0, (6, 2, 12), &dev).unwrap()),
            var(Tensor::randn(0f32, 0.5, (12, 3), &dev).unwrap()),
            var(Tensor::randn(0f32, 0.5, 12, &dev).unwrap()),
        ];
        let weights = Tensor::randn(0f32, 1.0, (2, 6, 3), &dev).unwrap();
        let run = |a: &[Tensor]| a[0].apply_op3(&a[1], &a[2], Recurrence::new(true)).unwrap();
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
