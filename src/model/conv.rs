//! 2-D convolution (stride 1, zero padding) whose forward and both backward passes are
//! matrix multiplications on the CPU, parallel over the batch:
//!
//! - forward: im2col of each sample, then `y_b = W · col_b` (O x K times K x N);
//! - input gradient: `dcol_b = Wᵀ · dy_b`, then col2im adds it back onto the image;
//! - weight gradient: `dW = Σ_b dy_b · col_bᵀ`, each thread summing its share of the batch.
//!
//! candle's own CPU convolution backward pass goes through a direct `conv_transpose2d`
//! that was most of an epoch and barely used the second core. On CUDA, [`Conv`] uses
//! candle's `conv2d` (cuDNN-style kernels are fine there). Equality with candle's conv2d
//! and its gradients, and with finite differences, is tested below.

use crate::kernel::packed::PackedRhs;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Shape of one convolution: channels, kernel and zero padding (stride is always 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad_h: usize,
    pub pad_w: usize,
}

impl ConvGeom {
    /// Rows of the im2col matrix: one per input channel and kernel tap.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output height and width for an `h` x `w` input.
    fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (hp, wp) = (h + 2 * self.pad_h, w + 2 * self.pad_w);
        if hp < self.kh || wp < self.kw {
            candle_core::bail!(
                "conv: input {h}x{w} (padded {hp}x{wp}) is smaller than the {}x{} kernel",
                self.kh,
                self.kw
            );
        }
        Ok((hp - self.kh + 1, wp - self.kw + 1))
    }
}

/// `c = [c +] a · b` for row-major `c` (m x n); `a` (m x k) and `b` (k x n) are read with
/// the given row and column strides, so either may be a transposed view. Callers
/// parallelise over the batch: where the CPU has AVX-512 the packed kernel
/// ([`crate::kernel::packed::matmul`]; its own parallel loops run inline on a busy pool), gemm on
/// one thread elsewhere.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    dims: (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    packed_or_gemm(dims, c, accumulate, a, a_strides, b, b_strides, false)
}

/// `C (m x n) (+)= A (m x k) . B (k x n)`, strides as [`matmul`]'s: the packed kernel
/// where the CPU has AVX-512 (its panels split over the threads), gemm split over the
/// threads elsewhere (for one large product, as the LSTM's whole batch each frame, its
/// right operand packed once instead of once per thread).
#[allow(clippy::too_many_arguments)]
pub(super) fn product(
    dims: (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    packed_or_gemm(dims, c, accumulate, a, a_strides, b, b_strides, true)
}

/// The packed kernel where the CPU has AVX-512, else gemm, split over rayon's threads when
/// `parallel`: [`matmul`] and [`product`] differ only in that.
#[allow(clippy::too_many_arguments)]
fn packed_or_gemm(
    dims: (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    parallel: bool,
) {
    match PackedRhs::available() {
        true => crate::kernel::packed::matmul(dims, c, accumulate, a, a_strides, b, b_strides),
        false => gemm_on(dims, c, accumulate, a, a_strides, b, b_strides, parallel),
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_on(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= m * n, "matmul: output too short");
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "matmul: left operand too short"
    );
    assert!(
        (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "matmul: right operand too short"
    );
    let threads = rayon::current_num_threads();
    let parallelism = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every element gemm reads or writes is inside the slices, as asserted above
    // (the largest index of each operand is (rows-1)*row_stride + (cols-1)*col_stride), the
    // output does not alias the inputs (it is a distinct &mut), and gemm returns only when
    // every thread it used (none, or rayon's with Parallelism::Rayon) has finished, so
    // nothing outlives the borrows.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// For each kernel tap: the range of output columns whose input column is inside the image,
/// and the offset from output column to input column.
fn tap_cols(j: usize, pad_w: usize, w: usize, wo: usize) -> (usize, usize, isize) {
    let shift = j as isize - pad_w as isize;
    let lo = (-shift).max(0) as usize;
    let hi = ((w as isize - shift).max(0) as usize).min(wo);
    (lo, hi.max(lo), shift)
}

/// im2col of one sample `x` (c_in x h x w) into `col` (K x ho*wo), zeros where the kernel
/// reaches into the padding.
fn im2col(g: &ConvGeom, x: &[f32], (h, w): (usize, usize), col: &mut [f32]) {
    let (ho, wo) = g.out_hw(h, w).expect("checked by the caller");
    let n = ho * wo;
    for c in 0..g.c_in {
        let xc = &x[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut col[r * n..(r + 1) * n];
                let (lo, hi, shift) = tap_cols(j, g.pad_w, w, wo);
                for oy in 0..ho {
                    let dst = &mut row[oy * wo..(oy + 1) * wo];
                    let iy = oy as isize + i as isize - g.pad_h as isize;
                    if iy < 0 || iy >= h as isize || lo == hi {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &xc[iy as usize * w..(iy as usize + 1) * w];
                    dst[..lo].fill(0.0);
                    let a = (lo as isize + shift) as usize;
                    dst[lo..hi].copy_from_slice(&src[a..a + (hi - lo)]);
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// col2im: adds `col` (K x ho*wo) back onto one sample's image gradient `dx` (c_in x h x w).
fn col2im(g: &ConvGeom, col: &[f32], (h, w): (usize, usize), dx: &mut [f32]) {
    let (ho, wo) = g.out_hw(h, w).expect("checked by the caller");
    let n = ho * wo;
    dx.fill(0.0);
    for c in 0..g.c_in {
        let dxc = &mut dx[c * h * w..(c + 1) * h * w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let row = &col[r * n..(r + 1) * n];
                let (lo, hi, shift) = tap_cols(j, g.pad_w, w, wo);
                if lo == hi {
                    continue;
                }
                for oy in 0..ho {
                    let iy = oy as isize + i as isize - g.pad_h as isize;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let a = (lo as isize + shift) as usize;
                    let dst = &mut dxc[iy as usize * w + a..iy as usize * w + a + (hi - lo)];
                    for (d, s) in dst.iter_mut().zip(&row[oy * wo + lo..oy * wo + hi]) {
                        *d += s;
                    }
                }
            }
        }
    }
}

/// The contiguous f32 data of a custom op's argument.
pub(super) fn data<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("conv: {what} must be f32, is {:?}", s.dtype());
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("conv: {what} must be contiguous"),
    }
}

/// `f` of a CPU tensor's values, read in place (made contiguous first if it is not): the
/// backward passes read their operands, up to 84 MB each, without copying them out.
pub(super) fn with_values<R>(x: &Tensor, what: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let x = x.contiguous()?;
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(s) => Ok(f(data(s, layout, what)?)),
        _ => candle_core::bail!("{what} is not on the CPU"),
    }
}

/// `n` zeros, written over every thread (the step's buffers are tens of MB).
pub(super) fn zeroed(n: usize) -> Vec<f32> {
    (0..n).into_par_iter().map(|_| 0.0).collect()
}

pub(super) fn dims4(l: &Layout, what: &str) -> Result<(usize, usize, usize, usize)> {
    match *l.dims() {
        [a, b, c, d] => Ok((a, b, c, d)),
        ref other => candle_core::bail!("conv: {what} must have 4 dimensions, has {other:?}"),
    }
}

/// How many pieces to split a batch into: one per rayon thread, never more than the batch.
pub(super) fn pieces(batch: usize) -> usize {
    rayon::current_num_threads().clamp(1, batch.max(1))
}

/// Forward: `(x (B, C, H, W), w (O, C, kh, kw)) -> y (B, O, Ho, Wo)`.
struct ConvFwd(ConvGeom);

/// The forward pass of [`ConvFwd`] and [`ConvBiasFwd`]: im2col and one product a sample,
/// the bias (one per output channel) added to each plane while it is still in cache.
fn conv_forward(
    g: &ConvGeom,
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    bias: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let (b, c, h, w) = dims4(l1, "input")?;
    if c != g.c_in || l2.dims() != [g.c_out, g.c_in, g.kh, g.kw] {
        candle_core::bail!(
            "conv: input {:?} and weight {:?} do not fit {g:?}",
            l1.dims(),
            l2.dims()
        );
    }
    if let Some(bias) = bias.filter(|bias| bias.len() != g.c_out) {
        candle_core::bail!(
            "conv: {} output channels but {} biases",
            g.c_out,
            bias.len()
        );
    }
    let (x, wt) = (data(s1, l1, "input")?, data(s2, l2, "weight")?);
    let (ho, wo) = g.out_hw(h, w)?;
    let (k, n) = (g.k(), ho * wo);
    let mut y = zeroed(b * g.c_out * n);
    let per = b.div_ceil(pieces(b)).max(1);
    y.par_chunks_mut(per * g.c_out * n)
        .enumerate()
        .for_each(|(p, ys)| {
            let mut col = vec![0f32; k * n];
            for (s, yb) in ys.chunks_mut(g.c_out * n).enumerate() {
                let bi = p * per + s;
                im2col(
                    g,
                    &x[bi * c * h * w..(bi + 1) * c * h * w],
                    (h, w),
                    &mut col,
                );
                matmul((g.c_out, n, k), yb, false, wt, (k, 1), &col, (n, 1));
                if let Some(bias) = bias {
                    for (plane, &bo) in yb.chunks_mut(n).zip(bias) {
                        plane.iter_mut().for_each(|v| *v += bo);
                    }
                }
            }
        });
    Ok((CpuStorage::F32(y), Shape::from((b, g.c_out, ho, wo))))
}

/// The input's and the weight's gradients of a convolution (the input's skipped when it
/// needs none, as the network's own input).
fn conv_grads(
    g: &ConvGeom,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dy = dy.contiguous()?;
    let dx = if x.track_op() {
        let (_, _, h, wd) = x.dims4()?;
        Some(dy.apply_op2_no_bwd(w, &ConvBwdData(*g, h, wd))?)
    } else {
        None
    };
    let dw = x.apply_op2_no_bwd(&dy, &ConvBwdFilter(*g))?;
    Ok((dx, Some(dw)))
}

/// A bias's gradient: the sum of each channel's planes of `dy` `(B, C, H, W)`, read in place.
fn bias_grad(dy: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = dy.dims4()?;
    let plane = h * w;
    let db: Vec<f32> = with_values(dy, "output gradient", |g| {
        (0..c)
            .into_par_iter()
            .map(|ch| {
                (0..b)
                    .map(|bi| {
                        let k = bi * c + ch;
                        g[k * plane..(k + 1) * plane].iter().sum::<f32>() as f64
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    })?;
    Tensor::from_vec(db, c, dy.device())
}

impl CustomOp2 for ConvFwd {
    fn name(&self) -> &'static str {
        "emoscope-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        conv_forward(&self.0, (s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        conv_grads(&self.0, x, w, dy)
    }
}

/// `conv(x, w) + bias` as one operation: the biased output is the only full-size tensor
/// the graph keeps (as two operations, candle's backward pass zeroed a gradient buffer of
/// the unbiased output's size and added into it, and the bias was one more pass over it).
struct ConvBiasFwd(ConvGeom);

impl CustomOp3 for ConvBiasFwd {
    fn name(&self) -> &'static str {
        "emoscope-conv2d-bias"
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
        let bias = data(s3, l3, "bias")?;
        conv_forward(&self.0, (s1, l1), (s2, l2), Some(bias))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = conv_grads(&self.0, x, w, dy)?;
        Ok((dx, dw, Some(bias_grad(dy)?)))
    }
}

/// Input gradient: `(dy (B, O, Ho, Wo), w) -> dx (B, C, H, W)`.
struct ConvBwdData(ConvGeom, usize, usize);

impl CustomOp2 for ConvBwdData {
    fn name(&self) -> &'static str {
        "emoscope-conv2d-bwd-data"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, h, w) = (&self.0, self.1, self.2);
        let (b, o, ho, wo) = dims4(l1, "output gradient")?;
        if o != g.c_out || (ho, wo) != g.out_hw(h, w)? {
            candle_core::bail!("conv backward: gradient {:?} does not fit {g:?}", l1.dims());
        }
        let (dy, wt) = (data(s1, l1, "output gradient")?, data(s2, l2, "weight")?);
        let (k, n) = (g.k(), ho * wo);
        let img = g.c_in * h * w;
        let mut dx = zeroed(b * img);
        let per = b.div_ceil(pieces(b)).max(1);
        dx.par_chunks_mut(per * img)
            .enumerate()
            .for_each(|(p, xs)| {
                let mut col = vec![0f32; k * n];
                for (s, dxb) in xs.chunks_mut(img).enumerate() {
                    let bi = p * per + s;
                    // dcol (K x N) = Wᵀ (K x O) · dy_b (O x N)
                    let dyb = &dy[bi * o * n..(bi + 1) * o * n];
                    matmul((k, n, o), &mut col, false, wt, (1, k), dyb, (n, 1));
                    col2im(g, &col, (h, w), dxb);
                }
            });
        Ok((CpuStorage::F32(dx), Shape::from((b, g.c_in, h, w))))
    }
}

/// Weight gradient: `(x (B, C, H, W), dy (B, O, Ho, Wo)) -> dW (O, C, kh, kw)`.
struct ConvBwdFilter(ConvGeom);

impl CustomOp2 for ConvBwdFilter {
    fn name(&self) -> &'static str {
        "emoscope-conv2d-bwd-filter"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        let (b, c, h, w) = dims4(l1, "input")?;
        let (ho, wo) = g.out_hw(h, w)?;
        if c != g.c_in || l2.dims() != [b, g.c_out, ho, wo] {
            candle_core::bail!(
                "conv backward: input {:?} and gradient {:?} do not fit {g:?}",
                l1.dims(),
                l2.dims()
            );
        }
        let (x, dy) = (data(s1, l1, "input")?, data(s2, l2, "output gradient")?);
        let (k, n, o) = (g.k(), ho * wo, g.c_out);
        let per = b.div_ceil(pieces(b)).max(1);
        let partial: Vec<Vec<f32>> = (0..b.div_ceil(per))
            .into_par_iter()
            .map(|p| {
                let mut dw = vec![0f32; o * k];
                let mut col = vec![0f32; k * n];
                for bi in p * per..((p + 1) * per).min(b) {
                    im2col(
                        g,
                        &x[bi * c * h * w..(bi + 1) * c * h * w],
                        (h, w),
                        &mut col,
                    );
                    // dW (O x K) += dy_b (O x N) · colᵀ (N x K)
                    let dyb = &dy[bi * o * n..(bi + 1) * o * n];
                    matmul((o, k, n), &mut dw, true, dyb, (n, 1), &col, (1, n));
                }
                dw
            })
            .collect();
        // Summed in piece order: the same thread count gives the same bits every run.
        let mut dw = vec![0f32; o * k];
        for part in partial {
            for (a, p) in dw.iter_mut().zip(part) {
                *a += p;
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from((o, g.c_in, g.kh, g.kw))))
    }
}

/// A convolution layer (stride 1, zero padding, optional bias) computed by [`ConvFwd`]
/// ([`ConvBiasFwd`] with a bias) on the CPU and by candle's `conv2d` elsewhere. The weight is `(c_out, c_in, kh, kw)` as in
/// candle's `Conv2d`, so saved models load unchanged.
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    geom: ConvGeom,
}

impl Conv {
    /// `padding` applies to both axes (as candle's `Conv2dConfig`).
    pub fn new(weight: Tensor, bias: Option<Tensor>, padding: usize) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        Ok(Self {
            weight,
            bias,
            geom: ConvGeom {
                c_in,
                c_out,
                kh,
                kw,
                pad_h: padding,
                pad_w: padding,
            },
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            let y = x.conv2d(&self.weight, self.geom.pad_h, 1, 1, 1)?;
            return match &self.bias {
                Some(b) => y.broadcast_add(&b.reshape((1, self.geom.c_out, 1, 1))?),
                None => Ok(y),
            };
        }
        let x = x.contiguous()?;
        match &self.bias {
            Some(b) => x.apply_op3(&self.weight, b, ConvBiasFwd(self.geom)),
            None => x.apply_op2(&self.weight, ConvFwd(self.geom)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The gradients of Σ mask·ours and Σ mask·reference for one random mask, so that every
    /// output element weighs differently in both.
    pub(crate) fn weighted_grads(
        ours: &Tensor,
        reference: &Tensor,
    ) -> (
        candle_core::backprop::GradStore,
        candle_core::backprop::GradStore,
    ) {
        let mask = seeded(ours.dims(), 0.0, 1.0, 99);
        let g = |t: &Tensor| (t * &mask).unwrap().sum_all().unwrap().backward().unwrap();
        (g(ours), g(reference))
    }

    /// A CPU tensor of `dims` with values uniform over mean ± std·√3 from a fixed seed, so
    /// the comparison tests are the same on every run.
    pub(crate) fn seeded(dims: &[usize], mean: f32, std: f32, seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n: usize = dims.iter().product();
        let half = std * 3f32.sqrt();
        let v: Vec<f32> = (0..n)
            .map(|_| mean + rng.random_range(-half..half))
            .collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    /// max |a - b| / max |b|.
    pub(crate) fn rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let s = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        d / s.max(1e-12)
    }

    /// Ours against candle's conv2d: output and the gradients of input, weight and bias.
    fn check(
        b: usize,
        c_in: usize,
        c_out: usize,
        (kh, kw): (usize, usize),
        pad: usize,
        (h, w): (usize, usize),
    ) {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (b, c_in, h, w), &dev).unwrap();
        let wt = Var::randn(0f32, 0.3, (c_out, c_in, kh, kw), &dev).unwrap();
        let bias = Var::randn(0f32, 0.3, c_out, &dev).unwrap();
        let ours = Conv::new(wt.as_tensor().clone(), Some(bias.as_tensor().clone()), pad).unwrap();
        let y = ours.forward(x.as_tensor()).unwrap();
        let reference = x
            .conv2d(&wt, pad, 1, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, c_out, 1, 1)).unwrap())
            .unwrap();
        let what = format!("b{b} {c_in}->{c_out} k{kh}x{kw} pad{pad} {h}x{w}");
        assert!(
            rel(&y, &reference) < 1e-5,
            "{what}: forward {}",
            rel(&y, &reference)
        );
        // A loss that weighs every output differently, so every gradient entry matters.
        let (g1, g2) = weighted_grads(&y, &reference);
        for (name, v) in [("input", &x), ("weight", &wt), ("bias", &bias)] {
            let (a, r) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(rel(a, r) < 1e-5, "{what}: {name} gradient {}", rel(a, r));
        }
    }

    #[test]
    fn equals_candle_conv2d_and_its_gradients_for_every_layer_shape_in_use() {
        check(3, 1, 32, (10, 3), 0, (40, 160)); // paper 1 CNN, first layer
        check(2, 32, 32, (3, 3), 0, (15, 79)); // paper 1 CNN, later layers
        check(3, 1, 24, (3, 3), 1, (64, 188)); // emocnn block 0
        check(2, 24, 48, (3, 3), 1, (32, 94)); // emocnn block 1
        check(2, 96, 96, (3, 3), 1, (8, 23)); // emocnn block 3
        check(2, 64, 128, (3, 3), 1, (8, 11)); // FSER
        check(5, 3, 4, (3, 3), 1, (3, 3)); // more samples than threads, odd sizes
        check(1, 2, 3, (2, 5), 0, (4, 5));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 2, 5, 6), &dev).unwrap();
        let wt = Var::randn(0f32, 0.5, (3, 2, 3, 3), &dev).unwrap();
        let mask = Tensor::randn(0f32, 1.0, (2, 3, 5, 6), &dev).unwrap();
        let loss = |x: &Tensor, w: &Tensor| -> f64 {
            let c = Conv::new(w.clone(), None, 1).unwrap();
            let y = c.forward(x).unwrap();
            (y * &mask)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_dtype(candle_core::DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let c = Conv::new(wt.as_tensor().clone(), None, 1).unwrap();
        let g = (c.forward(x.as_tensor()).unwrap() * &mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (v, bump_weight) in [(&x, false), (&wt, true)] {
            let grad: Vec<f32> = g.get(v).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            for idx in [0, 7, base.len() / 2, base.len() - 1] {
                let eps = 1e-2f32;
                let bump = |d: f32| {
                    let mut p = base.clone();
                    p[idx] += d;
                    Tensor::from_vec(p, v.shape(), &dev).unwrap()
                };
                let (lp, lm) = if bump_weight {
                    (loss(&x, &bump(eps)), loss(&x, &bump(-eps)))
                } else {
                    (loss(&bump(eps), &wt), loss(&bump(-eps), &wt))
                };
                let fd = (lp - lm) / (2.0 * eps as f64);
                assert!(
                    (fd - grad[idx] as f64).abs() < 1e-2 * (1.0 + fd.abs()),
                    "index {idx}: finite difference {fd}, gradient {}",
                    grad[idx]
                );
            }
        }
    }
}
