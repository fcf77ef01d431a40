//! A right operand packed once for many products: the LSTM's recurrent matrix is the same
//! for every frame of a step, but a general gemm repacks it inside each of the 160 products
//! a step makes (forward and backward). [`PackedRhs`] lays it out once in panels of 32
//! columns, `k` rows each, and multiplies any left operand by it with an AVX-512 kernel
//! (8 rows x 32 columns of accumulators), the panels split over rayon's threads. Built only
//! where the CPU has AVX-512 ([`PackedRhs::available`]); elsewhere the LSTM keeps gemm.

use rayon::prelude::*;

/// Columns of one panel (two 16-lane registers).
const PANEL: usize = 32;
/// Rows of the left operand one kernel call accumulates.
const ROWS: usize = 8;

/// `B` (`k x n`) in panels: panel `p` holds columns `32 p .. 32 p + 32` (zero past `n`),
/// row by row, 32 values a row.
pub struct PackedRhs {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

/// The output pointer shared by the threads, each writing its own columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the threads write disjoint column ranges of the output (one panel each), and the
// output outlives the parallel loop that uses the pointer.
impl Out {
    /// The pointer `offset` values in (a method, so a closure captures the whole `Out`).
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

#[allow(unsafe_code)]
unsafe impl Send for Out {}
#[allow(unsafe_code)]
unsafe impl Sync for Out {}

impl PackedRhs {
    /// Whether this CPU runs the packed kernel.
    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Packs `B` given by strides: `B[r][c] = b[r * rs + c * cs]`, `k x n`.
    pub fn new(b: &[f32], (k, n): (usize, usize), (rs, cs): (usize, usize)) -> Self {
        assert!(
            k == 0 || n == 0 || (k - 1) * rs + (n - 1) * cs < b.len(),
            "packed operand: too short"
        );
        let n_panels = n.div_ceil(PANEL);
        let mut panels = vec![0f32; n_panels * k * PANEL];
        panels
            .par_chunks_mut(k * PANEL)
            .enumerate()
            .for_each(|(p, panel)| {
                let c0 = p * PANEL;
                let width = PANEL.min(n - c0);
                for r in 0..k {
                    let row = &mut panel[r * PANEL..r * PANEL + width];
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = b[r * rs + (c0 + j) * cs];
                    }
                }
            });
        Self { k, n, panels }
    }

    /// `C (m x n, row-major) (+)= A (m x k, rows `a_rs` apart) . B`: added to `c` when
    /// `accumulate`, written over it otherwise.
    pub fn mul(&self, a: &[f32], m: usize, a_rs: usize, c: &mut [f32], accumulate: bool) {
        let (k, n) = (self.k, self.n);
        assert!(c.len() >= m * n, "packed product: output too short");
        assert!(
            m == 0 || k == 0 || (m - 1) * a_rs + k <= a.len(),
            "packed product: left operand too short"
        );
        assert!(Self::available(), "packed product without AVX-512");
        let out = Out(c.as_mut_ptr());
        (0..n.div_ceil(PANEL)).into_par_iter().for_each(|p| {
            let panel = &self.panels[p * k * PANEL..(p + 1) * k * PANEL];
            let c0 = p * PANEL;
            let width = PANEL.min(n - c0);
            let mut i = 0;
            while i < m {
                let rows = ROWS.min(m - i);
                let mut tile = [[0f32; PANEL]; ROWS];
                // SAFETY: AVX-512 was checked above; `a` holds rows i..i+rows of k values
                // (asserted), the panel k x 32.
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                unsafe {
                    kernel(&a[i * a_rs..], a_rs, rows, k, panel, &mut tile)
                };
                for (r, t) in tile.iter().take(rows).enumerate() {
                    // SAFETY: row i + r < m and columns c0..c0+width < n lie inside `c`
                    // (asserted); no other thread writes these columns.
                    #[allow(unsafe_code)]
                    let dst =
                        unsafe { std::slice::from_raw_parts_mut(out.at((i + r) * n + c0), width) };
                    if accumulate {
                        dst.iter_mut().zip(t).for_each(|(d, v)| *d += v);
                    } else {
                        dst.copy_from_slice(&t[..width]);
                    }
                }
                i += rows;
            }
        });
    }
}

/// `tile[r] = sum_kk a[r * a_rs + kk] * panel[kk][..]` for `rows` (at most [`ROWS`]) rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
unsafe fn kernel(
    a: &[f32],
    a_rs: usize,
    rows: usize,
    k: usize,
    panel: &[f32],
    tile: &mut [[f32; PANEL]; ROWS],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let pb = panel.as_ptr();
    let pa = a.as_ptr();
    macro_rules! run {
        ($n:expr) => {
            for kk in 0..k {
                let b0 = _mm512_loadu_ps(pb.add(kk * PANEL));
                let b1 = _mm512_loadu_ps(pb.add(kk * PANEL + 16));
                for r in 0..$n {
                    let x = _mm512_set1_ps(*pa.add(r * a_rs + kk));
                    acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
                }
            }
        };
    }
    match rows {
        8 => run!(8),
        7 => run!(7),
        6 => run!(6),
        5 => run!(5),
        4 => run!(4),
        3 => run!(3),
        2 => run!(2),
        _ => run!(1),
    }
    for r in 0..rows {
        _mm512_storeu_ps(tile[r].as_mut_ptr(), acc[r][0]);
        _mm512_storeu_ps(tile[r].as_mut_ptr().add(16), acc[r][1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_product_equals_the_plain_one() {
        if !PackedRhs::available() {
            eprintln!("skipped: no AVX-512 on this CPU (the LSTM uses gemm here)");
            return;
        }
        let (m, k, n) = (13, 37, 70);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        // B read transposed from a row-major n x k matrix, as the LSTM reads W_hh.
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
            .collect();
        let packed = PackedRhs::new(&w, (k, n), (1, k));
        let mut c = vec![1f32; m * n];
        packed.mul(&a, m, k, &mut c, true);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|kk| a[i * k + kk] * w[j * k + kk]).sum::<f32>();
                assert!(
                    (c[i * n + j] - want).abs() < 1e-4,
                    "({i}, {j}): {} vs {want}",
                    c[i * n + j]
                );
            }
        }
        packed.mul(&a, m, k, &mut c, false);
        let want: f32 = (0..k).map(|kk| a[kk] * w[kk]).sum();
        assert!((c[0] - want).abs() < 1e-4);
    }
}
