//! Voice activity: does a window hold speech? Frame energies against the window's own
//! noise floor and an absolute floor, so silence and steady low noise say "no speech".

/// Energy-based voice activity decision for one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vad {
    /// Frames quieter than this (dBFS RMS) never count as speech.
    pub abs_floor_db: f32,
    /// A speech frame must exceed the window's noise floor (10th percentile) by this much.
    pub margin_db: f32,
    /// Share of speech frames needed to call the window speech.
    pub min_active: f32,
}

impl Default for Vad {
    fn default() -> Self {
        Self {
            abs_floor_db: -65.0,
            margin_db: 12.0,
            min_active: 0.1,
        }
    }
}

impl Vad {
    /// Per-frame RMS level in dBFS over 25 ms frames with a 10 ms hop.
    pub fn frame_levels(samples: &[f32], sample_rate: u32) -> Vec<f32> {
        let frame = (sample_rate as usize * 25 / 1000).max(1);
        let hop = (sample_rate as usize / 100).max(1);
        if samples.len() < frame {
            return vec![crate::audio::dbfs(crate::audio::rms(samples))];
        }
        (0..=(samples.len() - frame) / hop)
            .map(|i| crate::audio::dbfs(crate::audio::rms(&samples[i * hop..i * hop + frame])))
            .collect()
    }

    /// Share of frames judged speech (0..1).
    pub fn active_fraction(&self, samples: &[f32], sample_rate: u32) -> f32 {
        let mut lv = Self::frame_levels(samples, sample_rate);
        let n = lv.len();
        let mut sorted = lv.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let floor = sorted[n / 10];
        let thr = (floor + self.margin_db).max(self.abs_floor_db);
        lv.retain(|&l| l > thr);
        lv.len() as f32 / n as f32
    }

    /// True when the window holds speech.
    pub fn is_speech(&self, samples: &[f32], sample_rate: u32) -> bool {
        self.active_fraction(samples, sample_rate) >= self.min_active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, amp: f32) -> Vec<f32> {
        let mut s = 1u32;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                amp * ((s >> 8) as f32 / 8388608.0 - 1.0)
            })
            .collect()
    }

    #[test]
    fn silence_and_steady_noise_are_not_speech() {
        let v = Vad::default();
        assert!(!v.is_speech(&vec![0.0; 48000], 16000));
        assert!(
            !v.is_speech(&noise(48000, 0.01), 16000),
            "steady -40 dBFS noise"
        );
        assert!(!v.is_speech(&noise(48000, 0.0003), 16000), "very low noise");
    }

    #[test]
    fn bursts_over_a_quiet_floor_are_speech() {
        let mut x = noise(48000, 0.001);
        for (i, s) in x.iter_mut().enumerate().skip(8000).take(16000) {
            *s += 0.2 * (2.0 * std::f32::consts::PI * 180.0 * i as f32 / 16000.0).sin();
        }
        assert!(Vad::default().is_speech(&x, 16000));
    }
}
