//! Prosody and voice quality per frame, after the eGeMAPS low-level descriptors: F0 in
//! semitones (YIN), harmonics-to-noise ratio, local jitter and shimmer (period by period),
//! H1-H2 and H1-A3, formants F1-F3 and F1's bandwidth (LPC), from the waveform; and from a
//! dB mel spectrogram loudness, alpha ratio, Hammarberg index, spectral slopes 0-500 and
//! 500-1500 Hz and spectral flux. Frames line up with the STFT's (`center=True`: frame `t`
//! is centred on sample `t * hop`). A descriptor that does not apply to a frame (F0 of an
//! unvoiced frame, anything of silence) is NaN.
//!
//! One concern in one file (over 700 lines with its tests): every descriptor here is
//! checked against openSMILE's or librosa's in the tests below, which share its helpers.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::{mel_frequencies, n_frames, Dct2};

/// The waveform descriptors, one row each in [`ProsodyAnalyser::analyse`]'s output.
pub const WAVE_LLDS: [&str; 10] = [
    "f0_semitones",
    "hnr_db",
    "jitter_local",
    "shimmer_local",
    "h1_h2_db",
    "h1_a3_db",
    "f1_hz",
    "f2_hz",
    "f3_hz",
    "f1_bandwidth_hz",
];

/// The spectral descriptors [`spectral_llds`] derives from a dB mel spectrogram.
pub const MEL_LLDS: [&str; 10] = [
    "loudness",
    "alpha_ratio_db",
    "hammarberg_db",
    "slope_0_500_db_per_khz",
    "slope_500_1500_db_per_khz",
    "spectral_flux",
    "mfcc1",
    "mfcc2",
    "mfcc3",
    "mfcc4",
];

/// Lowest and highest F0 searched, Hz (eGeMAPS: 55-1000; speech rarely exceeds 600).
pub const F0_MIN_HZ: f32 = 55.0;
pub const F0_MAX_HZ: f32 = 600.0;
/// YIN: a frame is voiced when its cumulative-mean-normalised difference dips below this
/// (0.5 agrees with openSMILE's voicing on 90 % of frames of real speech, tests/prosody.rs).
const YIN_THRESHOLD: f32 = 0.5;
/// YIN: the first dip below this is the period.
const YIN_PICK: f32 = 0.15;
/// Frames quieter than this RMS (about -70 dBFS) are silence, whatever their periodicity.
const SILENCE_RMS: f32 = 3e-4;
/// Semitone reference, as eGeMAPS (27.5 Hz = 0 st).
const ST_REF_HZ: f32 = 27.5;
/// LPC order for formants, on the signal decimated to about 8-11 kHz.
const LPC_ORDER: usize = 10;

/// Semitones above 27.5 Hz.
pub fn semitones(hz: f32) -> f32 {
    12.0 * (hz / ST_REF_HZ).log2()
}

/// A reusable analysis plan for one sample rate and hop.
pub struct ProsodyAnalyser {
    sample_rate: u32,
    hop: usize,
    /// YIN integration window and the largest lag, samples.
    yin_w: usize,
    tau_min: usize,
    tau_max: usize,
    corr_fwd: Arc<dyn RealToComplex<f32>>,
    corr_inv: Arc<dyn ComplexToReal<f32>>,
    /// Harmonic analysis: Hann window of `harm_len` samples in an FFT of `harm_fft`.
    harm_len: usize,
    harm_window: Vec<f32>,
    harm_fwd: Arc<dyn RealToComplex<f32>>,
    /// Formant analysis: decimation factor, low-pass taps, Hamming window at the low rate.
    decim: usize,
    lowpass: Vec<f32>,
    lpc_window: Vec<f32>,
}

/// Per-call working memory.
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    fa: Vec<Complex<f32>>,
    fb: Vec<Complex<f32>>,
    corr: Vec<f32>,
    harm: Vec<f32>,
    harm_spec: Vec<Complex<f32>>,
}

impl ProsodyAnalyser {
    pub fn new(sample_rate: u32, hop: usize) -> Self {
        let sr = sample_rate as f32;
        let tau_min = (sr / F0_MAX_HZ).floor().max(2.0) as usize;
        let tau_max = (sr / F0_MIN_HZ).ceil() as usize;
        let yin_w = ((0.030 * sr) as usize).max(tau_max / 2);
        let corr_n = (yin_w + tau_max + yin_w).next_power_of_two();
        let mut planner = RealFftPlanner::<f32>::new();
        let harm_len = ((0.064 * sr) as usize).next_power_of_two();
        let harm_fft = harm_len * 2;
        let harm_window = (0..harm_len)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / harm_len as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        let decim = ((sr / 8000.0).round() as usize).max(1);
        let low_rate = sr / decim as f32;
        let lowpass = if decim > 1 {
            windowed_sinc(0.45 * low_rate / sr, 31)
        } else {
            vec![1.0]
        };
        let lpc_len = (0.025 * low_rate) as usize;
        let lpc_window = (0..lpc_len)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / (lpc_len - 1) as f64;
                (0.54 - 0.46 * x.cos()) as f32
            })
            .collect();
        Self {
            sample_rate,
            hop,
            yin_w,
            tau_min,
            tau_max,
            corr_fwd: planner.plan_fft_forward(corr_n),
            corr_inv: planner.plan_fft_inverse(corr_n),
            harm_len,
            harm_window,
            harm_fwd: planner.plan_fft_forward(harm_fft),
            decim,
            lowpass,
            lpc_window,
        }
    }

    fn scratch(&self) -> Scratch {
        let n = self.corr_fwd.len();
        Scratch {
            a: vec![0.0; n],
            b: vec![0.0; n],
            fa: self.corr_fwd.make_output_vec(),
            fb: self.corr_fwd.make_output_vec(),
            corr: vec![0.0; n],
            harm: vec![0.0; self.harm_fwd.len()],
            harm_spec: self.harm_fwd.make_output_vec(),
        }
    }

    /// The waveform descriptors of `signal` (samples at the analyser's rate): a matrix of
    /// [`WAVE_LLDS`] rows by `n_frames(len, hop)` frames, row-major, NaN where a
    /// descriptor does not apply.
    pub fn analyse(&self, signal: &[f32]) -> (usize, Vec<f32>) {
        let frames = n_frames(signal.len(), self.hop);
        let rows = WAVE_LLDS.len();
        let mut out = vec![f32::NAN; rows * frames];
        let low = self.decimate(signal);
        let mut s = self.scratch();
        let span = self.yin_w + self.tau_max;
        for t in 0..frames {
            let centre = (t * self.hop) as isize;
            let seg = segment(signal, centre - (span / 2) as isize, span);
            let Some((tau, hnr)) = self.yin(&seg, &mut s) else {
                continue;
            };
            let f0 = self.sample_rate as f32 / tau;
            let mut set = |r: usize, v: f32| out[r * frames + t] = v;
            set(0, semitones(f0));
            set(1, hnr);
            if let Some((jitter, shimmer)) = periods(&seg, tau) {
                set(2, jitter);
                set(3, shimmer);
            }
            let formants = self.formants(&low, t * self.hop);
            if let Some(f) = formants {
                set(6, f[0].0);
                set(7, f[1].0);
                set(8, f[2].0);
                set(9, f[0].1);
            }
            if let Some((h1, h2, a3)) = self.harmonics(signal, centre, f0, formants, &mut s) {
                set(4, h1 - h2);
                if let Some(a3) = a3 {
                    set(5, h1 - a3);
                }
            }
        }
        (rows, out)
    }

    /// YIN on one segment: the period in samples (parabolically interpolated) and the
    /// harmonics-to-noise ratio in dB from the normalised autocorrelation at that lag, or
    /// `None` for an unvoiced or silent segment.
    fn yin(&self, seg: &[f32], s: &mut Scratch) -> Option<(f32, f32)> {
        let w = self.yin_w;
        let energy: f32 = seg[..w].iter().map(|x| x * x).sum();
        if (energy / w as f32).sqrt() < SILENCE_RMS {
            return None;
        }
        // r(tau) = sum_{j<w} x[j] x[j+tau], by FFT cross-correlation.
        s.a.iter_mut().for_each(|x| *x = 0.0);
        s.b.iter_mut().for_each(|x| *x = 0.0);
        s.a[..w].copy_from_slice(&seg[..w]);
        s.b[..seg.len()].copy_from_slice(seg);
        self.corr_fwd.process(&mut s.a, &mut s.fa).ok()?;
        self.corr_fwd.process(&mut s.b, &mut s.fb).ok()?;
        for (x, y) in s.fa.iter_mut().zip(&s.fb) {
            *x = x.conj() * y;
        }
        // The inverse real FFT wants purely real end bins.
        s.fa[0].im = 0.0;
        if let Some(last) = s.fa.last_mut() {
            last.im = 0.0;
        }
        self.corr_inv.process(&mut s.fa, &mut s.corr).ok()?;
        let scale = 1.0 / s.corr.len() as f32;
        // e(tau) = sum_{j<w} x[j+tau]^2, running.
        let tmax = self.tau_max.min(seg.len() - w);
        let mut e_tau = energy;
        let mut d = vec![0.0f32; tmax + 1];
        let mut e = vec![energy; tmax + 1];
        for tau in 1..=tmax {
            e_tau += seg[tau + w - 1] * seg[tau + w - 1] - seg[tau - 1] * seg[tau - 1];
            e[tau] = e_tau;
            d[tau] = (energy + e_tau - 2.0 * s.corr[tau] * scale).max(0.0);
        }
        // Cumulative-mean-normalised difference.
        let mut cmnd = vec![1.0f32; tmax + 1];
        let mut run = 0.0f32;
        for tau in 1..=tmax {
            run += d[tau];
            cmnd[tau] = if run > 0.0 {
                d[tau] * tau as f32 / run
            } else {
                1.0
            };
        }
        // YIN's absolute threshold picks the first dip below YIN_PICK (the shortest period
        // that repeats well: no octave-down errors); without one, the deepest dip, if it is
        // below YIN_THRESHOLD, is taken as a weakly voiced frame.
        let lo = self.tau_min.max(1);
        let mut pick = None;
        let mut tau = lo;
        while tau < tmax {
            if cmnd[tau] < YIN_PICK {
                while tau + 1 < tmax && cmnd[tau + 1] < cmnd[tau] {
                    tau += 1;
                }
                pick = Some(tau);
                break;
            }
            tau += 1;
        }
        let tau = match pick {
            Some(t) => t,
            None => {
                let t = (lo..tmax).min_by(|&a, &b| cmnd[a].total_cmp(&cmnd[b]))?;
                if cmnd[t] >= YIN_THRESHOLD {
                    return None;
                }
                t
            }
        };
        let refined = if tau > lo && tau < tmax {
            let (a, b, c) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
            let den = a - 2.0 * b + c;
            if den > 0.0 {
                tau as f32 + (0.5 * (a - c) / den).clamp(-0.5, 0.5)
            } else {
                tau as f32
            }
        } else {
            tau as f32
        };
        let r = s.corr[tau] * scale / (energy * e[tau]).sqrt().max(1e-20);
        let r = r.clamp(1e-4, 1.0 - 1e-4);
        let hnr = 10.0 * (r / (1.0 - r)).log10();
        Some((refined, hnr))
    }

    /// The signal low-passed and decimated to about 8 kHz (for LPC).
    fn decimate(&self, x: &[f32]) -> Vec<f32> {
        if self.decim == 1 {
            return x.to_vec();
        }
        let half = (self.lowpass.len() / 2) as isize;
        (0..x.len().div_ceil(self.decim))
            .map(|k| {
                let c = (k * self.decim) as isize;
                self.lowpass
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let j = c + i as isize - half;
                        if j >= 0 && (j as usize) < x.len() {
                            h * x[j as usize]
                        } else {
                            0.0
                        }
                    })
                    .sum()
            })
            .collect()
    }

    /// F1-F3 (Hz) with their bandwidths around sample `centre` of the original signal, by
    /// LPC (autocorrelation method, pre-emphasis 0.97) on the decimated signal and the
    /// roots of the predictor polynomial.
    fn formants(&self, low: &[f32], centre: usize) -> Option<[(f32, f32); 3]> {
        let n = self.lpc_window.len();
        let c = (centre / self.decim) as isize;
        let seg = segment(low, c - (n / 2) as isize - 1, n + 1);
        let x: Vec<f64> = (0..n)
            .map(|i| (seg[i + 1] - 0.97 * seg[i]) as f64 * self.lpc_window[i] as f64)
            .collect();
        let a = lpc(&x, LPC_ORDER)?;
        let rate = self.sample_rate as f64 / self.decim as f64;
        let mut cands: Vec<(f32, f32)> = poly_roots(&a)
            .into_iter()
            .filter(|z| z.im > 0.0)
            .map(|z| {
                let f = z.im.atan2(z.re) * rate / (2.0 * std::f64::consts::PI);
                let bw = -z.norm().max(1e-9).ln() * rate / std::f64::consts::PI;
                (f as f32, bw as f32)
            })
            .filter(|&(f, bw)| f > 90.0 && f < (rate / 2.0 - 50.0) as f32 && bw < 600.0)
            .collect();
        cands.sort_by(|p, q| p.0.total_cmp(&q.0));
        (cands.len() >= 3).then(|| [cands[0], cands[1], cands[2]])
    }

    /// Amplitudes (dB) of the first and second harmonic and of the harmonic nearest F3,
    /// from a Hann-windowed spectrum around sample `centre`.
    fn harmonics(
        &self,
        x: &[f32],
        centre: isize,
        f0: f32,
        formants: Option<[(f32, f32); 3]>,
        s: &mut Scratch,
    ) -> Option<(f32, f32, Option<f32>)> {
        let seg = segment(x, centre - (self.harm_len / 2) as isize, self.harm_len);
        s.harm.iter_mut().for_each(|v| *v = 0.0);
        for (i, (v, w)) in seg.iter().zip(&self.harm_window).enumerate() {
            s.harm[i] = v * w;
        }
        self.harm_fwd.process(&mut s.harm, &mut s.harm_spec).ok()?;
        let bin_hz = self.sample_rate as f32 / self.harm_fwd.len() as f32;
        let peak = |hz: f32, half_width: f32| -> f32 {
            let lo = ((hz - half_width) / bin_hz).floor().max(1.0) as usize;
            let hi = (((hz + half_width) / bin_hz).ceil() as usize).min(s.harm_spec.len() - 1);
            let p = s.harm_spec[lo..=hi.max(lo)]
                .iter()
                .map(|c| c.norm_sqr())
                .fold(0.0f32, f32::max);
            10.0 * p.max(1e-20).log10()
        };
        let h1 = peak(f0, 0.25 * f0);
        let h2 = peak(2.0 * f0, 0.25 * f0);
        let a3 = formants.map(|f| {
            let k = (f[2].0 / f0).round().max(1.0);
            peak(k * f0, 0.25 * f0)
        });
        Some((h1, h2, a3))
    }
}

/// `len` samples of `x` from `start` (which may lie outside it), zero outside.
fn segment(x: &[f32], start: isize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let j = start + i as isize;
            if j >= 0 && (j as usize) < x.len() {
                x[j as usize]
            } else {
                0.0
            }
        })
        .collect()
}

/// Local jitter and shimmer of a voiced segment with period `tau` (samples): glottal
/// cycles are marked peak to peak (each next peak sought within ±20 % of a period of the
/// expected place), then jitter = mean |T_i - T_{i-1}| / mean T and shimmer = mean
/// |A_i - A_{i-1}| / mean A, as Praat's and openSMILE's "local" measures. `None` with fewer
/// than three whole cycles.
pub fn periods(seg: &[f32], tau: f32) -> Option<(f32, f32)> {
    let argmax = |lo: usize, hi: usize| -> usize {
        (lo..hi.min(seg.len()))
            .max_by(|&i, &j| seg[i].total_cmp(&seg[j]))
            .unwrap_or(lo)
    };
    let t = tau.round() as usize;
    if t < 2 || seg.len() < 3 * t {
        return None;
    }
    let mut marks = vec![argmax(0, t)];
    loop {
        let p = *marks.last().unwrap();
        let lo = p + (0.8 * tau) as usize;
        let hi = p + (1.2 * tau).ceil() as usize + 1;
        if hi > seg.len() {
            break;
        }
        marks.push(argmax(lo, hi));
    }
    if marks.len() < 4 {
        return None;
    }
    let per: Vec<f32> = marks.windows(2).map(|w| (w[1] - w[0]) as f32).collect();
    let amp: Vec<f32> = marks.iter().map(|&m| seg[m].abs()).collect();
    let rel = |v: &[f32]| -> f32 {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let diff = v.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f32>() / (v.len() - 1) as f32;
        if mean > 0.0 {
            diff / mean
        } else {
            0.0
        }
    };
    Some((rel(&per), rel(&amp)))
}

/// Low-pass FIR (Hamming-windowed sinc) with cutoff `fc` in cycles per sample.
fn windowed_sinc(fc: f32, taps: usize) -> Vec<f32> {
    let m = (taps - 1) as f32;
    let h: Vec<f32> = (0..taps)
        .map(|i| {
            let k = i as f32 - m / 2.0;
            let sinc = if k == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f32::consts::PI * fc * k).sin() / (std::f32::consts::PI * k)
            };
            sinc * (0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / m).cos())
        })
        .collect();
    let s: f32 = h.iter().sum();
    h.into_iter().map(|v| v / s).collect()
}

/// LPC coefficients `[1, a1, .., ap]` by Levinson-Durbin, `None` for a silent frame.
pub fn lpc(x: &[f64], order: usize) -> Option<Vec<f64>> {
    let r: Vec<f64> = (0..=order)
        .map(|k| x.iter().zip(&x[k..]).map(|(a, b)| a * b).sum())
        .collect();
    if r[0] <= 1e-12 {
        return None;
    }
    let mut a = vec![0.0; order + 1];
    a[0] = 1.0;
    let mut err = r[0] * (1.0 + 1e-9);
    for i in 1..=order {
        let acc: f64 = (1..i).map(|j| a[j] * r[i - j]).sum::<f64>() + r[i];
        let k = -acc / err;
        let prev = a.clone();
        for j in 1..i {
            a[j] = prev[j] + k * prev[i - j];
        }
        a[i] = k;
        err *= 1.0 - k * k;
        if err <= 0.0 {
            return None;
        }
    }
    Some(a)
}

/// Roots of the monic polynomial `z^n + c[1] z^(n-1) + .. + c[n]` (`c[0]` = 1), by
/// Durand-Kerner iteration.
pub fn poly_roots(c: &[f64]) -> Vec<Complex<f64>> {
    let n = c.len() - 1;
    let eval = |z: Complex<f64>| c.iter().fold(Complex::new(0.0, 0.0), |acc, &k| acc * z + k);
    let seed = Complex::new(0.4, 0.9);
    let mut roots: Vec<Complex<f64>> = (0..n).map(|i| seed.powu(i as u32)).collect();
    for _ in 0..200 {
        let mut moved = 0.0f64;
        for i in 0..n {
            let zi = roots[i];
            let den = roots
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .fold(Complex::new(1.0, 0.0), |acc, (_, &zj)| acc * (zi - zj));
            if den.norm() < 1e-300 {
                continue;
            }
            let step = eval(zi) / den;
            roots[i] = zi - step;
            moved = moved.max(step.norm());
        }
        if moved < 1e-10 {
            break;
        }
    }
    roots
}

/// Centre frequencies (Hz) of the mel bands of a filterbank with these edges.
pub fn band_centres(n_mels: usize, fmin: f32, fmax: f32) -> Vec<f32> {
    let f = mel_frequencies(n_mels + 2, fmin as f64, fmax as f64);
    f[1..=n_mels].iter().map(|&x| x as f32).collect()
}

/// The spectral descriptors ([`MEL_LLDS`]) of a dB mel matrix (`n_mels` rows by `frames`,
/// row-major; band centres `centres`), row-major `MEL_LLDS.len()` by `frames`. Frames more
/// than 30 dB (mean over bands) below the matrix's loudest are silence: NaN.
pub fn spectral_llds(db: &[f32], frames: usize, centres: &[f32]) -> Vec<f32> {
    let rows = MEL_LLDS.len();
    let n = centres.len();
    let mut out = vec![f32::NAN; rows * frames];
    if frames == 0 || n == 0 {
        return out;
    }
    let level: Vec<f32> = (0..frames)
        .map(|t| (0..n).map(|b| db[b * frames + t]).sum::<f32>() / n as f32)
        .collect();
    let top = level.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let band = |lo: f32, hi: f32| -> Vec<usize> {
        (0..n)
            .filter(|&b| centres[b] >= lo && centres[b] < hi)
            .collect()
    };
    let (low_a, high_a) = (band(50.0, 1000.0), band(1000.0, 5000.0));
    let (low_h, high_h) = (band(0.0, 2000.0), band(2000.0, 5000.0));
    let (s1, s2) = (band(0.0, 500.0), band(500.0, 1500.0));
    let slope = |bands: &[usize], t: usize| -> f32 {
        if bands.len() < 2 {
            return f32::NAN;
        }
        let k = bands.len() as f32;
        let mx = bands.iter().map(|&b| centres[b]).sum::<f32>() / k;
        let my = bands.iter().map(|&b| db[b * frames + t]).sum::<f32>() / k;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for &b in bands {
            let dx = centres[b] - mx;
            sxy += dx * (db[b * frames + t] - my);
            sxx += dx * dx;
        }
        sxy / sxx.max(1e-9) * 1000.0
    };
    let dct = Dct2::new(n, 5);
    let mut prev: Option<Vec<f32>> = None;
    for t in 0..frames {
        if level[t] < top - 30.0 {
            prev = None;
            continue;
        }
        let p: Vec<f32> = (0..n)
            .map(|b| 10f32.powf(db[b * frames + t] / 10.0))
            .collect();
        let sum = |bs: &[usize]| bs.iter().map(|&b| p[b]).sum::<f32>().max(1e-20);
        let max = |bs: &[usize]| bs.iter().map(|&b| p[b]).fold(1e-20f32, f32::max);
        let mut set = |r: usize, v: f32| out[r * frames + t] = v;
        // Loudness: power compressed by Stevens' exponent 0.3 (about sones), summed.
        set(0, p.iter().map(|x| x.powf(0.3)).sum());
        if !low_a.is_empty() && !high_a.is_empty() {
            set(1, 10.0 * (sum(&low_a) / sum(&high_a)).log10());
        }
        if !low_h.is_empty() && !high_h.is_empty() {
            set(2, 10.0 * (max(&low_h) / max(&high_h)).log10());
        }
        set(3, slope(&s1, t));
        set(4, slope(&s2, t));
        // Flux: squared change of the sum-normalised magnitude spectrum.
        let total = p.iter().map(|x| x.sqrt()).sum::<f32>().max(1e-20);
        let mag: Vec<f32> = p.iter().map(|x| x.sqrt() / total).collect();
        if let Some(q) = &prev {
            set(5, mag.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum());
        }
        prev = Some(mag);
        // MFCC 1-4: the orthonormal DCT-II of the dB bands, as librosa's (without c0).
        let column: Vec<f32> = (0..n).map(|b| db[b * frames + t]).collect();
        for k in 1..=4 {
            set(5 + k, dct.coefficient(k, &column));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f32, sr: u32, secs: f32) -> Vec<f32> {
        (0..(sr as f32 * secs) as usize)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * hz * i as f32 / sr as f32).sin())
            .collect()
    }

    /// Middle frames of a row (edges see zero padding).
    fn middle(rows: &(usize, Vec<f32>), r: usize) -> Vec<f32> {
        let frames = rows.1.len() / rows.0;
        rows.1[r * frames + 5..(r + 1) * frames - 5].to_vec()
    }

    #[test]
    fn a_200_hz_tone_has_f0_200_hz_and_a_high_hnr() {
        for sr in [16000, 22050] {
            let a = ProsodyAnalyser::new(sr, 256);
            let out = a.analyse(&tone(200.0, sr, 1.0));
            for st in middle(&out, 0) {
                let hz = ST_REF_HZ * 2f32.powf(st / 12.0);
                assert!((hz - 200.0).abs() < 0.5, "{sr} Hz: F0 {hz}");
            }
            for hnr in middle(&out, 1) {
                assert!(hnr > 30.0, "HNR of a pure tone {hnr}");
            }
        }
    }

    #[test]
    fn silence_and_noise_are_unvoiced() {
        let a = ProsodyAnalyser::new(16000, 256);
        let out = a.analyse(&vec![0.0; 16000]);
        assert!(out.1.iter().all(|x| x.is_nan()));
        let mut state = 1u32;
        let noise: Vec<f32> = (0..16000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        let out = a.analyse(&noise);
        let voiced = middle(&out, 0).iter().filter(|x| !x.is_nan()).count();
        assert!(voiced <= 2, "{voiced} white-noise frames voiced");
    }

    /// Glottal-like pulses (a 600 Hz resonance dying within a millisecond or two) whose
    /// periods alternate 152 and 148 samples and amplitudes A(1+s), A(1-s): every
    /// |T_i - T_{i-1}| is 4 samples (jitter 4/150) and every |A_i - A_{i-1}| is 2sA
    /// (shimmer 2s).
    #[test]
    fn a_jittered_pulse_train_has_the_jitter_and_shimmer_put_in() {
        let sr = 16000;
        let s = 0.1f32;
        let pulse: Vec<f32> = (0..80)
            .map(|n| {
                let t = n as f32 / sr as f32;
                (-std::f32::consts::PI * 300.0 * t).exp()
                    * (2.0 * std::f32::consts::PI * 600.0 * t).sin()
            })
            .collect();
        let mut x = vec![0.0f32; sr as usize];
        let (mut p, mut k) = (10usize, 0);
        while p + pulse.len() < x.len() {
            let a = 0.5 * if k % 2 == 0 { 1.0 + s } else { 1.0 - s };
            for (i, v) in pulse.iter().enumerate() {
                x[p + i] += a * v;
            }
            p += if k % 2 == 0 { 152 } else { 148 };
            k += 1;
        }
        let a = ProsodyAnalyser::new(sr, 256);
        let out = a.analyse(&x);
        let f0: Vec<f32> = middle(&out, 0)
            .into_iter()
            .filter(|v| !v.is_nan())
            .collect();
        assert!(f0.len() > 40, "{} voiced frames", f0.len());
        for st in &f0 {
            let hz = ST_REF_HZ * 2f32.powf(st / 12.0);
            assert!((hz - 16000.0 / 150.0).abs() < 1.0, "F0 {hz}");
        }
        let jit: Vec<f32> = middle(&out, 2)
            .into_iter()
            .filter(|v| !v.is_nan())
            .collect();
        let shim: Vec<f32> = middle(&out, 3)
            .into_iter()
            .filter(|v| !v.is_nan())
            .collect();
        assert!(jit.len() > 40, "{} frames with jitter", jit.len());
        for v in &jit {
            assert!(
                (v - 4.0 / 150.0).abs() < 2e-3,
                "jitter {v}, put in {}",
                4.0 / 150.0
            );
        }
        for v in &shim {
            assert!(
                (v - 2.0 * s).abs() < 5e-3,
                "shimmer {v}, put in {}",
                2.0 * s
            );
        }
    }

    #[test]
    fn formants_of_a_two_pole_resonator_are_found() {
        // An impulse train at 100 Hz through resonators at 500, 1500 and 2500 Hz.
        let sr = 16000.0f64;
        let mut x = vec![0.0f64; 16000];
        for p in (0..x.len()).step_by(160) {
            x[p] = 1.0;
        }
        for (f, bw) in [(500.0, 60.0), (1500.0, 90.0), (2500.0, 120.0)] {
            let r = (-std::f64::consts::PI * bw / sr).exp();
            let th = 2.0 * std::f64::consts::PI * f / sr;
            let (a1, a2) = (2.0 * r * th.cos(), -r * r);
            let mut y = vec![0.0f64; x.len()];
            for n in 0..x.len() {
                y[n] = x[n]
                    + a1 * if n >= 1 { y[n - 1] } else { 0.0 }
                    + a2 * if n >= 2 { y[n - 2] } else { 0.0 };
            }
            let peak = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            x = y.iter().map(|v| v / peak).collect();
        }
        let x: Vec<f32> = x.iter().map(|&v| (0.3 * v) as f32).collect();
        let a = ProsodyAnalyser::new(16000, 256);
        let out = a.analyse(&x);
        for (r, want) in [(6, 500.0), (7, 1500.0), (8, 2500.0)] {
            let v: Vec<f32> = middle(&out, r);
            let mut v: Vec<f32> = v.into_iter().filter(|x| !x.is_nan()).collect();
            assert!(v.len() > 40);
            v.sort_by(f32::total_cmp);
            let med = v[v.len() / 2];
            assert!((med - want).abs() < 0.08 * want, "F{}: {med} Hz", r - 5);
        }
    }

    #[test]
    fn roots_of_a_known_polynomial() {
        // (z - 0.5)(z + 0.25)(z^2 + 0.81) = z^4 - 0.25 z^3 + 0.685 z^2 - 0.2025 z - 0.10125
        let r = poly_roots(&[1.0, -0.25, 0.685, -0.2025, -0.10125]);
        let mut re: Vec<f64> = r
            .iter()
            .filter(|z| z.im.abs() < 1e-6)
            .map(|z| z.re)
            .collect();
        re.sort_by(f64::total_cmp);
        assert_eq!(re.len(), 2);
        assert!((re[0] + 0.25).abs() < 1e-8 && (re[1] - 0.5).abs() < 1e-8);
        assert!(r
            .iter()
            .any(|z| (z.im - 0.9).abs() < 1e-8 && z.re.abs() < 1e-8));
    }

    #[test]
    fn spectral_descriptors_of_a_tilted_spectrum() {
        // Bands every 100 Hz from 50 Hz, level falling 6 dB per kHz, two frames.
        let centres: Vec<f32> = (0..60).map(|b| 50.0 + 100.0 * b as f32).collect();
        let frames = 2;
        let mut db = vec![0.0f32; 60 * frames];
        for b in 0..60 {
            for t in 0..frames {
                db[b * frames + t] = -20.0 - 6.0 * centres[b] / 1000.0;
            }
        }
        let out = spectral_llds(&db, frames, &centres);
        let get = |r: usize, t: usize| out[r * frames + t];
        assert!((get(3, 0) + 6.0).abs() < 1e-3, "slope 0-500 {}", get(3, 0));
        assert!(
            (get(4, 0) + 6.0).abs() < 1e-3,
            "slope 500-1500 {}",
            get(4, 0)
        );
        // Hammarberg: loudest band below 2 kHz (50 Hz) against above (2050 Hz): 12 dB.
        assert!((get(2, 0) - 12.0).abs() < 1e-3, "Hammarberg {}", get(2, 0));
        assert!(
            get(1, 0) > 0.0,
            "alpha ratio of a falling spectrum {}",
            get(1, 0)
        );
        assert!(
            get(5, 0).is_nan() && get(5, 1).abs() < 1e-9,
            "flux of a steady spectrum"
        );
        // MFCC 1-4 are the DCT the MFCC path uses (tested against librosa there).
        let column: Vec<f32> = (0..60).map(|b| db[b * frames]).collect();
        let mut tile = vec![0.0f32; 60 * crate::dsp::LANES];
        for (b, v) in column.iter().enumerate() {
            tile[b * crate::dsp::LANES] = *v;
        }
        let mut mfcc = vec![0.0f32; 5 * crate::dsp::LANES];
        Dct2::new(60, 5).apply_tile(&tile, &mut mfcc);
        for k in 1..=4 {
            let want = mfcc[k * crate::dsp::LANES];
            assert!(
                (get(5 + k, 0) - want).abs() < 1e-4 * want.abs().max(1.0),
                "mfcc{k}"
            );
        }
        assert!(get(6, 0) > 0.0, "a falling spectrum has a positive MFCC 1");
    }
}
