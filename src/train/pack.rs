//! The feature cache: every clip's dB mel spectrogram, computed once per FeatureSpec and
//! stored as 8-bit steps of the 80 dB range (0.31 dB) in one file. A second run (or a
//! machine without the audio) trains from it without touching the DSP.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::{decode_file, resample};
use crate::corpus::Clip;
use crate::dsp::prosody::WAVE_LLDS;
use crate::dsp::TOP_DB;
use crate::features::{FeatureExtractor, FeatureMatrix, FeatureSpec, SpeakerProfile};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"EMOPACK1";

/// One clip's entry in a pack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackClip {
    pub clip: Clip,
    pub frames: usize,
    pub offset: usize,
    /// Maximum dB of the clip; stored value q means `max_db - 80 + q * 80 / 255`.
    pub max_db: f32,
    /// Clip length in samples at the spec's rate.
    pub samples: usize,
    /// Prosody packs: where the clip's waveform descriptors start in the pack's `voice`
    /// (`WAVE_LLDS` rows by `frames`, row-major).
    #[serde(default)]
    pub voice_offset: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    spec: FeatureSpec,
    clips: Vec<PackClip>,
    /// Bytes of dB mel; the waveform descriptors (f32, little-endian) follow them.
    #[serde(default)]
    mel_bytes: Option<usize>,
}

/// dB mel spectrograms of a set of clips under one spec.
pub struct FeaturePack {
    pub spec: FeatureSpec,
    pub clips: Vec<PackClip>,
    data: Vec<u8>,
    /// Waveform prosody descriptors of every clip (prosody specs only).
    voice: Vec<f32>,
    /// The profiles speaker-normalised models see, by [`FeaturePack::profile_key`]
    /// (computed on first use, only when `spec` asks for them; not stored; they use no
    /// labels).
    profiles: OnceLock<BTreeMap<String, SpeakerProfile>>,
    scope: ProfileScope,
}

/// What a clip is speaker-normalised by when a pack feeds a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProfileScope {
    /// The profile of all of the clip's speaker's clips in the pack (a long session).
    #[default]
    Speaker,
    /// The clip's own profile alone (one short file given to `analyze`).
    Clip,
    /// Each speaker's clips split by label, each part its own profile
    /// (`<speaker>~<emotion>`): a session that stays in one emotion.
    #[value(name = "per-emotion")]
    Emotion,
    /// An enrolment: each speaker's clips labelled neutral, the clip's own left out, as if
    /// the speaker had read a few sentences in a neutral voice before the session; read
    /// only by models whose profile is an enrolment (the default, `builtin:encoder_head`).
    #[value(name = "enrol")]
    Enrolment,
}

impl ProfileScope {
    /// The scope's name in `test.json` and `crossfit.json` (its variant's name in lower
    /// case, as those files have always written it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Speaker => "speaker",
            Self::Clip => "clip",
            Self::Emotion => "emotion",
            Self::Enrolment => "enrolment",
        }
    }
}

fn quantise(db: f32, max_db: f32) -> u8 {
    (((db - (max_db - TOP_DB)) / TOP_DB) * 255.0)
        .round()
        .clamp(0.0, 255.0) as u8
}

impl FeaturePack {
    /// Computes the pack for `clips` (decode, resample to the spec's rate, dB mel), in
    /// parallel, reporting progress through `tick`. Files that fail to decode are errors.
    pub fn build(spec: &FeatureSpec, clips: &[Clip], tick: &(dyn Fn() + Sync)) -> Result<Self> {
        let ex = FeatureExtractor::new(spec)?;
        let parts: Vec<(FeatureMatrix, Option<FeatureMatrix>, usize)> = clips
            .par_iter()
            .map(|c| {
                let a = decode_file(&c.path)?;
                let mut x = resample(&a.samples, a.sample_rate, spec.sample_rate)?;
                if x.len() < spec.n_fft {
                    x.resize(spec.n_fft, 0.0);
                }
                let m = ex.db_mel(&c.path.display().to_string(), &x)?;
                let v = ex.voice_llds(&x);
                tick();
                Ok((m, v, x.len()))
            })
            .collect::<Result<_>>()?;
        let mut data = Vec::new();
        let mut voice = Vec::new();
        let mut entries = Vec::with_capacity(clips.len());
        for (c, (m, v, samples)) in clips.iter().zip(parts) {
            let voice_offset = voice.len();
            if let Some(v) = v {
                voice.extend_from_slice(&v.data);
            }
            let max_db = m.data.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let offset = data.len();
            // frame-major: frame f, band r at offset + f * rows + r
            for f in 0..m.frames {
                for r in 0..m.rows {
                    data.push(quantise(m.get(r, f), max_db));
                }
            }
            entries.push(PackClip {
                clip: c.clone(),
                frames: m.frames,
                offset,
                max_db,
                samples,
                voice_offset,
            });
        }
        Ok(Self::assemble(spec.clone(), entries, data, voice))
    }

    /// True when the pack's dB mel was computed with `spec`'s DSP parameters (rate, FFT,
    /// hop, bands, band edges), so it can feed a model of that spec whatever its kind,
    /// window or normalisation.
    pub fn dsp_matches(&self, spec: &FeatureSpec) -> bool {
        let (a, b) = (&self.spec, spec);
        (a.prosody || !b.prosody)
            && a.sample_rate == b.sample_rate
            && a.n_fft == b.n_fft
            && a.hop_length == b.hop_length
            && a.n_mels == b.n_mels
            && a.fmin == b.fmin
            && a.fmax_hz() == b.fmax_hz()
    }

    /// The dB mel matrix (`n_mels x frames`) of clip `i`.
    pub fn db_mel(&self, i: usize) -> FeatureMatrix {
        let c = &self.clips[i];
        let rows = self.spec.n_mels;
        let base = c.max_db - TOP_DB;
        let mut data = vec![0.0f32; rows * c.frames];
        let src = &self.data[c.offset..c.offset + rows * c.frames];
        for f in 0..c.frames {
            for r in 0..rows {
                data[r * c.frames + f] = base + src[f * rows + r] as f32 * (TOP_DB / 255.0);
            }
        }
        FeatureMatrix {
            rows,
            frames: c.frames,
            data,
        }
    }

    /// The waveform prosody descriptors of clip `i` (`None` for a pack without prosody).
    pub fn voice(&self, i: usize) -> Option<FeatureMatrix> {
        if !self.spec.prosody {
            return None;
        }
        let c = &self.clips[i];
        let rows = WAVE_LLDS.len();
        Some(FeatureMatrix {
            rows,
            frames: c.frames,
            data: self.voice[c.voice_offset..c.voice_offset + rows * c.frames].to_vec(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec(&Header {
            spec: self.spec.clone(),
            clips: self.clips.clone(),
            mel_bytes: Some(self.data.len()),
        })
        .expect("serialises");
        write_framed(path, MAGIC, &header, &[&self.data, &f32_bytes(&self.voice)])
    }

    pub fn load(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |r: &str| Error::Format {
            path: path.to_path_buf(),
            reason: format!("not an emoscope feature pack: {r}; delete it and it will be rebuilt"),
        };
        let (head, body) = split_framed(&bytes, MAGIC).map_err(bad)?;
        let header: Header = serde_json::from_slice(head).map_err(|e| bad(&e.to_string()))?;
        let mut data = body.to_vec();
        let need = header
            .clips
            .iter()
            .map(|c| c.offset + c.frames * header.spec.n_mels)
            .max()
            .unwrap_or(0);
        if data.len() < need || header.mel_bytes.is_some_and(|n| n < need || n > data.len()) {
            return Err(bad("truncated data"));
        }
        let tail = data.split_off(header.mel_bytes.unwrap_or(data.len()));
        let voice = f32s_from_bytes(&tail);
        if header.spec.prosody {
            let need = header
                .clips
                .iter()
                .map(|c| c.voice_offset + c.frames * WAVE_LLDS.len())
                .max()
                .unwrap_or(0);
            if voice.len() < need {
                return Err(bad("truncated prosody descriptors"));
            }
        }
        Ok(Self::assemble(header.spec, header.clips, data, voice))
    }

    fn assemble(spec: FeatureSpec, clips: Vec<PackClip>, data: Vec<u8>, voice: Vec<f32>) -> Self {
        Self {
            spec,
            clips,
            data,
            voice,
            profiles: OnceLock::new(),
            scope: ProfileScope::Speaker,
        }
    }

    /// Chooses what clips are normalised by (the speaker's profile by default).
    pub fn set_profile_scope(&mut self, scope: ProfileScope) {
        if scope != self.scope {
            self.scope = scope;
            self.profiles = OnceLock::new();
        }
    }

    fn profile_key(&self, i: usize) -> Cow<'_, str> {
        let c = &self.clips[i].clip;
        if self.spec.enrolment() {
            return Cow::Owned(super::enrolment_key(i, c));
        }
        match self.scope {
            ProfileScope::Speaker => Cow::Borrowed(&c.speaker),
            // No model of a feature pack reads an enrolment (`eval` refuses it): such a
            // clip is read alone, as a model without one would be.
            ProfileScope::Clip | ProfileScope::Enrolment => {
                Cow::Owned(c.path.display().to_string())
            }
            ProfileScope::Emotion => Cow::Owned(format!("{}~{}", c.speaker, c.label)),
        }
    }

    /// The profile clip `i` is normalised by when the pack's spec is speaker-normalised
    /// (`None` otherwise): its speaker's over all of their clips in the pack, or its own
    /// (see [`set_profile_scope`](Self::set_profile_scope)).
    ///
    /// An enrolment model's profile is the speaker's enrolment: their clips labelled
    /// neutral in the pack, a neutral clip's own left out (none for one clip alone).
    pub fn speaker_profile(&self, i: usize) -> Option<&SpeakerProfile> {
        if !self.spec.wants_profile() {
            return None;
        }
        let enrolment = self.spec.enrolment();
        if enrolment && self.scope == ProfileScope::Clip {
            return None;
        }
        let profiles = self.profiles.get_or_init(|| {
            let ex = FeatureExtractor::new(&self.spec).expect("the pack's spec was validated");
            let mut profiles: BTreeMap<String, SpeakerProfile> = BTreeMap::new();
            if enrolment {
                // Each neutral clip's descriptors once, then each key's enrolment from them.
                let neutral: Vec<(usize, FeatureMatrix, Option<FeatureMatrix>)> =
                    (0..self.clips.len())
                        .filter(|&k| self.clips[k].clip.label == crate::labels::NEUTRAL)
                        .map(|k| {
                            let db = self.db_mel(k);
                            let llds = ex.llds(&db, self.voice(k).as_ref());
                            (k, db, llds)
                        })
                        .collect();
                for k in 0..self.clips.len() {
                    let key = self.profile_key(k).into_owned();
                    if profiles.contains_key(&key) {
                        continue;
                    }
                    let c = &self.clips[k].clip;
                    let mut p = SpeakerProfile::default();
                    for (j, db, llds) in &neutral {
                        if super::in_enrolment(k, c, *j, &self.clips[*j].clip) {
                            p.add_window(db, llds.as_ref());
                        }
                    }
                    profiles.insert(key, p);
                }
                return profiles;
            }
            for k in 0..self.clips.len() {
                let p = profiles
                    .entry(self.profile_key(k).into_owned())
                    .or_default();
                let db = self.db_mel(k);
                p.add_window(&db, ex.llds(&db, self.voice(k).as_ref()).as_ref());
            }
            profiles
        });
        Some(&profiles[self.profile_key(i).as_ref()])
    }

    /// Where the pack for `spec` and `clips` is cached under `dir`: a name from a hash of
    /// the spec's DSP parameters and the clips (see [`hash_clips`]).
    pub fn cache_path(dir: &Path, spec: &FeatureSpec, clips: &[Clip]) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (spec.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels).hash(&mut h);
        if spec.prosody {
            "prosody-v2".hash(&mut h);
        }
        spec.fmin.to_bits().hash(&mut h);
        spec.fmax.map(f32::to_bits).hash(&mut h);
        hash_clips(&mut h, clips);
        dir.join(format!("{:016x}.pack", h.finish()))
    }
}

/// How much of the start of each file a cache key reads: a FLAC file's header (with its
/// STREAMINFO, which holds the MD5 of the decoded audio), a WAV file's header and first
/// samples.
const KEY_BYTES: u64 = 4096;

/// Hashes what identifies a set of clips for a cache: paths, labels, speakers, and each
/// file's size and first [`KEY_BYTES`] bytes. Not the modification time: a corpus copied
/// or provisioned afresh (new times, same files) keeps its caches, instead of re-encoding
/// every clip (about 10 minutes for the three corpora on 2 cores).
pub(crate) fn hash_clips(h: &mut impl std::hash::Hasher, clips: &[Clip]) {
    use std::hash::Hash;
    use std::io::Read;
    for c in clips {
        c.path.hash(h);
        c.label.hash(h);
        c.speaker.hash(h);
        // One open per clip: its size and its first bytes.
        let mut head = Vec::new();
        if let Ok(f) = std::fs::File::open(&c.path) {
            if let Ok(m) = f.metadata() {
                m.len().hash(h);
            }
            let _ = f.take(KEY_BYTES).read_to_end(&mut head);
        }
        head.hash(h);
    }
}

/// Writes a cache file: `magic`, the header's length (u64 LE), the JSON header, then
/// `body` (the caller's data), atomically, creating the folder.
pub(crate) fn write_framed(
    path: &Path,
    magic: &[u8; 8],
    header: &[u8],
    body: &[&[u8]],
) -> Result<()> {
    let mut bytes =
        Vec::with_capacity(16 + header.len() + body.iter().map(|b| b.len()).sum::<usize>());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header);
    for b in body {
        bytes.extend_from_slice(b);
    }
    if let Some(d) = path.parent() {
        crate::util::create_dir_all(d)?;
    }
    crate::util::write_atomic(path, &bytes)
}

/// The JSON header and the body of a file [`write_framed`] wrote, or what is wrong with it.
pub(crate) fn split_framed<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
) -> std::result::Result<(&'a [u8], &'a [u8]), &'static str> {
    if bytes.len() < 16 || &bytes[..8] != magic {
        return Err("bad magic");
    }
    let hlen = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let end = usize::try_from(hlen)
        .ok()
        .and_then(|h| h.checked_add(16))
        .filter(|&e| e <= bytes.len())
        .ok_or("short header")?;
    Ok((&bytes[16..end], &bytes[end..]))
}

/// f32 values from their little-endian bytes (a trailing partial value is ignored).
pub(crate) fn f32s_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// Little-endian bytes of `v`.
pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `text` plus a newline to stderr (progress lines for logs that are not terminals).
pub fn log_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use std::hash::Hasher;

    fn key(clips: &[Clip]) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        hash_clips(&mut h, clips);
        h.finish()
    }

    #[test]
    fn a_cache_key_follows_the_files_content_not_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, [1u8; 5000]).unwrap();
        let clips = [Clip {
            path: path.clone(),
            label: 3,
            speaker: "x_1".into(),
            corpus: "x".into(),
        }];
        let first = key(&clips);
        // Copied afresh: same bytes, a new modification time.
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
        assert_eq!(key(&clips), first);
        // Other audio of the same length: a new key.
        let mut other = [1u8; 5000];
        other[100] = 2;
        std::fs::write(&path, other).unwrap();
        assert_ne!(key(&clips), first);
        let mut relabelled = clips.clone();
        relabelled[0].label = 4;
        std::fs::write(&path, [1u8; 5000]).unwrap();
        assert_eq!(key(&clips), first);
        assert_ne!(key(&relabelled), first);
    }
}

#[cfg(test)]
mod scope_tests {
    use super::ProfileScope;
    use clap::ValueEnum;

    /// The names `test.json` and `crossfit.json` hold are those they were written with
    /// before `ProfileScope::name` (the variant's name in lower case), so files already
    /// written still match.
    #[test]
    fn scope_names_are_the_variants_in_lower_case() {
        for s in ProfileScope::value_variants() {
            assert_eq!(s.name(), format!("{s:?}").to_lowercase());
        }
        assert_eq!(ProfileScope::Enrolment.name(), "enrolment");
    }
}
