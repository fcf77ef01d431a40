//! Short-time Fourier transform: periodic Hann window, `center=True` with zero padding
//! (librosa's `pad_mode="constant"`), power spectrum |X|^2 per frame, via realfft.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

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
}

/// Per-thread working memory for [`Stft::power_frame`].
pub struct StftScratch {
    frame: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
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
        Self {
            n_fft,
            hop_length,
            window,
            fft,
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

    /// Power spectrum |X[k]|^2 of frame `t` of `signal` (centred, zero padded) into `out`
    /// (`n_bins` values). Frame `t` covers samples `t*hop - n_fft/2 .. t*hop + n_fft/2`.
    pub fn power_frame(&self, signal: &[f32], t: usize, s: &mut StftScratch, out: &mut [f32]) {
        let half = (self.n_fft / 2) as isize;
        let start = (t * self.hop_length) as isize - half;
        let len = signal.len() as isize;
        if start >= 0 && start + self.n_fft as isize <= len {
            let src = &signal[start as usize..start as usize + self.n_fft];
            for ((f, &x), &w) in s.frame.iter_mut().zip(src).zip(&self.window) {
                *f = x * w;
            }
        } else {
            for (i, (f, &w)) in s.frame.iter_mut().zip(&self.window).enumerate() {
                let j = start + i as isize;
                *f = if j >= 0 && j < len {
                    signal[j as usize] * w
                } else {
                    0.0
                };
            }
        }
        self.transform(s, out);
    }

    /// Power spectrum of exactly `n_fft` samples (windowed here), e.g. for a display that
    /// computes one new frame at a time.
    pub fn power_of(&self, frame: &[f32], s: &mut StftScratch, out: &mut [f32]) {
        for ((f, &x), &w) in s.frame.iter_mut().zip(frame).zip(&self.window) {
            *f = x * w;
        }
        self.transform(s, out);
    }

    /// FFT of the windowed frame in `s.frame`, power into `out`.
    fn transform(&self, s: &mut StftScratch, out: &mut [f32]) {
        self.fft
            .process_with_scratch(&mut s.frame, &mut s.spectrum, &mut s.scratch)
            .expect("buffer sizes come from the plan");
        for (o, c) in out.iter_mut().zip(&s.spectrum) {
            *o = c.re * c.re + c.im * c.im;
        }
    }
}
