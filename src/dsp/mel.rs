//! Mel filterbank as librosa's `filters.mel(htk=False, norm="slaney")`: Slaney mel scale,
//! triangular filters with area normalisation, stored sparsely (each filter's non-zero span).

/// Slaney scale: linear at `F_SP` Hz per mel below `MIN_LOG_HZ`, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn logstep() -> f64 {
    (6.4f64).ln() / 27.0
}

/// Hz to mel on the Slaney scale (linear below 1 kHz, logarithmic above).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / logstep()
    } else {
        hz / F_SP
    }
}

/// Mel (Slaney scale) to Hz.
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (logstep() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

/// `n` frequencies (Hz) evenly spaced on the mel scale from `fmin` to `fmax`.
pub fn mel_frequencies(n: usize, fmin: f64, fmax: f64) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel(fmin), hz_to_mel(fmax));
    (0..n)
        .map(|i| {
            let m = if n > 1 {
                lo + (hi - lo) * i as f64 / (n - 1) as f64
            } else {
                lo
            };
            mel_to_hz(m)
        })
        .collect()
}

/// A Slaney-normalised mel filterbank mapping `n_fft/2+1` power bins to `n_mels` bands.
#[derive(Debug, Clone)]
pub struct MelFilterbank {
    n_bins: usize,
    /// Per filter: first non-zero bin and its weights.
    filters: Vec<(usize, Vec<f32>)>,
}

impl MelFilterbank {
    pub fn new(sample_rate: u32, n_fft: usize, n_mels: usize, fmin: f64, fmax: f64) -> Self {
        let n_bins = n_fft / 2 + 1;
        let fftfreqs: Vec<f64> = (0..n_bins)
            .map(|k| k as f64 * sample_rate as f64 / n_fft as f64)
            .collect();
        let mel_f = mel_frequencies(n_mels + 2, fmin, fmax);
        let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
        let bin_hz = sample_rate as f64 / n_fft as f64;
        let filters = (0..n_mels)
            .map(|i| {
                let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
                // Only bins strictly between the filter's edges can be non-zero; one bin of
                // margin each side, then the zeros are trimmed as for the whole row.
                let lo = ((mel_f[i] / bin_hz).floor() as usize).saturating_sub(1);
                let hi = ((mel_f[i + 2] / bin_hz).ceil() as usize + 2).min(n_bins);
                let w: Vec<f32> = fftfreqs[lo.min(hi)..hi]
                    .iter()
                    .map(|&f| {
                        let lower = -(mel_f[i] - f) / fdiff[i];
                        let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
                        // librosa builds float64 weights, then stores them as float32.
                        (0.0f64.max(lower.min(upper)) * enorm) as f32
                    })
                    .collect();
                let first = w.iter().position(|&x| x != 0.0).unwrap_or(0);
                let last = w.iter().rposition(|&x| x != 0.0).map_or(0, |l| l + 1);
                (lo + first, w[first..last.max(first)].to_vec())
            })
            .collect();
        Self { n_bins, filters }
    }

    pub fn n_mels(&self) -> usize {
        self.filters.len()
    }

    pub fn n_bins(&self) -> usize {
        self.n_bins
    }

    /// Indices of filters that are all zero (librosa warns about these).
    pub fn empty_filters(&self) -> Vec<usize> {
        (0..self.filters.len())
            .filter(|&i| self.filters[i].1.is_empty())
            .collect()
    }

    /// Mel band energies of one power spectrum frame into `out` (`n_mels` values).
    pub fn apply(&self, power: &[f32], out: &mut [f32]) {
        for (o, (first, w)) in out.iter_mut().zip(&self.filters) {
            let p = &power[*first..*first + w.len()];
            *o = super::dot(w, p);
        }
    }

    /// Mel band energies of a tile of [`LANES`](super::LANES) power spectra laid out bin
    /// by bin (`tile[bin * LANES + lane]`) into `out` (`out[mel * LANES + lane]`): one
    /// multiply-add of `LANES` frames per filter weight, which vectorises.
    #[inline(always)]
    pub fn apply_tile(&self, tile: &[f32], out: &mut [f32]) {
        use super::LANES;
        for (o, (first, w)) in out.chunks_exact_mut(LANES).zip(&self.filters) {
            let mut acc = [0.0f32; LANES];
            let bins = &tile[first * LANES..(first + w.len()) * LANES];
            for (p, &wj) in bins.chunks_exact(LANES).zip(w) {
                for l in 0..LANES {
                    acc[l] += wj * p[l];
                }
            }
            o.copy_from_slice(&acc);
        }
    }

    /// The dense (n_mels x n_bins) matrix, row-major, for inspection and tests.
    pub fn dense(&self) -> Vec<f32> {
        let mut m = vec![0.0; self.filters.len() * self.n_bins];
        for (i, (first, w)) in self.filters.iter().enumerate() {
            m[i * self.n_bins + first..i * self.n_bins + first + w.len()].copy_from_slice(w);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filterbank computed only between each filter's edges equals the one computed
    /// over every bin (librosa's way), weight for weight, including empty filters.
    #[test]
    fn banded_construction_equals_the_full_rows() {
        for (sr, n_fft, n_mels, fmin, fmax) in [
            (22050, 2048, 128, 0.0, 11025.0),
            (16000, 400, 64, 0.0, 8000.0),
            (16000, 512, 40, 50.0, 7000.0),
            (16000, 256, 128, 0.0, 8000.0),
            (44100, 4096, 40, 20.0, 16000.0),
        ] {
            let fb = MelFilterbank::new(sr, n_fft, n_mels, fmin, fmax);
            let n_bins = n_fft / 2 + 1;
            let mel_f = mel_frequencies(n_mels + 2, fmin, fmax);
            let mut full = vec![0.0f32; n_mels * n_bins];
            for i in 0..n_mels {
                let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
                for k in 0..n_bins {
                    let f = k as f64 * sr as f64 / n_fft as f64;
                    let lower = -(mel_f[i] - f) / (mel_f[i + 1] - mel_f[i]);
                    let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
                    full[i * n_bins + k] = (0.0f64.max(lower.min(upper)) * enorm) as f32;
                }
            }
            assert_eq!(fb.dense(), full, "sr {sr} n_fft {n_fft} n_mels {n_mels}");
            if n_fft == 256 {
                assert!(
                    !fb.empty_filters().is_empty(),
                    "this case has empty filters"
                );
            }
        }
    }
}
