//! Labelled speech corpora (RAVDESS, EMOVO, EmoDB, SAVEE, TESS, CREMA-D and the generic
//! `labels.csv` folder) read into one label vocabulary, and speaker-aware splits.

mod names;
mod split;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use names::{parse_name, NameParse};
pub use split::{
    holdout, parse_speaker_list, random_split, side_speaker, speaker_folds, speakers_of, Side,
    RANDOM_VALIDATION_SHARE,
};

use crate::labels::map_label;
use crate::{Error, Result};

/// The corpus naming conventions emoscope reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CorpusKind {
    Ravdess,
    Emovo,
    Emodb,
    Savee,
    Tess,
    Cremad,
    /// A `labels.csv` with `path,emotion,speaker` (paths relative to the csv).
    Csv,
}

impl CorpusKind {
    pub fn name(self) -> &'static str {
        match self {
            CorpusKind::Ravdess => "ravdess",
            CorpusKind::Emovo => "emovo",
            CorpusKind::Emodb => "emodb",
            CorpusKind::Savee => "savee",
            CorpusKind::Tess => "tess",
            CorpusKind::Cremad => "cremad",
            CorpusKind::Csv => "csv",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        [
            Self::Ravdess,
            Self::Emovo,
            Self::Emodb,
            Self::Savee,
            Self::Tess,
            Self::Cremad,
            Self::Csv,
        ]
        .into_iter()
        .find(|k| k.name() == s.to_ascii_lowercase())
    }
}

/// One labelled clip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub path: PathBuf,
    /// Index into [`crate::labels::LABELS`].
    pub label: usize,
    /// Corpus-qualified speaker id, e.g. `ravdess_01`, `emovo_f1`.
    pub speaker: String,
    pub corpus: String,
}

/// What reading a corpus found: the clips, and every label or file it could not use.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub clips: Vec<Clip>,
    /// Emotion names with no counterpart among the eight labels, with their counts.
    pub unmapped: BTreeMap<String, usize>,
    /// Files whose names do not follow the convention, with the reason.
    pub bad_names: Vec<(PathBuf, String)>,
}

impl Corpus {
    /// One line per problem, for the user.
    pub fn report(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unmapped
            .iter()
            .map(|(l, n)| {
                format!(
                    "label '{l}' has no counterpart among the eight emotions: {n} clips not used"
                )
            })
            .collect();
        for (p, why) in self.bad_names.iter().take(5) {
            out.push(format!("{}: {why}", p.display()));
        }
        if self.bad_names.len() > 5 {
            out.push(format!(
                "... and {} more files with unreadable names",
                self.bad_names.len() - 5
            ));
        }
        out
    }
}

/// A `KIND=PATH` data argument as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    pub kind: CorpusKind,
    pub path: PathBuf,
}

/// Written back as `KIND=PATH`, as it is given.
impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.kind.name(), self.path.display())
    }
}

impl std::str::FromStr for DataSource {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, p) = s.split_once('=').ok_or_else(|| {
            format!("'{s}' is not KIND=PATH (e.g. ravdess=../shared/data/ravdess)")
        })?;
        let kind = CorpusKind::from_name(k).ok_or_else(|| {
            format!("unknown corpus kind '{k}'; use one of ravdess, emovo, emodb, savee, tess, cremad, csv")
        })?;
        Ok(Self {
            kind,
            path: PathBuf::from(p),
        })
    }
}

fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| Error::Open {
            path: d.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension()
                    .and_then(|x| x.to_str())
                    .map(|x| x.to_ascii_lowercase())
                    .as_deref(),
                Some("wav" | "flac" | "mp3" | "ogg")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a corpus of the given kind from `path` (a folder, or for `csv` a labels.csv).
pub fn load(source: &DataSource) -> Result<Corpus> {
    let path = &source.path;
    if !path.exists() {
        return Err(Error::Corpus {
            path: path.clone(),
            reason: "does not exist; pass the folder that holds the corpus".into(),
        });
    }
    let mut c = Corpus::default();
    if source.kind == CorpusKind::Csv {
        read_csv(path, &mut c)?;
    } else {
        for p in audio_files(path)? {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            match parse_name(source.kind, &stem) {
                NameParse::Clip { emotion, speaker } => match map_label(&emotion) {
                    Some(label) => c.clips.push(Clip {
                        path: p,
                        label,
                        speaker,
                        corpus: source.kind.name().into(),
                    }),
                    None => *c.unmapped.entry(emotion).or_default() += 1,
                },
                NameParse::Bad(why) => c.bad_names.push((p, why)),
            }
        }
    }
    if c.clips.is_empty() {
        return Err(Error::Corpus {
            path: path.clone(),
            reason: format!(
                "no usable {} clips found{}",
                source.kind.name(),
                c.report()
                    .first()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(c)
}

/// The header line of a `labels.csv`.
pub(crate) const CSV_HEADER: &str = "path,emotion,speaker";

/// The rows of a `labels.csv` (`path,emotion,speaker` header, then three fields a line;
/// blank lines skipped) as (1-based line number, path, emotion, speaker).
pub(crate) fn csv_rows<'t>(
    csv: &Path,
    text: &'t str,
) -> Result<Vec<(usize, &'t str, &'t str, &'t str)>> {
    let bad = |reason: String| Error::Corpus {
        path: csv.to_path_buf(),
        reason,
    };
    let base = csv_base(csv)?;
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim().replace(' ', "") == CSV_HEADER => {}
        other => {
            return Err(bad(format!(
                "first line must be '{CSV_HEADER}', found {:?}",
                other.map(|o| o.1).unwrap_or("")
            )))
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 3 {
            return Err(bad(format!(
                "line {}: expected 3 fields, found {}: '{line}'",
                i + 1,
                f.len()
            )));
        }
        confine(&base, f[0])
            .map_err(|why| bad(format!("line {}: path '{}' {why}", i + 1, f[0])))?;
        rows.push((i + 1, f[0], f[1], f[2]));
    }
    Ok(rows)
}

/// The folder a `labels.csv` lists its files relative to, resolved (symlinks followed).
fn csv_base(csv: &Path) -> Result<PathBuf> {
    let dir = match csv.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    dir.canonicalize().map_err(|source| Error::Open {
        path: dir.to_path_buf(),
        source,
    })
}

/// Checks that `rel`, a path read from a file, names something inside `base` (already
/// canonical): relative, without `..`, and not leading outside through a symlink (the
/// file itself or any folder on the way, where they exist). Returns the joined path, or
/// why it is refused.
pub(crate) fn confine(base: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    use std::path::Component;
    if rel.is_empty() {
        return Err("is empty".into());
    }
    if rel.contains('\0') {
        return Err("contains a NUL byte, which no file name can".into());
    }
    let mut names = 0;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(_) => names += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(
                    "goes up with '..'; paths must stay inside the labels.csv's folder".into(),
                )
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; paths must be relative to the labels.csv's folder".into())
            }
        }
    }
    if names == 0 {
        return Err("names the folder itself, not a file in it".into());
    }
    let joined = base.join(rel);
    if joined.file_name().is_some_and(|n| n == "labels.csv") && joined.parent() == Some(base) {
        return Err("names the labels.csv itself".into());
    }
    // The deepest part of the path that exists, resolved: the file itself, or the folder
    // it would be made in.
    let mut probe = joined.as_path();
    loop {
        match probe.canonicalize() {
            Ok(real) if real.starts_with(base) => return Ok(joined),
            Ok(real) => {
                return Err(format!(
                    "leads outside the labels.csv's folder through a symlink (to {})",
                    real.display()
                ))
            }
            Err(_) => match probe.parent() {
                Some(p) if p.starts_with(base) && p != base => probe = p,
                _ => return Ok(joined),
            },
        }
    }
}

fn read_csv(csv: &Path, c: &mut Corpus) -> Result<()> {
    let csv = if csv.is_dir() {
        csv.join("labels.csv")
    } else {
        csv.to_path_buf()
    };
    let text = std::fs::read_to_string(&csv).map_err(|source| Error::Open {
        path: csv.clone(),
        source,
    })?;
    let base = csv.parent().unwrap_or(Path::new("."));
    let corpus_name = base
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("csv")
        .to_string();
    for (_, path, emotion, speaker) in csv_rows(&csv, &text)? {
        match map_label(emotion) {
            Some(label) => c.clips.push(Clip {
                path: base.join(path),
                label,
                speaker: speaker.to_string(),
                corpus: corpus_name.clone(),
            }),
            None => *c.unmapped.entry(emotion.to_string()).or_default() += 1,
        }
    }
    Ok(())
}

/// Reads several sources into one list; speakers stay corpus-qualified.
pub fn load_all(sources: &[DataSource]) -> Result<Corpus> {
    let mut all = Corpus::default();
    for s in sources {
        let c = load(s)?;
        all.clips.extend(c.clips);
        for (k, v) in c.unmapped {
            *all.unmapped.entry(k).or_default() += v;
        }
        all.bad_names.extend(c.bad_names);
    }
    Ok(all)
}
