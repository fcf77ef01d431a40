//! Speaker-aware splits: named speakers held out, or k folds of whole speakers. A speaker
//! is never on both sides.

use std::collections::BTreeSet;

use super::Clip;
use crate::{Error, Result};

/// Sorted distinct speakers of `clips`.
pub fn speakers_of(clips: &[Clip]) -> Vec<String> {
    clips
        .iter()
        .map(|c| c.speaker.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Parses `ravdess:1,2;emovo:f1` (or plain ids such as `ravdess_01`) into speaker ids.
/// RAVDESS numbers are zero-padded to match file names.
pub fn parse_speaker_list(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for group in s.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        match group.split_once(':') {
            Some((corpus, ids)) => {
                for id in ids.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let id = if corpus == "ravdess" {
                        let n: u32 = id.parse().map_err(|_| {
                            Error::param("test-speakers", id, "RAVDESS actors are numbers 1..24")
                        })?;
                        format!("{n:02}")
                    } else {
                        id.to_string()
                    };
                    out.push(format!("{corpus}_{id}"));
                }
            }
            None => out.extend(group.split(',').map(|x| x.trim().to_string())),
        }
    }
    if out.is_empty() {
        return Err(Error::param(
            "test-speakers",
            s,
            "names no speaker; use e.g. ravdess:1,2",
        ));
    }
    Ok(out)
}

/// Indices of (train, test) clips with the `test` speakers held out. Every named speaker
/// must exist in `clips`.
pub fn holdout(clips: &[Clip], test: &[String]) -> Result<(Vec<usize>, Vec<usize>)> {
    let known = speakers_of(clips);
    for t in test {
        if !known.contains(t) {
            return Err(Error::param(
                "test-speakers",
                t,
                format!(
                    "no clip has this speaker; known speakers: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let (te, tr): (Vec<usize>, Vec<usize>) =
        (0..clips.len()).partition(|&i| test.contains(&clips[i].speaker));
    Ok((tr, te))
}

/// `k` folds of whole speakers: each corpus's sorted speakers are cut into `k` contiguous
/// blocks (so RAVDESS actors 1-4, 5-8, ... keep both genders together) and block `i` of
/// every corpus forms fold `i`.
pub fn speaker_folds(clips: &[Clip], k: usize) -> Result<Vec<Vec<String>>> {
    let corpora: BTreeSet<&str> = clips.iter().map(|c| c.corpus.as_str()).collect();
    let mut folds = vec![Vec::new(); k];
    for corpus in corpora {
        let spk: Vec<String> = speakers_of(clips)
            .into_iter()
            .filter(|s| clips.iter().any(|c| &c.speaker == s && c.corpus == corpus))
            .collect();
        if spk.len() < k {
            return Err(Error::param(
                "folds",
                k,
                format!("corpus {corpus} has only {} speakers", spk.len()),
            ));
        }
        for (i, s) in spk.iter().enumerate() {
            folds[i * k / spk.len()].push(s.clone());
        }
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn clips() -> Vec<Clip> {
        let mut v = Vec::new();
        for a in 1..=24 {
            for e in 0..8 {
                v.push(Clip {
                    path: PathBuf::from(format!("{a}-{e}")),
                    label: e,
                    speaker: format!("ravdess_{a:02}"),
                    corpus: "ravdess".into(),
                });
            }
        }
        for s in ["f1", "f2", "f3", "m1", "m2", "m3"] {
            v.push(Clip {
                path: PathBuf::from(s),
                label: 0,
                speaker: format!("emovo_{s}"),
                corpus: "emovo".into(),
            });
        }
        v
    }

    #[test]
    fn holdout_never_shares_a_speaker() {
        let c = clips();
        let test = parse_speaker_list("ravdess:1,2").unwrap();
        assert_eq!(test, vec!["ravdess_01", "ravdess_02"]);
        let (tr, te) = holdout(&c, &test).unwrap();
        assert_eq!(te.len(), 16);
        assert_eq!(tr.len() + te.len(), c.len());
        let trs: BTreeSet<_> = tr.iter().map(|&i| &c[i].speaker).collect();
        assert!(te.iter().all(|&i| !trs.contains(&c[i].speaker)));
        assert!(holdout(&c, &["ravdess_99".into()]).is_err());
    }

    #[test]
    fn six_folds_cover_every_speaker_once_with_four_actors_each() {
        let c = clips();
        let folds = speaker_folds(&c, 6).unwrap();
        assert_eq!(
            folds[0],
            vec![
                "emovo_f1",
                "ravdess_01",
                "ravdess_02",
                "ravdess_03",
                "ravdess_04"
            ]
        );
        let all: Vec<&String> = folds.iter().flatten().collect();
        assert_eq!(all.len(), 30);
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 30);
        for f in &folds {
            assert_eq!(f.iter().filter(|s| s.starts_with("ravdess")).count(), 4);
        }
    }
}
