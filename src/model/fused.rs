//! emocnn's block after its convolution, batch norm (batch statistics) → ReLU → average
//! pooling, as one CPU operation while training, forward and backward.
//!
//! Composed from candle's ops, the same block made a dozen full-size temporaries per step
//! (transposes, broadcasts, their gradients); on the first block's 32 x 24 x 64 x 188 maps
//! that was most of an epoch after the convolutions were fixed. Here the forward pass reads
//! the input twice (channel statistics, then the pooled output) and the backward pass reads
//! it twice more, writing nothing but the results. Inference and CUDA keep candle's
//! `BatchNorm` (running statistics), so trained weights load and run as before.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::{data, dims4, with_values, zeroed};

/// Per-channel statistics of the last forward pass: mean and 1/sqrt(var + eps), biased var.
#[derive(Debug, Default, Clone)]
struct Stats {
    mean: Vec<f64>,
    var: Vec<f64>,
    inv: Vec<f64>,
}

/// `avg_pool(relu(batch_norm(x)))` with batch statistics; inputs `(x, gamma, beta)`.
struct BnReluPool {
    pool: (usize, usize),
    eps: f64,
    /// Filled by the forward pass; shared with the caller, who updates the running statistics.
    stats: Arc<Mutex<Stats>>,
}

/// `out` (ho x wo) = average pooling of act(ac·x + bc) over one plane `p` (h x w, row
/// width `w`), act(z) = z for z > 0 and slope·z otherwise (slope 0: ReLU). Rows and columns
/// past the last whole pool are left out, as candle's avg_pool2d does.
fn act_pool_plane(
    p: &[f32],
    w: usize,
    (ph, pw): (usize, usize),
    (ac, bc, slope): (f32, f32, f32),
    out: &mut [f32],
    row: &mut [f32],
) {
    let wo = row.len() / pw;
    let scale = 1.0 / (ph * pw) as f32;
    for (i, acc) in out.chunks_mut(wo).enumerate() {
        acc.fill(0.0);
        for di in 0..ph {
            let r = &p[(i * ph + di) * w..(i * ph + di) * w + wo * pw];
            for (o, &v) in row.iter_mut().zip(r) {
                let z = ac * v + bc;
                *o = if z > 0.0 { z } else { slope * z };
            }
            for (o, win) in acc.iter_mut().zip(row.chunks_exact(pw)) {
                *o += win.iter().sum::<f32>();
            }
        }
        for o in acc.iter_mut() {
            *o *= scale;
        }
    }
}

/// dL/dz over one plane (z = ac·x + bc) into `dz`: the pooled gradient `dyp` (ho x wo)
/// spread over its windows, times act'(z); zero past the last whole pool.
fn act_pool_grad_plane(
    p: &[f32],
    dyp: &[f32],
    w: usize,
    (ph, pw): (usize, usize),
    (ac, bc, slope): (f32, f32, f32),
    dz: &mut [f32],
    spread: &mut [f32],
) {
    let wo = spread.len() / pw;
    let ho = dyp.len() / wo.max(1);
    let scale = 1.0 / (ph * pw) as f32;
    dz.fill(0.0);
    for ip in 0..ho {
        for (s, &g) in spread
            .chunks_exact_mut(pw)
            .zip(&dyp[ip * wo..(ip + 1) * wo])
        {
            s.fill(g * scale);
        }
        for di in 0..ph {
            let i = ip * ph + di;
            let (xr, dr) = (&p[i * w..i * w + wo * pw], &mut dz[i * w..i * w + wo * pw]);
            for ((d, &xval), &g) in dr.iter_mut().zip(xr).zip(spread.iter()) {
                *d = if ac * xval + bc > 0.0 { g } else { slope * g };
            }
        }
    }
}

/// `avg_pool(act(a_c·x + b_c))` over every plane of a contiguous `(b, c, h, w)` input: the
/// forward pass of both fused ops.
fn act_pool_forward(
    x: &[f32],
    (b, c, h, w): (usize, usize, usize, usize),
    (ph, pw): (usize, usize),
    (a, bb, slope): (&[f32], &[f32], f32),
) -> Result<(CpuStorage, Shape)> {
    let (ho, wo) = (h / ph, w / pw);
    if ho == 0 || wo == 0 {
        candle_core::bail!("act-pool: {h}x{w} is smaller than the {ph}x{pw} pool");
    }
    if a.len() != c || bb.len() != c {
        candle_core::bail!("act-pool: {c} channels but {} coefficients", a.len());
    }
    let plane = h * w;
    let mut y = vec![0f32; b * c * ho * wo];
    y.par_chunks_mut(ho * wo).enumerate().for_each(|(k, out)| {
        let ch = k % c;
        let mut row = vec![0f32; wo * pw];
        let p = &x[k * plane..(k + 1) * plane];
        act_pool_plane(p, w, (ph, pw), (a[ch], bb[ch], slope), out, &mut row);
    });
    Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
}

impl BnReluPool {
    /// Scale and shift per channel: z = a_c x + b_c is the batch-normalised, affine input.
    fn affine(&self, gamma: &[f32], beta: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let st = self.stats.lock().expect("stats lock");
        let a: Vec<f32> = (0..gamma.len())
            .map(|c| (gamma[c] as f64 * st.inv[c]) as f32)
            .collect();
        let b: Vec<f32> = (0..gamma.len())
            .map(|c| (beta[c] as f64 - st.mean[c] * gamma[c] as f64 * st.inv[c]) as f32)
            .collect();
        (a, b)
    }
}

impl CustomOp3 for BnReluPool {
    fn name(&self) -> &'static str {
        "emoscope-bn-relu-avgpool"
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
        let (b, c, h, w) = dims4(l1, "input")?;
        let (x, gamma, beta) = (
            data(s1, l1, "input")?,
            data(s2, l2, "weight")?,
            data(s3, l3, "bias")?,
        );
        if gamma.len() != c || beta.len() != c {
            candle_core::bail!("bn-relu-pool: {c} channels but {} weights", gamma.len());
        }
        let plane = h * w;
        let n = (b * plane) as f64;
        // Channel statistics in f64 (sums over up to a few hundred thousand values).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut s, mut q) = (0f64, 0f64);
                for bi in 0..b {
                    let p = &x[(bi * c + ch) * plane..(bi * c + ch + 1) * plane];
                    let (ps, pq) = p.iter().fold((0f32, 0f32), |(s, q), &v| (s + v, q + v * v));
                    s += ps as f64;
                    q += pq as f64;
                }
                (s, q)
            })
            .collect();
        {
            let mut st = self.stats.lock().expect("stats lock");
            st.mean = sums.iter().map(|&(s, _)| s / n).collect();
            st.var = sums
                .iter()
                .map(|&(s, q)| (q / n - (s / n) * (s / n)).max(0.0))
                .collect();
            st.inv = st.var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        }
        let (a, bb) = self.affine(gamma, beta);
        act_pool_forward(x, (b, c, h, w), self.pool, (&a, &bb, 0.0))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let (ph, pw) = self.pool;
        let (ho, wo) = (h / ph, w / pw);
        let plane = h * w;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let dyv = dy.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g: Vec<f32> = gamma.to_vec1()?;
        let bt: Vec<f32> = beta.to_vec1()?;
        let (a, bb) = self.affine(&g, &bt);
        let (mean, inv) = {
            let st = self.stats.lock().expect("stats lock");
            (st.mean.clone(), st.inv.clone())
        };
        // dL/dz over plane k (batch bi, channel ch).
        let fill_dz = |k: usize, dz: &mut [f32], spread: &mut [f32]| {
            let ch = k % c;
            act_pool_grad_plane(
                &xv[k * plane..(k + 1) * plane],
                &dyv[k * ho * wo..(k + 1) * ho * wo],
                w,
                (ph, pw),
                (a[ch], bb[ch], 0.0),
                dz,
                spread,
            );
        };
        // Per channel: Σ dz (the bias gradient) and Σ dz·x̂ (the weight gradient).
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let (mut dz, mut spread) = (vec![0f32; plane], vec![0f32; wo * pw]);
                let (m, iv) = (mean[ch] as f32, inv[ch] as f32);
                let (mut sg, mut sgx) = (0f64, 0f64);
                for bi in 0..b {
                    let k = bi * c + ch;
                    fill_dz(k, &mut dz, &mut spread);
                    let xp = &xv[k * plane..(k + 1) * plane];
                    let (s1, s2) = dz
                        .iter()
                        .zip(xp)
                        .fold((0f32, 0f32), |(s1, s2), (&d, &xval)| {
                            (s1 + d, s2 + d * ((xval - m) * iv))
                        });
                    sg += s1 as f64;
                    sgx += s2 as f64;
                }
                (sg, sgx)
            })
            .collect();
        let n = (b * plane) as f64;
        let mut dx = vec![0f32; b * c * plane];
        dx.par_chunks_mut(plane).enumerate().for_each(|(k, out)| {
            let ch = k % c;
            let (mg, mgx) = ((sums[ch].0 / n) as f32, (sums[ch].1 / n) as f32);
            let gi = (g[ch] as f64 * inv[ch]) as f32;
            let (m, iv) = (mean[ch] as f32, inv[ch] as f32);
            let mut spread = vec![0f32; wo * pw];
            fill_dz(k, out, &mut spread);
            let xp = &xv[k * plane..(k + 1) * plane];
            for (o, &xval) in out.iter_mut().zip(xp) {
                *o = gi * (*o - mg - (xval - m) * iv * mgx);
            }
        });
        let dev = x.device();
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        Ok((
            Some(Tensor::from_vec(dx, (b, c, h, w), dev)?),
            Some(Tensor::from_vec(dgamma, c, dev)?),
            Some(Tensor::from_vec(dbeta, c, dev)?),
        ))
    }
}

/// Training-mode `avg_pool(relu(bn(x)))` on the CPU; updates `bn`'s running statistics as
/// candle's `BatchNorm::forward_train` does (momentum 0.1, unbiased running variance).
pub fn bn_relu_pool_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running: (&candle_core::Var, &candle_core::Var),
    pool: (usize, usize),
    eps: f64,
) -> Result<Tensor> {
    const MOMENTUM: f64 = 0.1;
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BnReluPool {
        pool,
        eps,
        stats: stats.clone(),
    };
    let y = x.contiguous()?.apply_op3(gamma, beta, op)?;
    let (b, _, h, w) = x.dims4()?;
    let n = (b * h * w) as f64;
    let st = stats.lock().expect("stats lock").clone();
    let c = st.mean.len();
    let dev = x.device();
    let mean = Tensor::from_vec(
        st.mean.iter().map(|&m| m as f32).collect::<Vec<_>>(),
        c,
        dev,
    )?;
    let var = Tensor::from_vec(
        st.var
            .iter()
            .map(|&v| (v * n / (n - 1.0).max(1.0)) as f32)
            .collect::<Vec<_>>(),
        c,
        dev,
    )?;
    let (rm, rv) = running;
    rm.set(&((rm.as_tensor() * (1.0 - MOMENTUM))? + (mean * MOMENTUM)?)?)?;
    rv.set(&((rv.as_tensor() * (1.0 - MOMENTUM))? + (var * MOMENTUM)?)?)?;
    Ok(y)
}

/// `avg_pool(act(a_c·x + b_c))` for a fixed per-channel affine (none: identity), act =
/// ReLU (slope 0) or leaky ReLU: paper 1's LeakyReLU + pooling in training, and emocnn's
/// batch norm with running statistics + ReLU + pooling at inference.
struct ActPool {
    pool: (usize, usize),
    slope: f32,
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

impl ActPool {
    fn coefficients(&self, c: usize) -> (Vec<f32>, Vec<f32>) {
        self.affine
            .clone()
            .unwrap_or_else(|| (vec![1.0; c], vec![0.0; c]))
    }
}

impl candle_core::CustomOp1 for ActPool {
    fn name(&self) -> &'static str {
        "emoscope-act-avgpool"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(l1, "input")?;
        let x = data(s1, l1, "input")?;
        let (a, bb) = self.coefficients(c);
        act_pool_forward(x, (b, c, h, w), self.pool, (&a, &bb, self.slope))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = x.dims4()?;
        let (ph, pw) = self.pool;
        let (ho, wo) = (h / ph, w / pw);
        let plane = h * w;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let dyv = dy.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (a, bb) = self.coefficients(c);
        let mut dx = vec![0f32; b * c * plane];
        dx.par_chunks_mut(plane).enumerate().for_each(|(k, out)| {
            let ch = k % c;
            let mut spread = vec![0f32; wo * pw];
            act_pool_grad_plane(
                &xv[k * plane..(k + 1) * plane],
                &dyv[k * ho * wo..(k + 1) * ho * wo],
                w,
                self.pool,
                (a[ch], bb[ch], self.slope),
                out,
                &mut spread,
            );
            if a[ch] != 1.0 {
                for o in out.iter_mut() {
                    *o *= a[ch];
                }
            }
        });
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), x.device())?))
    }
}

/// `avg_pool2d(leaky_relu(x, slope))` with a `pool` window and stride (slope 0: ReLU), one
/// pass forward and one backward on the CPU.
pub fn act_pool(x: &Tensor, pool: (usize, usize), slope: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ActPool {
        pool,
        slope,
        affine: None,
    })
}

/// Inference-mode `avg_pool(relu(bn(x)))` with `bn`'s running statistics, one pass on the
/// CPU (no gradient).
pub fn bn_relu_pool_eval(
    x: &Tensor,
    bn: &candle_nn::BatchNorm,
    pool: (usize, usize),
) -> Result<Tensor> {
    let (gamma, beta) = match bn.weight_and_bias() {
        Some((g, b)) => (g.to_vec1::<f32>()?, b.to_vec1::<f32>()?),
        None => candle_core::bail!("bn-relu-pool: batch norm without weight and bias"),
    };
    let rm: Vec<f32> = bn.running_mean().to_vec1()?;
    let rv: Vec<f32> = bn.running_var().to_vec1()?;
    let a: Vec<f32> = (0..gamma.len())
        .map(|c| (gamma[c] as f64 / (rv[c] as f64 + bn.eps()).sqrt()) as f32)
        .collect();
    let b: Vec<f32> = (0..gamma.len()).map(|c| beta[c] - rm[c] * a[c]).collect();
    x.contiguous()?.apply_op1_no_bwd(&ActPool {
        pool,
        slope: 0.0,
        affine: Some((a, b)),
    })
}

/// `max_pool(relu(x))` with a `pool` window and stride: FSER's block after each
/// convolution. Composed from candle's ops it made three full-size temporaries forward
/// (the ReLU, the pool's copy) and more backward (candle's max-pool gradient compares an
/// upsampled copy of the output with the input); here one pass each way. The gradient goes
/// to the first element of its window that holds the maximum, where that maximum is
/// positive (ReLU's gradient is 0 at 0, as candle's).
struct ReluMaxPool {
    pool: (usize, usize),
}

impl candle_core::CustomOp1 for ReluMaxPool {
    fn name(&self) -> &'static str {
        "emoscope-relu-maxpool"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = dims4(l1, "input")?;
        let x = data(s1, l1, "input")?;
        let (ph, pw) = self.pool;
        let (ho, wo) = (h / ph, w / pw);
        if ho == 0 || wo == 0 {
            candle_core::bail!("relu-maxpool: {h}x{w} is smaller than the {ph}x{pw} pool");
        }
        let plane = h * w;
        let mut y = vec![0f32; b * c * ho * wo];
        y.par_chunks_mut(ho * wo).enumerate().for_each(|(k, out)| {
            let p = &x[k * plane..(k + 1) * plane];
            for (i, o) in out.chunks_exact_mut(wo).enumerate() {
                for row in p[i * ph * w..].chunks(w).take(ph) {
                    for (j, v) in o.iter_mut().enumerate() {
                        for &e in &row[j * pw..(j + 1) * pw] {
                            *v = v.max(e);
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(y), Shape::from((b, c, ho, wo))))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (b, c, h, w) = x.dims4()?;
        let (ph, pw) = self.pool;
        let (ho, wo) = (h / ph, w / pw);
        let plane = h * w;
        let mut dx = zeroed(b * c * plane);
        // Every operand read in place (one `?` for each).
        with_values(x, "input", |xv| {
            with_values(y, "output", |yv| {
                with_values(dy, "output gradient", |dyv| {
                    dx.par_chunks_mut(plane).enumerate().for_each(|(k, out)| {
                        let p = &xv[k * plane..(k + 1) * plane];
                        for i in 0..ho {
                            for j in 0..wo {
                                let at = k * ho * wo + i * wo + j;
                                if yv[at] <= 0.0 {
                                    continue;
                                }
                                let first = (i * ph..(i + 1) * ph)
                                    .flat_map(|r| (j * pw..(j + 1) * pw).map(move |q| r * w + q))
                                    .find(|&e| p[e] == yv[at]);
                                if let Some(e) = first {
                                    out[e] = dyv[at];
                                }
                            }
                        }
                    })
                })
            })
        })???;
        Ok(Some(Tensor::from_vec(dx, (b, c, h, w), x.device())?))
    }
}

/// `max_pool2d(relu(x))` with a `pool` window and stride, one pass forward and one backward
/// on the CPU (rows and columns past the last whole pool are left out, as candle's).
pub fn relu_max_pool(x: &Tensor, pool: (usize, usize)) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ReluMaxPool { pool })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::conv::tests::{rel, seeded, weighted_grads};
    use candle_core::{Device, Var};
    use candle_nn::ModuleT;

    /// Against candle's BatchNorm (training mode) → relu → avg_pool2d: output, gradients
    /// of input, weight and bias, and the running statistics.
    fn check(shape: (usize, usize, usize, usize), pool: (usize, usize)) {
        let dev = Device::Cpu;
        let (b, c, h, w) = shape;
        let x = Var::from_tensor(&seeded(&[b, c, h, w], 0.3, 1.5, 1)).unwrap();
        let vm = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
        let bn = candle_nn::batch_norm(c, 1e-5, vb.pp("bn")).unwrap();
        let gamma = vm.data().lock().unwrap()["bn.weight"].clone();
        let beta = vm.data().lock().unwrap()["bn.bias"].clone();
        gamma.set(&seeded(&[c], 1.0, 0.3, 2)).unwrap();
        beta.set(&seeded(&[c], 0.0, 0.3, 3)).unwrap();
        // The rows and columns past the last whole pool are cut first: candle's avg_pool2d
        // gradient spreads by nearest-neighbour upsampling, which for sizes that are not a
        // multiple of the pool (emocnn's 47 frames in block 2) misplaces it; ours is exact.
        let reference = bn
            .forward_t(x.as_tensor(), true)
            .unwrap()
            .relu()
            .unwrap()
            .narrow(2, 0, h / pool.0 * pool.0)
            .unwrap()
            .narrow(3, 0, w / pool.1 * pool.1)
            .unwrap()
            .avg_pool2d_with_stride(pool, pool)
            .unwrap();
        let (rm, rv) = {
            let d = vm.data().lock().unwrap();
            (d["bn.running_mean"].clone(), d["bn.running_var"].clone())
        };
        let (want_rm, want_rv) = (
            rm.as_tensor().copy().unwrap(),
            rv.as_tensor().copy().unwrap(),
        );
        // Our op from the same starting running statistics.
        rm.set(&Tensor::zeros(c, candle_core::DType::F32, &dev).unwrap())
            .unwrap();
        rv.set(&Tensor::ones(c, candle_core::DType::F32, &dev).unwrap())
            .unwrap();
        let ours =
            bn_relu_pool_train(x.as_tensor(), &gamma, &beta, (&rm, &rv), pool, 1e-5).unwrap();
        let what = format!("{shape:?} pool {pool:?}");
        assert_eq!(ours.dims(), &[b, c, h / pool.0, w / pool.1]);
        assert!(
            rel(&ours, &reference) < 1e-5,
            "{what}: forward {}",
            rel(&ours, &reference)
        );
        assert!(rel(rm.as_tensor(), &want_rm) < 1e-5, "{what}: running mean");
        assert!(rel(rv.as_tensor(), &want_rv) < 1e-5, "{what}: running var");
        let (g1, g2) = weighted_grads(&ours, &reference);
        // Where z lies within rounding of 0, the two computations of the batch statistics
        // (f64 sums here, f32 in candle) can put the ReLU's kink on either side: those few
        // elements' input gradients are left out of the comparison (|z| < 1e-3).
        let z = {
            let mean = |t: &Tensor| {
                t.mean_keepdim(0)
                    .unwrap()
                    .mean_keepdim(2)
                    .unwrap()
                    .mean_keepdim(3)
                    .unwrap()
            };
            let m = mean(x.as_tensor());
            let d = x.broadcast_sub(&m).unwrap();
            let var = mean(&d.sqr().unwrap());
            d.broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap())
                .unwrap()
                .broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap())
                .unwrap()
        };
        let away = z
            .abs()
            .unwrap()
            .ge(1e-3)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        let rel_away = |a: &Tensor, r: &Tensor| -> f32 {
            let (a, r) = if a.dims() == away.dims() {
                ((a * &away).unwrap(), (r * &away).unwrap())
            } else {
                (a.clone(), r.clone())
            };
            rel(&a, &r)
        };
        for (name, v) in [("input", &x), ("weight", &gamma), ("bias", &beta)] {
            let (a, r) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(
                rel_away(a, r) < 1e-4,
                "{what}: {name} gradient {}",
                rel_away(a, r)
            );
        }
    }

    #[test]
    fn leaky_pool_and_inference_batch_norm_equal_candles_composition() {
        let dev = Device::Cpu;
        for (shape, pool) in [
            ((3, 32, 31, 158), (2, 2)),
            ((2, 4, 7, 9), (2, 2)),
            ((2, 3, 6, 5), (2, 1)),
        ] {
            let (_, _, h, w) = shape;
            let x = Var::randn(0f32, 1.0, shape, &dev).unwrap();
            let ours = act_pool(x.as_tensor(), pool, 0.01).unwrap();
            let pos = x.relu().unwrap();
            let leaky = (&pos + ((x.as_tensor() - &pos).unwrap() * 0.01).unwrap()).unwrap();
            let reference = leaky
                .narrow(2, 0, h / pool.0 * pool.0)
                .unwrap()
                .narrow(3, 0, w / pool.1 * pool.1)
                .unwrap()
                .avg_pool2d_with_stride(pool, pool)
                .unwrap();
            assert!(rel(&ours, &reference) < 1e-5, "{shape:?}: forward");
            let (g1, g2) = weighted_grads(&ours, &reference);
            let (a, r) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
            assert!(rel(a, r) < 1e-5, "{shape:?}: gradient {}", rel(a, r));
        }
        // Inference: running statistics, as candle's BatchNorm in eval mode.
        let c = 6;
        let vm = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
        let bn = candle_nn::batch_norm(c, 1e-5, vb.pp("bn")).unwrap();
        for (name, mean, std) in [
            ("bn.weight", 1.0, 0.3),
            ("bn.bias", 0.0, 0.3),
            ("bn.running_mean", 0.2, 0.5),
            ("bn.running_var", 1.5, 0.4),
        ] {
            let v = vm.data().lock().unwrap()[name].clone();
            v.set(
                &Tensor::randn(mean as f32, std, c, &dev)
                    .unwrap()
                    .abs()
                    .unwrap(),
            )
            .unwrap();
        }
        let x = Tensor::randn(0f32, 1.0, (2, c, 8, 23), &dev).unwrap();
        let ours = bn_relu_pool_eval(&x, &bn, (2, 1)).unwrap();
        let reference = bn
            .forward_t(&x, false)
            .unwrap()
            .relu()
            .unwrap()
            .avg_pool2d_with_stride((2, 1), (2, 1))
            .unwrap();
        assert!(rel(&ours, &reference) < 1e-5, "inference batch norm");
    }

    #[test]
    fn equals_candle_batch_norm_relu_avg_pool_and_their_gradients() {
        check((4, 24, 64, 188), (2, 2)); // emocnn block 0
        check((3, 96, 8, 23), (2, 1)); // emocnn block 3
        check((3, 48, 16, 47), (2, 2)); // emocnn block 2: 47 frames, the last one not pooled
        check((2, 5, 7, 9), (2, 2)); // odd sizes: the last row and column are not pooled
    }

    /// By hand: each window's gradient goes whole to its (first) largest element.
    #[test]
    fn relu_max_pool_sends_the_gradient_to_each_windows_maximum() {
        let dev = Device::Cpu;
        #[rustfmt::skip]
        let x = Var::from_vec(vec![
            1.0f32, 3.0, -1.0, -2.0, 9.0,
            2.0, 0.5, -3.0, -0.5, 9.0,
            5.0, 5.0, 0.0, 4.0, 9.0,
        ], (1, 1, 3, 5), &dev).unwrap();
        let y = relu_max_pool(x.as_tensor(), (2, 2)).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [3.0, 0.0]
        );
        let dy = Tensor::new(&[[[[10.0f32, 20.0]]]], &dev).unwrap();
        let g = (y * dy).unwrap().sum_all().unwrap().backward().unwrap();
        #[rustfmt::skip]
        let want = [
            0.0, 10.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let got = g
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn relu_max_pool_equals_candles_relu_and_max_pool_and_their_gradient() {
        let dev = Device::Cpu;
        // FSER's four blocks (64 x 94 in, batch 2), and odd sizes whose last row and column
        // are not pooled.
        for shape in [
            (2, 32, 64, 94),
            (2, 64, 32, 47),
            (2, 128, 16, 23),
            (2, 128, 8, 11),
            (3, 4, 7, 9),
        ] {
            let x = Var::randn(0f32, 1.0, shape, &dev).unwrap();
            let ours = relu_max_pool(x.as_tensor(), (2, 2)).unwrap();
            // The rows and columns past the last whole pool are cut first: candle's gradient
            // spreads by nearest-neighbour upsampling, which misplaces it for odd sizes.
            let (_, _, h, w) = shape;
            let reference = x
                .relu()
                .unwrap()
                .narrow(2, 0, h / 2 * 2)
                .unwrap()
                .narrow(3, 0, w / 2 * 2)
                .unwrap()
                .max_pool2d(2)
                .unwrap();
            assert_eq!(ours.dims(), reference.dims(), "{shape:?}");
            assert_eq!(rel(&ours, &reference), 0.0, "{shape:?}: forward");
            // candle's max-pool gradient (candle-core 0.11, backprop.rs) is the output's
            // times the share of its window that holds the maximum: 1/4 of the true
            // gradient for a 2 x 2 window with one maximum, as random inputs have.
            let (g1, g2) = weighted_grads(&ours, &reference);
            let (a, r) = (g1.get(&x).unwrap(), (g2.get(&x).unwrap() * 4.0).unwrap());
            assert!(rel(a, &r) < 1e-6, "{shape:?}: gradient {}", rel(a, &r));
            // A window whose every element is negative passes no gradient at all.
            let neg = Var::from_tensor(&(x.abs().unwrap().neg().unwrap() - 0.1).unwrap()).unwrap();
            let y = relu_max_pool(neg.as_tensor(), (2, 2)).unwrap();
            assert_eq!(
                y.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap(),
                0.0
            );
            let g = y.sum_all().unwrap().backward().unwrap();
            let gx = g.get(&neg).unwrap().abs().unwrap().sum_all().unwrap();
            assert_eq!(gx.to_scalar::<f32>().unwrap(), 0.0, "{shape:?}");
        }
    }
}
