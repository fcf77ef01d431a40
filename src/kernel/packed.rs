//! A right operand packed once for many products: the LSTM's recurrent matrix is the same
//! for every frame of a step, but a general gemm repacks it inside each of the 160 products
//! a step makes (forward and backward). [`PackedRhs`] lays it out once in panels of 32
//! columns, `k` rows each, and multiplies any left operand by it with an AVX-512 kernel
//! (12 rows x 32 columns of accumulators, added straight into the output), the panels split
//! over rayon's threads. The left operand is copied into the order the kernel reads it (a
//! large one in blocks of [`MC`] rows by [`KC`] of the inner dimension; a transposed one
//! costs no more),
//! which makes [`matmul`] a general product too: the LSTM's input projection and its weight
//! gradients use it (gemm's own AVX-512 kernels cannot be enabled for them alone, and
//! slowed the encoder's small products when enabled for all). Built only where the CPU has
//! AVX-512 ([`PackedRhs::available`]); elsewhere the LSTM keeps gemm.

use rayon::prelude::*;

/// Columns of one panel (two 16-lane registers).
const PANEL: usize = 32;
/// Rows of the left operand one kernel call accumulates.
const ROWS: usize = 12;
/// Rows of the left operand packed into one block (120 x 1024 values: 480 KB, in L2
/// across every panel); a left operand of at most this many rows is packed whole.
const MC: usize = 120;
/// Depth of one block: a panel's slice of `KC` rows is 128 KB, in L2 across a block's row
/// tiles and read into L1 ahead of the kernel ([`PREFETCH`]). Measured on the LSTM's
/// products on one core (AVX-512, 2 MB of L2; `packed_speed_on_the_lstm_shapes`): 120 x
/// 1024 read 143-156 GFLOP/s where 256 x 256 read 129-130 (fewer passes over the output).
const KC: usize = 1024;
/// How many rows of a panel ahead the kernel asks for (16: 2 KB, 149 GFLOP/s on the
/// recurrent product where none read 114-127 and 8 rows 132).
const PREFETCH: usize = 16;

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
// SAFETY: the threads write disjoint parts of the output (one panel's columns each, or one
// row block's rows each), and the output outlives the parallel loop that uses the pointer.
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
                if rs == 1 {
                    // A transposed operand: each column is contiguous. Sixteen rows at a
                    // time, a cache line of each column into a small buffer, then written
                    // out row by row, so the reads and the writes stay in L1.
                    let mut buf = [[0f32; 16]; PANEL];
                    for r0 in (0..k).step_by(16) {
                        let h = 16.min(k - r0);
                        for (j, col) in buf.iter_mut().enumerate().take(width) {
                            col[..h].copy_from_slice(&b[(c0 + j) * cs + r0..][..h]);
                        }
                        for (r, row) in panel[r0 * PANEL..(r0 + h) * PANEL]
                            .chunks_exact_mut(PANEL)
                            .enumerate()
                        {
                            for (j, v) in row.iter_mut().enumerate().take(width) {
                                *v = buf[j][r];
                            }
                        }
                    }
                } else if cs == 1 {
                    // Rows contiguous (a convolution's columns, its output gradient): each
                    // panel row is one copy.
                    for r in 0..k {
                        panel[r * PANEL..r * PANEL + width]
                            .copy_from_slice(&b[r * rs + c0..r * rs + c0 + width]);
                    }
                } else {
                    for r in 0..k {
                        let row = &mut panel[r * PANEL..r * PANEL + width];
                        for (j, v) in row.iter_mut().enumerate() {
                            *v = b[r * rs + (c0 + j) * cs];
                        }
                    }
                }
            });
        Self { k, n, panels }
    }

    /// `C (m x n, row-major) (+)= A (m x k, rows `a_rs` apart) . B`: added to `c` when
    /// `accumulate`, written over it otherwise.
    pub fn mul(&self, a: &[f32], m: usize, a_rs: usize, c: &mut [f32], accumulate: bool) {
        self.mul_strided(a, m, (a_rs, 1), c, accumulate)
    }

    /// As [`PackedRhs::mul`], `A` given by strides: `A[r][kk] = a[r * rs + kk * cs]` (a
    /// transposed operand has `cs` > 1). The product runs in blocks of about [`KC`] of the
    /// inner dimension ([`depth_block`]) and [`MC`] rows: each block of `A` is packed once
    /// ([`pack_left`]; it stays in L2 across every panel), and each panel's slice of the
    /// block's depth stays in L2 across the block's row tiles, so a large `A` is not
    /// streamed from memory once per panel. The threads split the panels, or the row
    /// blocks where the panels are few.
    pub fn mul_strided(
        &self,
        a: &[f32],
        m: usize,
        (a_rs, a_cs): (usize, usize),
        c: &mut [f32],
        accumulate: bool,
    ) {
        let (k, n) = (self.k, self.n);
        assert!(c.len() >= m * n, "packed product: output too short");
        assert!(
            m == 0 || k == 0 || (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
            "packed product: left operand too short"
        );
        assert!(Self::available(), "packed product without AVX-512");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                c[..m * n].fill(0.0);
            }
            return;
        }
        if m <= MC {
            let out = Out(c.as_mut_ptr());
            // A few rows (the LSTM's batch, every frame): packed whole, once, and one
            // parallel pass over the panels, each over the whole inner dimension in one
            // kernel call a row tile (its slice read ahead from L2), so the threads meet
            // once a product and each output tile is written once.
            let mut packed = vec![0f32; m * k];
            pack_left(a, (a_rs, a_cs), (0, m), (0, k), &mut packed);
            let packed = &*packed;
            (0..n.div_ceil(PANEL)).into_par_iter().for_each(|p| {
                self.panel_pass(packed, m, (p, 0, k), out, accumulate);
            });
            return;
        }
        // By rows where the panels are too few to keep the threads busy and the row blocks
        // are more (the input gradient of a layer of 40 inputs: 2 panels, 43 row blocks).
        let panels = n.div_ceil(PANEL);
        let by_rows = panels < 4 * rayon::current_num_threads() && m.div_ceil(MC) > panels;
        self.blocked(a, m, (a_rs, a_cs), c, accumulate, by_rows);
    }

    /// The product of [`PackedRhs::mul_strided`] for more than [`MC`] rows, in blocks;
    /// the threads split the panels of each block or, with `by_rows`, the row blocks.
    fn blocked(
        &self,
        a: &[f32],
        m: usize,
        (a_rs, a_cs): (usize, usize),
        c: &mut [f32],
        accumulate: bool,
        by_rows: bool,
    ) {
        let (k, n) = (self.k, self.n);
        assert!(c.len() >= m * n, "packed product: output too short");
        let out = Out(c.as_mut_ptr());
        let kc_max = depth_block(k);
        let panels = n.div_ceil(PANEL);
        if by_rows {
            // Few panels (a narrow output: the input gradient of a layer of few inputs):
            // split over the row blocks instead, so that every thread has work. The row
            // blocks write disjoint rows of the output.
            (0..m.div_ceil(MC)).into_par_iter().for_each(|mb| {
                let (m0, mc) = (mb * MC, MC.min(m - mb * MC));
                let mut block = vec![0f32; mc * kc_max];
                for k0 in (0..k).step_by(kc_max) {
                    let kc = kc_max.min(k - k0);
                    let blk = &mut block[..mc * kc];
                    pack_left(a, (a_rs, a_cs), (m0, mc), (k0, kc), blk);
                    for p in 0..panels {
                        let out = Out(out.at(m0 * n));
                        self.panel_pass(blk, mc, (p, k0, kc), out, accumulate || k0 > 0);
                    }
                }
            });
            return;
        }
        let mut block = vec![0f32; MC.min(m) * kc_max];
        for k0 in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - k0);
            // Every block after the first adds to what the first wrote.
            let add = accumulate || k0 > 0;
            for m0 in (0..m).step_by(MC) {
                let mc = MC.min(m - m0);
                let blk = &mut block[..mc * kc];
                pack_left(a, (a_rs, a_cs), (m0, mc), (k0, kc), blk);
                let blk = &*blk;
                (0..panels).into_par_iter().for_each(|p| {
                    // The block's rows are m0.. of the output.
                    let out = Out(out.at(m0 * n));
                    self.panel_pass(blk, mc, (p, k0, kc), out, add);
                });
            }
        }
    }

    /// Rows `0..m` of `A`, packed by [`pack_left`] `kc` deep, times rows `k0..k0+kc` of
    /// panel `p`, into the panel's columns of `out` (rows `n` apart), added to it when
    /// `add`: the row tiles of one panel slice, which stays in L2 across them and is read
    /// ahead into L1 by the kernel.
    fn panel_pass(
        &self,
        a: &[f32],
        m: usize,
        (p, k0, kc): (usize, usize, usize),
        out: Out,
        add: bool,
    ) {
        let (k, n) = (self.k, self.n);
        let at = p * k * PANEL;
        let panel = &self.panels[at + k0 * PANEL..at + (k0 + kc) * PANEL];
        let c0 = p * PANEL;
        let width = PANEL.min(n - c0);
        let mut i = 0;
        while i < m {
            let rows = ROWS.min(m - i);
            let dst = Tile {
                c: out.at(i * n + c0),
                ldc: n,
                width,
                add,
            };
            // This tile's values: `rows` a depth, kc depths.
            let tile = &a[i * kc..];
            assert!(rows * kc <= tile.len(), "packed product: tile out of A");
            // SAFETY: AVX-512 is checked by every caller; `tile` holds kc depths of `rows`
            // values (asserted), the panel's slice kc x 32; the callers' output holds rows
            // 0..m and columns c0..c0+width <= n, and no other thread writes these rows of
            // these columns (the threads split the panels, or the row blocks).
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            unsafe {
                kernel(tile, rows, kc, panel, dst)
            };
            i += rows;
        }
    }
}

/// The depth of the inner dimension's blocks for an inner dimension `k`: equal blocks of
/// at most [`KC`] plus a quarter, so that no block is a sliver (an LSTM's input weights
/// with the bias as one more column are 1025 deep: blocks of 1024 and 1 made one more
/// pass over the whole output for one depth).
fn depth_block(k: usize) -> usize {
    let blocks = k.div_ceil(KC + KC / 4).max(1);
    k.div_ceil(blocks)
}

/// Rows `m0..m0+mc` and columns `k0..k0+kc` of `A` (`A[r][kk] = a[r * rs + kk * cs]`) into
/// `dst` in the order the kernel reads them: tiles of [`ROWS`] rows (the last may hold
/// fewer), tile `i` from `i * ROWS * kc`, and within a tile its rows' values side by side,
/// depth by depth. The kernel then reads its broadcasts from consecutive addresses; read in
/// place, rows a multiple of 4 KB apart (the LSTM's 1024 and 4096 columns) fall in one set
/// of the L1 cache and evict each other.
fn pack_left(
    a: &[f32],
    (rs, cs): (usize, usize),
    (m0, mc): (usize, usize),
    (k0, kc): (usize, usize),
    dst: &mut [f32],
) {
    dst[..mc * kc]
        .par_chunks_mut(ROWS * kc)
        .enumerate()
        .for_each(|(i, tile)| {
            let r0 = m0 + i * ROWS;
            let rows = tile.len() / kc;
            if cs == 1 {
                // Sixteen depths at a time: a cache line of each row into a small buffer,
                // then written out depth by depth, so neither the reads (rows perhaps 4 KB
                // apart) nor the writes leave L1.
                let mut buf = [[0f32; 16]; ROWS];
                for kk0 in (0..kc).step_by(16) {
                    let w = 16.min(kc - kk0);
                    for (r, b) in buf.iter_mut().enumerate().take(rows) {
                        b[..w].copy_from_slice(&a[(r0 + r) * rs + k0 + kk0..][..w]);
                    }
                    let out = &mut tile[kk0 * rows..(kk0 + w) * rows];
                    for (kk, depth) in out.chunks_exact_mut(rows).enumerate() {
                        for (r, v) in depth.iter_mut().enumerate() {
                            *v = buf[r][kk];
                        }
                    }
                }
            } else if rs == 1 {
                // A transposed operand: a depth's rows are side by side already.
                for (kk, depth) in tile.chunks_exact_mut(rows).enumerate() {
                    let base = r0 + (k0 + kk) * cs;
                    depth.copy_from_slice(&a[base..base + rows]);
                }
            } else {
                for kk in 0..kc {
                    let base = r0 * rs + (k0 + kk) * cs;
                    for r in 0..rows {
                        tile[kk * rows + r] = a[base + r * rs];
                    }
                }
            }
        });
}

/// `C (m x n) (+)= A (m x k) . B (k x n)`, both given by strides as in
/// [`PackedRhs::new`] and [`PackedRhs::mul_strided`]: `B` packed, then the blocked kernel.
/// Only where the CPU has AVX-512 ([`PackedRhs::available`]; it panics elsewhere): the
/// model's `conv::product` falls back to gemm.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dims: (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    let (m, n, k) = dims;
    PackedRhs::new(b, (k, n), b_strides).mul_strided(a, m, a_strides, c, accumulate)
}

/// Where a kernel call's rows go: `width` (at most [`PANEL`]) columns of rows `ldc` apart
/// from `c`, added to what is there or written over it.
struct Tile {
    c: *mut f32,
    ldc: usize,
    width: usize,
    add: bool,
}

/// `C[r][..width] (+)= sum_kk a[kk * rows + r] * panel[kk][..width]` for `rows` (at most
/// [`ROWS`]) rows (`a` a tile of [`pack_left`]), straight into the output (masked past
/// `width`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
unsafe fn kernel(a: &[f32], rows: usize, k: usize, panel: &[f32], dst: Tile) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    if dst.add {
        // The output rows this call adds to, into L2 while the products run (rows a
        // multiple of 4 KB apart miss in L1).
        for r in 0..rows {
            _mm_prefetch::<_MM_HINT_T1>(dst.c.wrapping_add(r * dst.ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(dst.c.wrapping_add(r * dst.ldc + 16) as *const i8);
        }
    }
    let pb = panel.as_ptr();
    let pa = a.as_ptr();
    macro_rules! run {
        ($n:expr) => {
            for kk in 0..k {
                // The panel's rows a few iterations ahead, from L2 into L1.
                _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add((kk + PREFETCH) * PANEL) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(
                    pb.wrapping_add((kk + PREFETCH) * PANEL + 16) as *const i8
                );
                let b0 = _mm512_loadu_ps(pb.add(kk * PANEL));
                let b1 = _mm512_loadu_ps(pb.add(kk * PANEL + 16));
                for r in 0..$n {
                    let x = _mm512_set1_ps(*pa.add(kk * $n + r));
                    acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
                }
            }
        };
    }
    match rows {
        12 => run!(12),
        11 => run!(11),
        10 => run!(10),
        9 => run!(9),
        8 => run!(8),
        7 => run!(7),
        6 => run!(6),
        5 => run!(5),
        4 => run!(4),
        3 => run!(3),
        2 => run!(2),
        _ => run!(1),
    }
    // The columns of each 16-lane half that lie inside the output.
    let mask = |lanes: usize| -> __mmask16 { ((1u32 << lanes.min(16)) - 1) as __mmask16 };
    let masks = [mask(dst.width), mask(dst.width.saturating_sub(16))];
    for (r, acc_r) in acc.iter().enumerate().take(rows) {
        for (h, (&m, &v)) in masks.iter().zip(acc_r).enumerate() {
            if m == 0 {
                continue;
            }
            let p = dst.c.add(r * dst.ldc + 16 * h);
            let v = match dst.add {
                true => _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), v),
                false => v,
            };
            _mm512_mask_storeu_ps(p, m, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` test values `((i * step) % modulus - modulus / 2) / 10`: small, signed, varied.
    fn ramp(n: usize, step: usize, modulus: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * step % modulus) as f32 - (modulus / 2) as f32) * 0.1)
            .collect()
    }

    #[test]
    fn a_packed_product_equals_the_plain_one() {
        if !PackedRhs::available() {
            eprintln!("skipped: no AVX-512 on this CPU (the LSTM uses gemm here)");
            return;
        }
        let (m, k, n) = (13, KC + 37, 70);
        let a = ramp(m * k, 7, 11);
        // B read transposed from a row-major n x k matrix, as the LSTM reads W_hh.
        let w = ramp(n * k, 5, 13);
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

    /// Past one block in both the rows and the inner dimension (so the blocks add up), a
    /// transposed left operand, written over and added to.
    #[test]
    fn a_blocked_product_of_a_transposed_operand_equals_the_plain_one() {
        if !PackedRhs::available() {
            eprintln!("skipped: no AVX-512 on this CPU (the LSTM uses gemm here)");
            return;
        }
        let (m, k, n) = (MC + 45, 2 * KC + 37, 70);
        // A (m x k) stored transposed: A[r][kk] = at[kk * m + r].
        let at = ramp(m * k, 7, 11);
        let b = ramp(k * n, 5, 13);
        let want = |i: usize, j: usize| -> f64 {
            (0..k)
                .map(|kk| at[kk * m + i] as f64 * b[kk * n + j] as f64)
                .sum()
        };
        let packed = PackedRhs::new(&b, (k, n), (n, 1));
        // The threads split the panels of each block, or the row blocks.
        // Elements (i, j) of `c` against the plain product plus `start`.
        let check = |c: &[f32], points: &[(usize, usize)], start: f64, by_rows: bool| {
            for &(i, j) in points {
                let w = start + want(i, j);
                assert!(
                    (c[i * n + j] as f64 - w).abs() < 1e-3,
                    "by rows {by_rows} ({i}, {j}): {} vs {w}",
                    c[i * n + j]
                );
            }
        };
        for by_rows in [false, true] {
            let mut c = vec![1f32; m * n];
            packed.blocked(&at, m, (1, m), &mut c, true, by_rows);
            let points = [
                (0, 0),
                (1, 69),
                (MC - 1, 31),
                (MC, 32),
                (m - 1, n - 1),
                (97, 40),
            ];
            check(&c, &points, 1.0, by_rows);
            packed.blocked(&at, m, (1, m), &mut c, false, by_rows);
            check(&c, &[(0, 0), (MC, 32), (m - 1, n - 1)], 0.0, by_rows);
        }
        // And through the public product (a narrow output: by rows).
        let mut c = vec![0f32; m * n];
        matmul((m, n, k), &mut c, false, &at, (1, m), &b, (n, 1));
        assert!((c[(m - 1) * n + n - 1] as f64 - want(m - 1, n - 1)).abs() < 1e-3);
    }

    /// The inner dimension in equal blocks of at most KC plus a quarter: none a sliver.
    #[test]
    fn depth_blocks_are_even_and_bounded() {
        for k in [
            1,
            37,
            KC,
            KC + 1,
            KC + KC / 4,
            KC + KC / 4 + 1,
            4096,
            5088,
            5120,
        ] {
            let kc = depth_block(k);
            let blocks = k.div_ceil(kc);
            assert!(kc <= KC + KC / 4, "k {k}: block {kc}");
            // The last block is at least the others' size less one per block.
            assert!(
                k - (blocks - 1) * kc + blocks >= kc,
                "k {k}: block {kc}, {blocks} blocks"
            );
        }
        assert_eq!(
            depth_block(KC + 1),
            KC + 1,
            "the LSTM's input weights and bias: one block"
        );
    }
}

/// The kernel's speed on the shapes of paper 1's LSTM step (a frame's recurrent product,
/// the recurrent weight gradient from a transposed operand, the input projection), printed
/// for docs/performance.md; run by hand (`cargo test --release --lib packed_speed --
/// --ignored --nocapture`). Every output element is also checked: the inputs are powers of
/// two, so each sum is exact.
#[cfg(test)]
mod speed {
    use super::*;
    #[test]
    #[ignore]
    fn packed_speed_on_the_lstm_shapes() {
        if !PackedRhs::available() {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        for (m, k, n, reps, transposed) in [
            (32usize, 1024usize, 4096usize, 160usize, false),
            (32, 4096, 1024, 160, false),
            (12, 256, 1024, 20000, false),
            (24, 256, 1024, 10000, false),
            (4096, 5088, 1024, 1, true),
            (5120, 1024, 4096, 1, false),
        ] {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut c = vec![0f32; m * n];
            let p = PackedRhs::new(&b, (k, n), (n, 1));
            let strides = if transposed { (1, m) } else { (k, 1) };
            p.mul_strided(&a, m, strides, &mut c, false);
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                p.mul_strided(&a, m, strides, &mut c, true);
            }
            let s = t0.elapsed().as_secs_f64();
            let want = 0.125 * k as f32 * (reps + 1) as f32;
            assert!(
                c.iter().all(|&v| v == want),
                "m {m} k {k} n {n}: not {want}"
            );
            eprintln!(
                "m {m} k {k} n {n}: {s:.3} s, {:.1} GFLOP/s",
                2.0 * (m * k * n * reps) as f64 / s / 1e9
            );
        }
    }
}
