//! The scrolling log-mel spectrogram: each new hop of audio becomes one column (STFT
//! frame → mel → dB → magma) written into a ring texture with `set_partial`, so a frame
//! costs only the columns that arrived since the last one.

use crate::dsp::StftScratch;
use crate::dsp::{MelFilterbank, Stft};

/// Highest frequency shown, Hz (lower when the source's Nyquist frequency is lower).
pub const FMAX_HZ: f32 = 7600.0;
/// Dynamic range shown, dB below the running peak.
const RANGE_DB: f32 = 70.0;
/// Lowest colour reference, dB: quiet speech peaks near it, loud speech at +10..+20.
const PEAK_FLOOR_DB: f32 = -10.0;

/// Incremental spectrogram state for one source rate.
pub struct ScrollingSpectrogram {
    stft: Stft,
    scratch: StftScratch,
    mel: MelFilterbank,
    power: Vec<f32>,
    bands: Vec<f32>,
    n_fft: usize,
    hop: usize,
    /// Samples not yet consumed by a frame (the last frame's overlap plus new audio).
    pending: Vec<f32>,
    /// Columns in the ring (the texture width) and the next one to write.
    pub width: usize,
    pub rows: usize,
    pub next: usize,
    /// Columns written so far.
    pub written: u64,
    /// Colour reference: the loudest band seen lately (decays slowly), dB.
    peak_db: f32,
    fmax: f32,
    image: egui::ColorImage,
    tex: Option<egui::TextureHandle>,
    /// Columns written since the texture was last updated (x positions).
    dirty: Vec<usize>,
}

impl ScrollingSpectrogram {
    /// 64 mel bands from 50 Hz to 7.6 kHz (or Nyquist), 32 ms frames every 10 ms, over
    /// `seconds` of audio at `rate`.
    pub fn new(rate: u32, seconds: f32) -> Self {
        let n_fft = ((rate as f32 * 0.032) as usize).next_power_of_two();
        let hop = (rate / 100).max(1) as usize;
        let fmax = FMAX_HZ.min(rate as f32 / 2.0);
        let rows = 64;
        let stft = Stft::new(n_fft, hop);
        let scratch = stft.scratch();
        let mel = MelFilterbank::new(rate, n_fft, rows, 50.0, fmax as f64);
        let width = (seconds * rate as f32 / hop as f32).round() as usize;
        ScrollingSpectrogram {
            power: vec![0.0; stft.n_bins()],
            bands: vec![0.0; rows],
            stft,
            scratch,
            mel,
            n_fft,
            hop,
            pending: Vec::new(),
            width,
            rows,
            next: 0,
            written: 0,
            peak_db: PEAK_FLOOR_DB,
            fmax,
            image: egui::ColorImage::new([width, rows], vec![egui::Color32::BLACK; width * rows]),
            tex: None,
            dirty: Vec::new(),
        }
    }

    pub fn fmax(&self) -> f32 {
        self.fmax
    }

    /// Consumes audio, computing one column per complete hop.
    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
        let mut used = 0;
        while used + self.n_fft <= self.pending.len() {
            let frame = &self.pending[used..used + self.n_fft];
            self.stft
                .power_of(frame, &mut self.scratch, &mut self.power);
            self.mel.apply(&self.power, &mut self.bands);
            crate::dsp::power_to_db_in_place(&mut self.bands, None);
            let col_max = self.bands.iter().fold(f32::NEG_INFINITY, |m, &b| m.max(b));
            // Follow a louder input at once, a quieter one by 0.05 dB per column (5 dB/s),
            // never below -10 dB (quiet speech), so silence stays dark.
            self.peak_db = col_max.max(self.peak_db - 0.05).max(PEAK_FLOOR_DB);
            let x = self.next;
            for (r, &b) in self.bands.iter().enumerate() {
                let v = (b - (self.peak_db - RANGE_DB)) / RANGE_DB;
                self.image.pixels[(self.rows - 1 - r) * self.width + x] = super::panels::magma(v);
            }
            self.dirty.push(x);
            self.next = (self.next + 1) % self.width;
            self.written += 1;
            used += self.hop;
        }
        self.pending.drain(..used);
    }

    /// Uploads the new columns and returns the texture (created on first use).
    pub fn texture(&mut self, ctx: &egui::Context) -> &egui::TextureHandle {
        let opts = egui::TextureOptions::LINEAR;
        match &mut self.tex {
            None => {
                self.dirty.clear();
                self.tex = Some(ctx.load_texture("spectrogram", self.image.clone(), opts));
            }
            Some(t) => {
                // Contiguous runs of dirty columns go up as one patch each.
                self.dirty.sort_unstable();
                self.dirty.dedup();
                let mut i = 0;
                while i < self.dirty.len() {
                    let start = self.dirty[i];
                    let mut end = start;
                    while i + 1 < self.dirty.len() && self.dirty[i + 1] == end + 1 {
                        i += 1;
                        end += 1;
                    }
                    let w = end - start + 1;
                    let mut patch = Vec::with_capacity(w * self.rows);
                    for r in 0..self.rows {
                        let row = r * self.width;
                        patch.extend_from_slice(&self.image.pixels[row + start..=row + end]);
                    }
                    t.set_partial(
                        [start, 0],
                        egui::ColorImage::new([w, self.rows], patch),
                        opts,
                    );
                    i += 1;
                }
                self.dirty.clear();
            }
        }
        self.tex.as_ref().expect("set above")
    }

    /// The texture's u coordinate of the oldest column: the ring is drawn from here to
    /// the right edge, then from 0 up to here.
    pub fn oldest_u(&self) -> f32 {
        self.next as f32 / self.width as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_per_hop_and_a_tone_lights_its_band() {
        let rate = 16000;
        let mut s = ScrollingSpectrogram::new(rate, 5.0);
        assert_eq!((s.width, s.rows, s.hop, s.n_fft), (500, 64, 160, 512));
        let tone: Vec<f32> = (0..rate as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin())
            .collect();
        // Fed in odd-sized chunks, as audio arrives.
        for c in tone.chunks(333) {
            s.push(c);
        }
        // (16000 - 512) / 160 + 1 = 97 complete frames.
        assert_eq!(s.written, 97);
        assert_eq!(s.next, 97);
        // The brightest row of the last column is the band holding 1 kHz.
        let x = s.next - 1;
        let lum = |r: usize| {
            let p = s.image.pixels[r * s.width + x];
            p.r() as u32 + p.g() as u32 + p.b() as u32
        };
        let brightest = (0..s.rows).max_by_key(|&r| lum(r)).unwrap();
        let band = s.rows - 1 - brightest;
        let mels = crate::dsp::mel_frequencies(s.rows + 2, 50.0, s.fmax as f64);
        assert!(
            mels[band] < 1000.0 && 1000.0 < mels[band + 2],
            "band {band} spans {:.0}-{:.0} Hz",
            mels[band],
            mels[band + 2]
        );
        // The ring wraps.
        for c in tone.chunks(1000).cycle().take(100) {
            s.push(c);
        }
        assert!(s.next < s.width && s.written > s.width as u64);
    }
}
