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

/// Per-thread working memory for [`Stft::power_of`] and [`Stft::power_pair_into_lanes`].
pub struct StftScratch {
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    pair: Vec<Complex<f32>>,
    pair_scratch: Vec<Complex<f32>>,
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
            pair: vec![Complex::default(); self.n_fft],
            pair_scratch: vec![Complex::default(); self.pair_fft.get_inplace_scratch_len()],
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

    /// Power spectra of two frames (`n_fft` samples each, windowed here) into lanes
    /// `lane` and `lane + 1` of a tile of [`LANES`] frames laid out bin by bin
    /// (`tile[bin * LANES + lane]`), the layout
    /// [`MelFilterbank::apply_tile`](super::MelFilterbank::apply_tile) reads.
    ///
    /// One complex FFT carries both: `z = a + ib` gives `Z[k]`, and with `R = conj(Z[N-k])`
    /// the spectra are `A[k] = (Z[k] + R) / 2` and `B[k] = (Z[k] - R) / 2i`.
    #[inline(always)]
    pub fn power_pair_into_lanes(
        &self,
        a: &[f32],
        b: &[f32],
        s: &mut StftScratch,
        tile: &mut [f32],
        lane: usize,
    ) {
        for (((z, &x), &y), &w) in s.pair.iter_mut().zip(a).zip(b).zip(&self.window) {
            *z = Complex::new(x * w, y * w);
        }
        self.pair_fft
            .process_with_scratch(&mut s.pair, &mut s.pair_scratch);
        // Bin k pairs with bin n - k (bin 0 with itself; for even n, so does n/2).
        let z = &s.pair;
        let partners = std::iter::once(&z[0]).chain(z[1..].iter().rev());
        let bins = tile.chunks_exact_mut(LANES).zip(&z[..self.n_bins()]);
        for ((o, p), r) in bins.zip(partners) {
            let (sr, di) = (p.re + r.re, p.im - r.im);
            let (si, dr) = (p.im + r.im, p.re - r.re);
            let o = &mut o[lane..lane + 2];
            o[0] = 0.25 * (sr * sr + di * di);
            o[1] = 0.25 * (si * si + dr * dr);
        }
    }

    /// FFT of the windowed frame in `s.frame` into `s.spectrum`.
    fn transform(&self, s: &mut StftScratch) {
        self.fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.scratch)
            .expect("buffer sizes come from the plan");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two frames through one complex FFT give the power spectra the real FFT gives each,
    /// for a loud frame paired with one 60 dB quieter and for odd n_fft. Rounding error
    /// scales with the louder frame of the pair: every bin within 80 dB of the pair's peak
    /// (all that survives `top_db`) is within 0.01 dB.
    #[test]
    fn pair_transform_matches_two_real_transforms() {
        for (n_fft, quiet) in [(2048, 1e-3f32), (400, 1.0), (255, 0.5)] {
            let stft = Stft::new(n_fft, n_fft / 4);
            let mut s = stft.scratch();
            let a: Vec<f32> = (0..n_fft).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n_fft)
                .map(|i| quiet * ((i * i) as f32 * 0.011).cos())
                .collect();
            let nb = stft.n_bins();
            let mut tile = vec![0.0f32; nb * LANES];
            stft.power_pair_into_lanes(&a, &b, &mut s, &mut tile, 2);
            let mut single = [vec![0.0f32; nb], vec![0.0f32; nb]];
            stft.power_of(&a, &mut s, &mut single[0]);
            stft.power_of(&b, &mut s, &mut single[1]);
            let peak = single.iter().flatten().fold(0.0f32, |m, &x| m.max(x));
            for (lane, reference) in [(2, &single[0]), (3, &single[1])] {
                for (k, &p) in reference.iter().enumerate() {
                    let got = tile[k * LANES + lane];
                    let at = format!("n_fft {n_fft} lane {lane} bin {k}: {got} vs {p}");
                    assert!((got - p).abs() <= 1e-6 * peak, "{at}");
                    if p > 1e-8 * peak {
                        assert!((10.0 * (got / p).log10()).abs() < 0.01, "{at}");
                    }
                }
            }
            let mut other_lanes = tile
                .iter()
                .enumerate()
                .filter(|(i, _)| !matches!(i % LANES, 2 | 3));
            assert!(other_lanes.all(|(_, &x)| x == 0.0));
        }
    }
}
