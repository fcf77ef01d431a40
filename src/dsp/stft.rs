//! Short-time Fourier transform: periodic Hann window, `center=True` with zero padding
//! (librosa's `pad_mode="constant"`), power spectrum |X|^2 per frame, via realfft.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use super::LANES;

/// Number of frames librosa's `stft(center=True)` yields for `len` samples.
pub fn n_frames(len: usize, hop_length: usize) -> usize {
    1 + len / hop_length
}

/// A reusable STFT plan: window, FFT plan and scratch buffers for one `n_fft`.
pub struct Stft {
    n_fft: usize,
    hop_length: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    /// Complex FFT of `n_fft` points that transforms two real frames at once.
    pair_fft: Arc<dyn Fft<f32>>,
}

/// Working memory for [`Stft::power_of`] (one frame at a time).
pub struct StftScratch {
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

/// Per-thread working memory for [`Stft::power_tile`] (a tile of frames, in pairs).
pub struct TileScratch {
    pairs: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Stft {
    /// Plans an STFT of size `n_fft` (any length; powers of two are fastest).
    pub fn new(n_fft: usize, hop_length: usize) -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        // scipy.signal.get_window("hann", n_fft, fftbins=True): periodic Hann.
        let window = (0..n_fft)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / n_fft as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        let pair_fft = FftPlanner::<f32>::new().plan_fft_forward(n_fft);
        Self {
            n_fft,
            hop_length,
            window,
            fft,
            pair_fft,
        }
    }

    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    pub fn hop_length(&self) -> usize {
        self.hop_length
    }

    /// Number of frequency bins, `1 + n_fft / 2`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    pub fn scratch(&self) -> StftScratch {
        StftScratch {
            frame: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
        }
    }

    pub fn tile_scratch(&self) -> TileScratch {
        TileScratch {
            pairs: vec![Complex::default(); self.n_fft * LANES / 2],
            scratch: vec![Complex::default(); self.pair_fft.get_inplace_scratch_len()],
        }
    }

    /// Power spectrum of exactly `n_fft` samples (windowed here), e.g. for a display that
    /// computes one new frame at a time.
    pub fn power_of(&self, frame: &[f32], s: &mut StftScratch, out: &mut [f32]) {
        for ((f, &x), &w) in s.frame.iter_mut().zip(frame).zip(&self.window) {
            *f = x * w;
        }
        self.transform(s);
        for (o, c) in out.iter_mut().zip(&s.spectrum) {
            *o = c.re * c.re + c.im * c.im;
        }
    }

    /// Power spectra of [`LANES`] frames (`n_fft` samples each, windowed here) as a tile
    /// laid out bin by bin (`tile[bin * LANES + lane]`), the layout
    /// [`MelFilterbank::apply_tile`](super::MelFilterbank::apply_tile) reads.
    ///
    /// Frames go through the FFT two at a time: `z = a + ib` gives `Z[k]`, and with
    /// `R = conj(Z[N-k])` the spectra are `A[k] = (Z[k] + R) / 2`, `B[k] = (Z[k] - R) / 2i`.
    /// The tile is then written one whole row (bin) at a time.
    #[inline(always)]
    pub fn power_tile(&self, frames: [&[f32]; LANES], s: &mut TileScratch, tile: &mut [f32]) {
        let n = self.n_fft;
        for (z, ab) in s.pairs.chunks_exact_mut(n).zip(frames.chunks_exact(2)) {
            for (((z, &x), &y), &w) in z.iter_mut().zip(ab[0]).zip(ab[1]).zip(&self.window) {
                *z = Complex::new(x * w, y * w);
            }
            self.pair_fft.process_with_scratch(z, &mut s.scratch);
        }
        const PAIRS: usize = LANES / 2;
        let z: [&[Complex<f32>]; PAIRS] = std::array::from_fn(|j| &s.pairs[j * n..(j + 1) * n]);
        let mut rows = tile.chunks_exact_mut(LANES);
        // Bin 0 pairs with itself; bin k with bin n - k (for even n, n/2 with itself).
        let row = rows.next().expect("a tile has n_bins rows");
        for j in 0..PAIRS {
            (row[2 * j], row[2 * j + 1]) = pair_power(z[j][0], z[j][0]);
        }
        for (k, row) in (1..self.n_bins()).zip(rows) {
            for j in 0..PAIRS {
                (row[2 * j], row[2 * j + 1]) = pair_power(z[j][k], z[j][n - k]);
            }
        }
    }

    /// FFT of the windowed frame in `s.frame` into `s.spectrum`.
    fn transform(&self, s: &mut StftScratch) {
        self.fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.scratch)
            .expect("buffer sizes come from the plan");
    }
}

/// The power of bin `k` of frames `a` and `b` from `p = Z[k]` and `r = Z[n - k]` of the
/// FFT of `a + ib`: `|p + conj(r)|^2 / 4` and `|p - conj(r)|^2 / 4`.
#[inline(always)]
fn pair_power(p: Complex<f32>, r: Complex<f32>) -> (f32, f32) {
    let (sr, di) = (p.re + r.re, p.im - r.im);
    let (si, dr) = (p.im + r.im, p.re - r.re);
    (0.25 * (sr * sr + di * di), 0.25 * (si * si + dr * dr))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames through the paired complex FFTs give the power spectra the real FFT gives
    /// each, with a loud frame paired with one 60 dB quieter and for odd n_fft. Rounding
    /// error scales with the louder frame of a pair: every bin within 80 dB of the pair's
    /// peak (all that survives `top_db`) is within 0.01 dB.
    #[test]
    fn paired_transforms_match_one_real_transform_per_frame() {
        for n_fft in [2048, 400, 255] {
            let stft = Stft::new(n_fft, n_fft / 4);
            let mut s = stft.scratch();
            let mut ts = stft.tile_scratch();
            let frames: Vec<Vec<f32>> = (0..LANES)
                .map(|lane| {
                    let level = [1.0, 1e-3, 0.5, 1.0][lane % 4];
                    let f = 0.05 + 0.13 * lane as f32;
                    (0..n_fft)
                        .map(|i| level * ((i * i) as f32 * 0.0007 + f * i as f32).sin())
                        .collect()
                })
                .collect();
            let nb = stft.n_bins();
            let mut tile = vec![0.0f32; nb * LANES];
            let views = std::array::from_fn(|lane| &frames[lane][..]);
            stft.power_tile(views, &mut ts, &mut tile);
            let single: Vec<Vec<f32>> = frames
                .iter()
                .map(|f| {
                    let mut p = vec![0.0f32; nb];
                    stft.power_of(f, &mut s, &mut p);
                    p
                })
                .collect();
            for lane in 0..LANES {
                let pair = &single[lane & !1..(lane & !1) + 2];
                let peak = pair.iter().flatten().fold(0.0f32, |m, &x| m.max(x));
                for (k, &p) in single[lane].iter().enumerate() {
                    let got = tile[k * LANES + lane];
                    let at = format!("n_fft {n_fft} lane {lane} bin {k}: {got} vs {p}");
                    assert!((got - p).abs() <= 1e-6 * peak, "{at}");
                    if p > 1e-8 * peak {
                        assert!((10.0 * (got / p).log10()).abs() < 0.01, "{at}");
                    }
                }
            }
        }
    }
}
