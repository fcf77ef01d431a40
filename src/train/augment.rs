//! On-the-fly augmentation in the dB-mel domain, where the feature cache lives: gain,
//! additive noise at a random SNR (added as power), time shift (random crop), speed
//! (time stretch) and pitch (mel-axis shift) perturbation, and SpecAugment masks.

use rand::rngs::StdRng;
use rand::Rng;

use crate::features::FeatureMatrix;

/// Which augmentations to apply, with their ranges.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    pub enabled: bool,
    pub gain_db: f32,
    pub noise_prob: f32,
    pub snr_db: (f32, f32),
    pub speed: (f32, f32),
    pub pitch_bins: f32,
    pub freq_masks: usize,
    pub freq_mask_max: usize,
    pub time_masks: usize,
    pub time_mask_max: usize,
}

impl Augment {
    pub const NONE: Augment = Augment {
        enabled: false,
        gain_db: 0.0,
        noise_prob: 0.0,
        snr_db: (0.0, 0.0),
        speed: (1.0, 1.0),
        pitch_bins: 0.0,
        freq_masks: 0,
        freq_mask_max: 0,
        time_masks: 0,
        time_mask_max: 0,
    };

    pub const DEFAULT: Augment = Augment {
        enabled: true,
        gain_db: 10.0,
        noise_prob: 0.5,
        snr_db: (5.0, 30.0),
        speed: (0.9, 1.1),
        pitch_bins: 1.5,
        freq_masks: 2,
        freq_mask_max: 8,
        time_masks: 2,
        time_mask_max: 20,
    };

    /// The same with gain drawn from ±`db`.
    pub fn with_gain_db(self, db: f32) -> Augment {
        Augment {
            gain_db: db,
            ..self
        }
    }

    /// Applies gain, speed, pitch and noise to a whole clip's dB mel.
    pub fn spectral(&self, m: &FeatureMatrix, rng: &mut StdRng) -> FeatureMatrix {
        if !self.enabled {
            return m.clone();
        }
        let speed = rng.random_range(self.speed.0..=self.speed.1);
        let shift = rng.random_range(-self.pitch_bins..=self.pitch_bins);
        let frames = ((m.frames as f32 / speed).round() as usize).max(1);
        let gain = rng.random_range(-self.gain_db..=self.gain_db);
        let mut out = FeatureMatrix {
            rows: m.rows,
            frames,
            data: vec![0.0; m.rows * frames],
        };
        let at = |r: usize, f: f32| -> f32 {
            let f0 = (f.floor() as usize).min(m.frames - 1);
            let f1 = (f0 + 1).min(m.frames - 1);
            let w = f - f0 as f32;
            m.get(r, f0) * (1.0 - w) + m.get(r, f1) * w
        };
        for r in 0..m.rows {
            // Pitch: read band r - shift (fractional), clamped at the edges.
            let src = (r as f32 - shift).clamp(0.0, (m.rows - 1) as f32);
            let (r0, r1) = (
                src.floor() as usize,
                (src.floor() as usize + 1).min(m.rows - 1),
            );
            let wr = src - r0 as f32;
            for f in 0..frames {
                let sf = (f as f32 * speed).min((m.frames - 1) as f32);
                out.data[r * frames + f] = at(r0, sf) * (1.0 - wr) + at(r1, sf) * wr + gain;
            }
        }
        if rng.random::<f32>() < self.noise_prob {
            let snr = rng.random_range(self.snr_db.0..=self.snr_db.1);
            let mean_power =
                out.data.iter().map(|&d| 10f32.powf(d / 10.0)).sum::<f32>() / out.data.len() as f32;
            let tilt = rng.random_range(-1.0f32..=0.0); // white (0) to pinkish (-1) noise
            let base = mean_power / 10f32.powf(snr / 10.0);
            for r in 0..out.rows {
                let band = base * (1.0 + r as f32).powf(tilt) * (out.rows as f32).powf(-tilt) / 2.0;
                for f in 0..out.frames {
                    let i = r * out.frames + f;
                    let n = band * rng.random_range(0.6f32..1.4);
                    out.data[i] = 10.0 * (10f32.powf(out.data[i] / 10.0) + n).max(1e-10).log10();
                }
            }
        }
        out
    }

    /// SpecAugment on the first `rows` rows of a model-input matrix (the spectrogram; a
    /// prosody spec's functionals row after them is left alone): masked regions are set to
    /// 0 (the mean after utterance normalisation).
    pub fn mask(&self, m: &mut FeatureMatrix, rows: usize, rng: &mut StdRng) {
        if !self.enabled {
            return;
        }
        let rows = rows.min(m.rows);
        for _ in 0..self.freq_masks {
            let w = rng.random_range(0..=self.freq_mask_max.min(rows / 4));
            let r0 = rng.random_range(0..=rows - w);
            for r in r0..r0 + w {
                m.data[r * m.frames..(r + 1) * m.frames].fill(0.0);
            }
        }
        for _ in 0..self.time_masks {
            let w = rng.random_range(0..=self.time_mask_max.min(m.frames / 5));
            let f0 = rng.random_range(0..=m.frames - w);
            for r in 0..rows {
                m.data[r * m.frames + f0..r * m.frames + f0 + w].fill(0.0);
            }
        }
    }
}
