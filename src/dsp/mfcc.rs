//! Orthonormal DCT-II (scipy `dct(type=2, norm="ortho")`), keeping the first coefficients:
//! MFCCs from dB mel bands.

/// A precomputed DCT-II matrix of `n_out` rows over `n_in` inputs.
#[derive(Debug, Clone)]
pub struct Dct2 {
    n_in: usize,
    matrix: Vec<f32>,
}

impl Dct2 {
    pub fn new(n_in: usize, n_out: usize) -> Self {
        let mut matrix = Vec::with_capacity(n_in * n_out);
        for k in 0..n_out {
            let scale = if k == 0 {
                (1.0 / n_in as f64).sqrt()
            } else {
                (2.0 / n_in as f64).sqrt()
            };
            for n in 0..n_in {
                let c = (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * n_in) as f64)
                    .cos();
                matrix.push((scale * c) as f32);
            }
        }
        Self { n_in, matrix }
    }

    /// Coefficient `k` of one frame's inputs `x`.
    pub fn coefficient(&self, k: usize, x: &[f32]) -> f32 {
        super::dot(&self.matrix[k * self.n_in..(k + 1) * self.n_in], x)
    }

    pub fn n_out(&self) -> usize {
        self.matrix.len() / self.n_in.max(1)
    }

    /// The transform of a tile of [`LANES`](super::LANES) frames laid out input by input
    /// (`x[n * LANES + lane]`) into `out[k * LANES + lane]`.
    #[inline(always)]
    pub fn apply_tile(&self, x: &[f32], out: &mut [f32]) {
        use super::LANES;
        for (o, row) in out
            .chunks_exact_mut(LANES)
            .zip(self.matrix.chunks_exact(self.n_in))
        {
            let mut acc = [0.0f32; LANES];
            for (xn, &m) in x.chunks_exact(LANES).zip(row) {
                for l in 0..LANES {
                    acc[l] += m * xn[l];
                }
            }
            o.copy_from_slice(&acc);
        }
    }
}
