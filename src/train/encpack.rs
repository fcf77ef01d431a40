//! The encoder cache: every window of every clip through the frozen encoder once, as its
//! pooled vector ([`crate::encoder::Encoder::pooled`]), so heads train in seconds and many
//! variants can be compared. Windows are cut as `analyze` and the live monitor cut them
//! ([`crate::pipeline::window_plan`], 3 s, here every [`PACK_HOP_SECONDS`]), each goes
//! through the same [`FeatureExtractor::window_db_mel`] and encoder as a live window, and
//! carries the voice-activity flag the live path computes for it.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::{decode_file, resample};
use crate::corpus::Clip;
use crate::dsp::Vad;
use crate::encoder::{pooled_len, Encoder};
use crate::features::{FeatureExtractor, FeatureSpec};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"EMOENC01";
/// Seconds between the windows a pack holds of each clip.
pub const PACK_HOP_SECONDS: f32 = 1.0;
/// The most windows a pack file may declare (a file anyone can edit: bounds the allocation).
const MAX_WINDOWS: usize = 1 << 20;

/// `x` played `speed` (0.9 or 1.1) times as fast, pitch with it, plus white noise at 10-25
/// dB below its own power, drawn from `seed`.
fn perturb(x: &[f32], rate: u32, seed: u64) -> Result<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let speed = if rng.random_bool(0.5) { 1.1 } else { 0.9 };
    let mut y = resample(x, rate, (rate as f64 / speed).round() as u32)?;
    let power = y.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / y.len().max(1) as f64;
    let snr_db = rng.random_range(10.0..25.0);
    let sd = (power / 10f64.powf(snr_db / 10.0)).sqrt();
    for v in y.iter_mut() {
        // Box-Muller from two uniforms.
        let (u1, u2): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
        *v += (sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
    }
    Ok(y)
}

/// One window of a clip.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PackWindow {
    pub clip: usize,
    /// First sample, at the spec's rate.
    pub start: usize,
    pub speech: bool,
}

#[derive(Serialize, Deserialize)]
struct Header {
    spec: FeatureSpec,
    clips: Vec<Clip>,
    windows: Vec<PackWindow>,
    dim: usize,
}

/// Pooled encoder vectors of every window of a set of clips.
pub struct EncoderPack {
    pub spec: FeatureSpec,
    pub clips: Vec<Clip>,
    pub windows: Vec<PackWindow>,
    pub dim: usize,
    /// `windows.len() x dim`, row-major.
    pub data: Vec<f32>,
}

/// The spec a cache is built and keyed with: every block of the built-in encoder, at the
/// level `spec` reads its windows (a head of any depth shares it; a calm gate does not enter).
fn full_spec(spec: &FeatureSpec) -> FeatureSpec {
    let mut full = crate::encoder::encoder_spec();
    if let (Some(f), Some(e)) = (full.encoder.as_mut(), spec.encoder.as_ref()) {
        f.level_db = e.level_db;
    }
    full
}

impl EncoderPack {
    /// Encodes every window of `clips` (decoded, resampled to the spec's rate), clips in
    /// parallel, reporting each finished clip through `tick`.
    pub fn build(spec: &FeatureSpec, clips: &[Clip], tick: &(dyn Fn() + Sync)) -> Result<Self> {
        Self::build_augmented(spec, clips, None, tick)
    }

    /// As [`build`](Self::build); with `augment` (a seed) each clip is first changed once:
    /// played 10 % faster or slower (pitch with it) and given white noise at 10-25 dB SNR,
    /// drawn per clip from the seed. Training only; never a test clip.
    pub fn build_augmented(
        spec: &FeatureSpec,
        clips: &[Clip],
        augment: Option<u64>,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Self> {
        let enc_spec = spec.encoder.as_ref().ok_or_else(|| {
            Error::Model("an encoder pack needs a feature spec with an encoder".into())
        })?;
        let enc = Encoder::builtin()?;
        let blocks = enc_spec.blocks;
        let level = enc_spec.level_db;
        let dim = pooled_len(blocks);
        let ex = FeatureExtractor::new(spec)?;
        let win = spec.window_samples();
        let hop = (PACK_HOP_SECONDS * spec.sample_rate as f32).round() as usize;
        let parts: Vec<Vec<(PackWindow, Vec<f32>)>> = clips
            .par_iter()
            .enumerate()
            .map(|(i, c)| {
                let what = c.path.display().to_string();
                let a = decode_file(&c.path)?;
                let mut x = resample(&a.samples, a.sample_rate, spec.sample_rate)?;
                if let Some(seed) = augment {
                    x = perturb(
                        &x,
                        spec.sample_rate,
                        seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    )?;
                }
                let out = crate::pipeline::window_plan(x.len(), win, hop)
                    .into_iter()
                    .map(|start| {
                        let w = &x[start..(start + win).min(x.len())];
                        let speech = Vad::default().is_speech(w, spec.sample_rate);
                        let db = ex.window_db_mel(&what, w)?;
                        let v = enc.pooled_upto(&db, blocks, level)?;
                        Ok((
                            PackWindow {
                                clip: i,
                                start,
                                speech,
                            },
                            v,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                tick();
                Ok(out)
            })
            .collect::<Result<_>>()?;
        let mut windows = Vec::new();
        let mut data = Vec::new();
        for (w, v) in parts.into_iter().flatten() {
            windows.push(w);
            data.extend_from_slice(&v);
        }
        Ok(Self {
            spec: spec.clone(),
            clips: clips.to_vec(),
            windows,
            dim,
            data,
        })
    }

    /// The cached augmented pack (see [`build_augmented`](Self::build_augmented)) of
    /// `clips` under `cache`, built and saved when there is none; its clips are `clips`, in
    /// order, so a clip's index is the same as in the plain pack of the same clips.
    pub fn cached_augmented(
        cache: &Path,
        spec: &FeatureSpec,
        clips: &[Clip],
        seed: u64,
    ) -> Result<Self> {
        use std::hash::{Hash, Hasher};
        let blocks = spec.encoder.as_ref().map_or(0, |e| e.blocks);
        let full = full_spec(spec);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ("encoder-pack-augmented-v1", seed).hash(&mut h);
        serde_json::to_string(&full)
            .expect("serialises")
            .hash(&mut h);
        super::pack::hash_clips(&mut h, clips);
        let path = cache.join(format!("{:016x}.encpack", h.finish()));
        let mut p = match Self::load(&path) {
            Ok(p) => p,
            Err(_) => {
                let bar = indicatif::ProgressBar::new(clips.len() as u64);
                let p = Self::build_augmented(&full, clips, Some(seed), &|| bar.inc(1))?;
                bar.finish_and_clear();
                p.save(&path)?;
                p
            }
        };
        p.keep_blocks(blocks);
        p.spec = spec.clone();
        Ok(p)
    }

    /// Packs of the same clips (perturbed copies under several seeds) as one: every window of
    /// each, in order, clip indices kept. `None` for no packs.
    pub fn concat(packs: Vec<EncoderPack>) -> Option<EncoderPack> {
        let mut it = packs.into_iter();
        let mut first = it.next()?;
        for p in it {
            assert!(
                p.dim == first.dim && p.clips.len() == first.clips.len(),
                "perturbed copies of one set of clips"
            );
            first.windows.extend(p.windows);
            first.data.extend(p.data);
        }
        Some(first)
    }

    /// The vector of window `k`.
    pub fn vector(&self, k: usize) -> &[f32] {
        &self.data[k * self.dim..(k + 1) * self.dim]
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec(&Header {
            spec: self.spec.clone(),
            clips: self.clips.clone(),
            windows: self.windows.clone(),
            dim: self.dim,
        })
        .expect("serialises");
        super::pack::write_framed(path, MAGIC, &header, &[&super::pack::f32_bytes(&self.data)])
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::util::read_bounded(path, 16 << 30)?;
        let bad = |r: &str| Error::Format {
            path: path.to_path_buf(),
            reason: format!("not an emoscope encoder pack: {r}; delete it and it will be rebuilt"),
        };
        let (head, tail) = super::pack::split_framed(&bytes, MAGIC).map_err(bad)?;
        let h: Header = serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
        let blocks = h.spec.encoder.as_ref().map(|e| e.blocks).unwrap_or(0);
        if h.dim != pooled_len(blocks) || h.windows.len() > MAX_WINDOWS {
            return Err(bad("its vector length or window count is out of bounds"));
        }
        if h.windows.iter().any(|w| w.clip >= h.clips.len()) {
            return Err(bad("a window names a clip it does not list"));
        }
        if tail.len() != 4 * h.dim * h.windows.len() {
            return Err(bad("truncated data"));
        }
        let data = super::pack::f32s_from_bytes(tail);
        Ok(Self {
            spec: h.spec,
            clips: h.clips,
            windows: h.windows,
            dim: h.dim,
            data,
        })
    }

    /// Where the pack for `spec` and `clips` is cached under `dir` (a hash of the encoder,
    /// the window and the clips' paths, labels, speakers, sizes and times).
    pub fn cache_path(dir: &Path, spec: &FeatureSpec, clips: &[Clip]) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        "encoder-pack-v1".hash(&mut h);
        serde_json::to_string(spec)
            .expect("serialises")
            .hash(&mut h);
        PACK_HOP_SECONDS.to_bits().hash(&mut h);
        super::pack::hash_clips(&mut h, clips);
        dir.join(format!("{:016x}.encpack", h.finish()))
    }

    /// The cached pack for `spec` and `clips` under `cache`, built (with a progress bar)
    /// and saved when there is none.
    ///
    /// The cache always holds every block of the built-in encoder (one pack serves heads of
    /// any depth and normalisation); the pack returned keeps the blocks `spec` runs.
    pub fn cached(cache: &Path, spec: &FeatureSpec, clips: &[Clip]) -> Result<Self> {
        let blocks = spec.encoder.as_ref().map_or(0, |e| e.blocks);
        let full = full_spec(spec);
        let mut p = Self::cached_full(cache, &full, clips)?;
        p.keep_blocks(blocks);
        p.spec = spec.clone();
        Ok(p)
    }

    /// Drops the representations past `blocks` from every vector.
    fn keep_blocks(&mut self, blocks: usize) {
        let dim = pooled_len(blocks);
        if dim >= self.dim {
            return;
        }
        let old = self.dim;
        self.data = self
            .data
            .chunks_exact(old)
            .flat_map(|v| v[..dim].iter().copied())
            .collect();
        self.dim = dim;
    }

    fn cached_full(cache: &Path, spec: &FeatureSpec, clips: &[Clip]) -> Result<Self> {
        let path = Self::cache_path(cache, spec, clips);
        if path.exists() {
            if let Ok(p) = Self::load(&path) {
                return Ok(p);
            }
        }
        let bar = indicatif::ProgressBar::new(clips.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "encoding clips {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]",
            )
            .expect("template"),
        );
        let p = Self::build(spec, clips, &|| bar.inc(1))?;
        bar.finish_and_clear();
        p.save(&path)?;
        let _ = writeln!(
            std::io::stderr(),
            "encoder pack: {} windows of {} clips cached in {}",
            p.windows.len(),
            clips.len(),
            path.display()
        );
        Ok(p)
    }

    /// Writes `X.npy` (windows x dim), and `windows.csv` (clip path, corpus, speaker,
    /// label, start, speech) into `dir`, for analysis outside emoscope.
    pub fn export(&self, dir: &Path) -> Result<()> {
        crate::util::create_dir_all(dir)?;
        crate::npy::write_npy_f32(
            &dir.join("X.npy"),
            &[self.windows.len(), self.dim],
            &self.data,
        )?;
        let mut csv = String::from("path,corpus,speaker,label,start,speech\n");
        for w in &self.windows {
            let c = &self.clips[w.clip];
            csv += &format!(
                "{},{},{},{},{},{}\n",
                c.path.display(),
                c.corpus,
                c.speaker,
                crate::labels::LABELS[c.label],
                w.start,
                u8::from(w.speech)
            );
        }
        crate::util::write_atomic(&dir.join("windows.csv"), csv.as_bytes())
    }
}
