//! The user's own labelled clips: a folder of WAV files and a `labels.csv` in the generic
//! corpus format, kept by the training mode. Every write is atomic, so a crash or a full
//! disk never corrupts earlier clips or the list.

use std::path::{Path, PathBuf};

use crate::labels::{map_label, LABELS};
use crate::util::write_atomic;
use crate::{Error, Result};

/// One recorded clip: its file (relative to the folder), label index and speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClip {
    pub file: String,
    pub label: usize,
    pub speaker: String,
}

/// A folder of labelled clips.
#[derive(Debug)]
pub struct ClipStore {
    pub dir: PathBuf,
    pub clips: Vec<StoredClip>,
    /// Complete recordings in the folder, named as this store names them
    /// (`<emotion>-<stamp>-<nn>.wav`), that the list does not hold: a recording or import
    /// stopped between writing the clip and listing it. Found on opening; the user lists
    /// them ([`ClipStore::list_unlisted`]) or deletes them ([`ClipStore::delete_unlisted`]).
    pub unlisted: Vec<String>,
    /// Stale temporaries (`.tmp*` left by a write that was killed) removed on opening.
    pub removed_temporaries: usize,
}

/// A temporary file older than this is left from a killed write, not one in progress.
pub const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `path` is a whole RIFF/WAVE file: its header's length is the file's length (a
/// file cut short by a crash or a full disk is not). Reads 12 bytes.
fn is_complete_wav(path: &Path, len: u64) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok()
        && &head[0..4] == b"RIFF"
        && &head[8..12] == b"WAVE"
        && u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]])) + 8 == len
}

/// The label a recording's file name starts with (`sad-20261206-101500-00.wav` -> sad).
fn label_of_name(file: &str) -> Option<usize> {
    let stem = file.strip_suffix(".wav")?;
    let (label, rest) = stem.split_once('-')?;
    let label = LABELS.iter().position(|l| *l == label)?;
    rest.bytes()
        .all(|b| b.is_ascii_digit() || b == b'-')
        .then_some(label)
}

/// A speaker name as the list can hold it (trimmed, non-empty, no comma or line break).
fn checked_speaker(speaker: &str) -> Result<&str> {
    let speaker = speaker.trim();
    if speaker.is_empty() || speaker.contains([',', '\n', '\r']) {
        return Err(Error::param(
            "speaker",
            speaker,
            "must be a non-empty name without commas",
        ));
    }
    Ok(speaker)
}

impl ClipStore {
    /// Opens (creating if needed) the folder and reads its `labels.csv`. A line with an
    /// emotion outside the eight labels is an error naming it: the list is never
    /// rewritten without it.
    pub fn open(dir: &Path) -> Result<Self> {
        crate::util::create_dir_all(dir)?;
        let mut store = ClipStore {
            dir: dir.to_path_buf(),
            clips: Vec::new(),
            unlisted: Vec::new(),
            removed_temporaries: 0,
        };
        let csv = store.csv_path();
        if !csv.exists() {
            store.scan_leftovers();
            return Ok(store);
        }
        let text = std::fs::read_to_string(&csv).map_err(|source| Error::Open {
            path: csv.clone(),
            source,
        })?;
        for (line, file, emotion, speaker) in super::csv_rows(&csv, &text)? {
            let label = map_label(emotion).ok_or_else(|| Error::Corpus {
                path: csv.clone(),
                reason: format!(
                    "line {line}: unknown emotion '{emotion}'; use one of {}",
                    LABELS.join(", ")
                ),
            })?;
            store.clips.push(StoredClip {
                file: file.to_string(),
                label,
                speaker: speaker.to_string(),
            });
        }
        store.scan_leftovers();
        Ok(store)
    }

    /// Removes stale temporaries and finds complete, unlisted recordings. Only plain files
    /// directly in the folder are looked at (never a symlink or a subfolder); a folder
    /// that cannot be listed is left as it is.
    fn scan_leftovers(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = std::time::SystemTime::now();
        let mut unlisted = Vec::new();
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if name.starts_with(".tmp") {
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= STALE_TEMPORARY);
                if stale && std::fs::remove_file(e.path()).is_ok() {
                    self.removed_temporaries += 1;
                }
            } else if label_of_name(&name).is_some()
                && !self.clips.iter().any(|c| c.file == name)
                && is_complete_wav(&e.path(), meta.len())
            {
                unlisted.push(name);
            }
        }
        unlisted.sort();
        self.unlisted = unlisted;
    }

    /// Lists every unlisted recording under the label its name starts with and `speaker`.
    /// On failure the list on disk and in memory is unchanged.
    pub fn list_unlisted(&mut self, speaker: &str) -> Result<usize> {
        let speaker = checked_speaker(speaker)?;
        let n = self.unlisted.len();
        let before = self.clips.len();
        for file in &self.unlisted {
            self.clips.push(StoredClip {
                file: file.clone(),
                label: label_of_name(file).expect("unlisted names start with a label"),
                speaker: speaker.to_string(),
            });
        }
        if let Err(e) = self.write_csv() {
            self.clips.truncate(before);
            return Err(e);
        }
        self.unlisted.clear();
        Ok(n)
    }

    /// Deletes every unlisted recording (each still a plain file directly in the folder;
    /// one that became a symlink since is left alone, and the error names it).
    pub fn delete_unlisted(&mut self) -> Result<usize> {
        let mut n = 0;
        while let Some(file) = self.unlisted.first().cloned() {
            let path = self.dir.join(&file);
            let plain = path.symlink_metadata().is_ok_and(|m| m.is_file());
            if !plain {
                return Err(Error::Corpus {
                    path,
                    reason: "is no longer a plain file in the clip folder; it was left alone"
                        .into(),
                });
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Write { path, source: e })
                }
                _ => {}
            }
            self.unlisted.remove(0);
            n += 1;
        }
        crate::util::sync_dir(&self.dir)?;
        Ok(n)
    }

    pub fn csv_path(&self) -> PathBuf {
        self.dir.join("labels.csv")
    }

    /// The file of clip `i`, checked again against the folder (a symlink may have appeared
    /// since the list was read): an error names it if it now leads outside.
    pub fn path_of(&self, i: usize) -> Result<PathBuf> {
        let file = &self.clips[i].file;
        let base = self.dir.canonicalize().map_err(|source| Error::Open {
            path: self.dir.clone(),
            source,
        })?;
        super::confine(&base, file).map_err(|why| Error::Corpus {
            path: self.csv_path(),
            reason: format!("clip '{file}' {why}; it was left alone"),
        })
    }

    fn write_csv(&self) -> Result<()> {
        let mut text = String::from(super::CSV_HEADER);
        text.push('\n');
        for c in &self.clips {
            text.push_str(&format!("{},{},{}\n", c.file, LABELS[c.label], c.speaker));
        }
        write_atomic(&self.csv_path(), text.as_bytes())
    }

    /// Saves a recording as a new 16-bit WAV clip and lists it. On any failure (e.g. a
    /// full disk) nothing changes on disk and the caller still holds the samples.
    pub fn add(
        &mut self,
        samples: &[f32],
        rate: u32,
        label: usize,
        speaker: &str,
    ) -> Result<usize> {
        if label >= LABELS.len() {
            return Err(Error::param("label", label, "must be 0..7"));
        }
        let speaker = checked_speaker(speaker)?;
        if samples.is_empty() {
            return Err(Error::param(
                "recording",
                "0 samples",
                "nothing was recorded",
            ));
        }
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let mut n = 0;
        let file = loop {
            let f = format!("{}-{stamp}-{n:02}.wav", LABELS[label]);
            if !self.dir.join(&f).exists() && !self.clips.iter().any(|c| c.file == f) {
                break f;
            }
            n += 1;
        };
        let path = self.dir.join(&file);
        write_atomic(&path, &crate::audio::wav_i16_bytes(samples, rate))?;
        self.clips.push(StoredClip {
            file,
            label,
            speaker: speaker.to_string(),
        });
        if let Err(e) = self.write_csv() {
            self.clips.pop();
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(self.clips.len() - 1)
    }

    /// Changes a clip's label (the list is rewritten atomically; on failure it is unchanged).
    pub fn relabel(&mut self, i: usize, label: usize) -> Result<()> {
        let old = self.clips[i].label;
        self.clips[i].label = label;
        self.write_csv().inspect_err(|_| self.clips[i].label = old)
    }

    /// Removes a clip from the list, then its file. A file that leads outside the folder
    /// (an absolute path, `..` or a symlink put there after the list was read) is never
    /// touched: the error names it and the list is unchanged.
    pub fn delete(&mut self, i: usize) -> Result<()> {
        let path = self.path_of(i)?;
        let c = self.clips.remove(i);
        if let Err(e) = self.write_csv() {
            self.clips.insert(i, c);
            return Err(e);
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Write { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Clips per label, in label order.
    pub fn counts(&self) -> [usize; LABELS.len()] {
        let mut n = [0; LABELS.len()];
        for c in &self.clips {
            n[c.label] += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize) -> Vec<f32> {
        (0..n).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect()
    }

    #[test]
    fn add_relabel_delete_round_trip_through_labels_csv() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ClipStore::open(dir.path()).unwrap();
        let a = s.add(&tone(16000), 16000, 4, "me").unwrap();
        let b = s.add(&tone(8000), 16000, 2, "me").unwrap();
        s.relabel(b, 3).unwrap();
        let text = std::fs::read_to_string(s.csv_path()).unwrap();
        assert!(text.starts_with("path,emotion,speaker\n"));
        assert!(
            text.contains(",angry,me\n") && text.contains(",sad,me\n"),
            "{text}"
        );
        let again = ClipStore::open(dir.path()).unwrap();
        assert_eq!(again.clips, s.clips);
        // The csv is readable as a corpus with the same labels.
        let c = crate::corpus::load(&crate::corpus::DataSource {
            kind: crate::corpus::CorpusKind::Csv,
            path: s.csv_path(),
        })
        .unwrap();
        assert_eq!(
            c.clips.iter().map(|c| c.label).collect::<Vec<_>>(),
            vec![4, 3]
        );
        let decoded = crate::audio::decode_file(&s.path_of(a).unwrap()).unwrap();
        assert_eq!(decoded.samples.len(), 16000);
        let gone = s.path_of(a).unwrap();
        s.delete(a).unwrap();
        assert!(!gone.exists());
        assert_eq!(s.clips.len(), 1);
        assert_eq!(ClipStore::open(dir.path()).unwrap().clips.len(), 1);
    }

    #[test]
    fn an_unknown_label_in_the_csv_is_named_and_nothing_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("labels.csv");
        let text = "path,emotion,speaker\na.wav,angry,me\nb.wav,boredom,me\n";
        std::fs::write(&csv, text).unwrap();
        let e = ClipStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 3: unknown emotion 'boredom'"), "{e}");
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
    }

    #[test]
    fn a_failed_write_keeps_earlier_clips_and_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ClipStore::open(dir.path()).unwrap();
        s.add(&tone(4000), 16000, 0, "me").unwrap();
        let before = std::fs::read_to_string(s.csv_path()).unwrap();
        // Simulate an unwritable folder (as a full disk would be): a file where the
        // folder was, so no new file can be created in it.
        let real = s.dir.clone();
        s.dir = real.join("labels.csv").join("not-a-dir");
        let e = s.add(&tone(4000), 16000, 1, "me").unwrap_err();
        assert!(matches!(e, Error::Write { .. }), "{e}");
        s.dir = real;
        assert_eq!(s.clips.len(), 1);
        assert_eq!(std::fs::read_to_string(s.csv_path()).unwrap(), before);
        assert_eq!(ClipStore::open(dir.path()).unwrap().clips.len(), 1);
    }

    /// Sets a file's modification time `secs` seconds into the past.
    fn age(path: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn opening_offers_unlisted_recordings_and_removes_stale_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ClipStore::open(dir.path()).unwrap();
        s.add(&tone(4000), 16000, 4, "me").unwrap();
        // A recording killed after its file was written and before it was listed.
        let orphan = "sad-20261206-101500-00.wav";
        crate::audio::write_wav_i16(&dir.path().join(orphan), &tone(8000), 16000).unwrap();
        // The same cut short (a disk that filled up), a file of someone else's, a
        // temporary of a write killed long ago and one of a write in progress.
        let bytes = crate::audio::wav_i16_bytes(&tone(8000), 16000);
        std::fs::write(
            dir.path().join("angry-20261206-101500-00.wav"),
            &bytes[..900],
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.wav"), &bytes).unwrap();
        std::fs::write(dir.path().join(".tmpAbC123"), b"half a clip").unwrap();
        age(&dir.path().join(".tmpAbC123"), 3600);
        std::fs::write(dir.path().join(".tmpNow456"), b"being written").unwrap();

        let mut s = ClipStore::open(dir.path()).unwrap();
        assert_eq!(s.clips.len(), 1);
        assert_eq!(s.unlisted, vec![orphan.to_string()]);
        assert_eq!(s.removed_temporaries, 1);
        assert!(!dir.path().join(".tmpAbC123").exists());
        assert!(
            dir.path().join(".tmpNow456").exists(),
            "a write in progress is left alone"
        );

        assert_eq!(s.list_unlisted("me").unwrap(), 1);
        let again = ClipStore::open(dir.path()).unwrap();
        assert_eq!(again.clips.len(), 2);
        assert_eq!(
            (again.clips[1].file.as_str(), again.clips[1].label),
            (orphan, 3)
        );
        assert!(again.unlisted.is_empty());
        let decoded = crate::audio::decode_file(&again.path_of(1).unwrap()).unwrap();
        assert_eq!(decoded.samples.len(), 8000);

        // The other choice: delete them.
        let orphan2 = "happy-20261206-101501-00.wav";
        crate::audio::write_wav_i16(&dir.path().join(orphan2), &tone(800), 16000).unwrap();
        let mut s = ClipStore::open(dir.path()).unwrap();
        assert_eq!(s.unlisted, vec![orphan2.to_string()]);
        assert_eq!(s.delete_unlisted().unwrap(), 1);
        assert!(!dir.path().join(orphan2).exists());
        assert!(
            dir.path().join("notes.wav").exists(),
            "only its own recordings are offered"
        );
        assert_eq!(ClipStore::open(dir.path()).unwrap().clips.len(), 2);
    }

    #[test]
    fn bad_speaker_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ClipStore::open(dir.path()).unwrap();
        let e = s.add(&tone(100), 16000, 0, "a,b").unwrap_err().to_string();
        assert!(e.contains("speaker"), "{e}");
        assert!(s.clips.is_empty());
    }
}
