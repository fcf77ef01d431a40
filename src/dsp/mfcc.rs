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

    pub fn n_out(&self) -> usize {
        self.matrix.len() / self.n_in.max(1)
    }

    /// `out[k] = sum_n m[k][n] * x[n]` for each kept coefficient.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(self.matrix.chunks_exact(self.n_in)) {
            *o = super::dot(row, x);
        }
    }
}
