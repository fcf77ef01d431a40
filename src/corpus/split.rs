//! Speaker-aware splits: named speakers held out, or k folds of whole speakers. A speaker
//! is never on both sides. The one exception is [`random_split`], the protocol of papers
//! that split clips at random (speaker-dependent), kept to compare with them.

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

/// Where [`random_split`] puts a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Train,
    Validation,
    Test,
}

/// Share of the clips left after the test draw that validate (pick the epoch, fit the
/// temperature) in a random split.
pub const RANDOM_VALIDATION_SHARE: f64 = 0.1;

/// A seeded random split of clips, **speaker-dependent**: the same speakers are on both
/// sides. Within each label, the clips (in their given order) are shuffled by a generator
/// seeded with `seed`; the first `round(fraction * n)` are test, then
/// [`RANDOM_VALIDATION_SHARE`] of the rest validation, the rest training. The same clips,
/// fraction and seed always give the same sides.
pub fn random_split(clips: &[Clip], fraction: f64, seed: u64) -> Result<Vec<Side>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::param(
            "split",
            fraction,
            "the test fraction must be between 0 and 1, e.g. random:0.2:42",
        ));
    }
    let mut sides = vec![Side::Train; clips.len()];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let labels: BTreeSet<usize> = clips.iter().map(|c| c.label).collect();
    for label in labels {
        let mut idx: Vec<usize> = (0..clips.len())
            .filter(|&i| clips[i].label == label)
            .collect();
        idx.shuffle(&mut rng);
        let n_test = (fraction * idx.len() as f64).round() as usize;
        let n_val = (RANDOM_VALIDATION_SHARE * (idx.len() - n_test) as f64).round() as usize;
        for (k, &i) in idx.iter().enumerate() {
            sides[i] = if k < n_test {
                Side::Test
            } else if k < n_test + n_val {
                Side::Validation
            } else {
                Side::Train
            };
        }
    }
    Ok(sides)
}

/// The pseudo-speaker a clip of `speaker` on `side` is filed under in a random split
/// (`ravdess_01~test`), so the speaker-based training code keeps each side apart.
pub fn side_speaker(speaker: &str, side: Side) -> String {
    match side {
        Side::Train => speaker.to_string(),
        Side::Validation => format!("{speaker}~val"),
        Side::Test => format!("{speaker}~test"),
    }
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
    fn a_random_split_is_seeded_stratified_and_keeps_each_clip_on_one_side() {
        let c = clips();
        let a = random_split(&c, 0.2, 7).unwrap();
        assert_eq!(
            a,
            random_split(&c, 0.2, 7).unwrap(),
            "same seed, same sides"
        );
        assert_ne!(
            a,
            random_split(&c, 0.2, 8).unwrap(),
            "another seed, other sides"
        );
        assert_eq!(a.len(), c.len(), "every clip on exactly one side");
        // Per label: 20 % of the 24 RAVDESS clips (+ EMOVO's six neutral ones) are test.
        for label in 0..8 {
            let n = c.iter().filter(|x| x.label == label).count();
            let test = (0..c.len())
                .filter(|&i| c[i].label == label && a[i] == Side::Test)
                .count();
            assert_eq!(test, (0.2 * n as f64).round() as usize, "label {label}");
        }
        let n_test = a.iter().filter(|s| **s == Side::Test).count();
        let n_val = a.iter().filter(|s| **s == Side::Validation).count();
        assert!(n_test > 0 && n_val > 0 && n_test + n_val < c.len());
        // The same speakers on both sides: speaker-dependent by construction.
        let test_speakers: BTreeSet<_> = (0..c.len())
            .filter(|&i| a[i] == Side::Test)
            .map(|i| &c[i].speaker)
            .collect();
        let train_speakers: BTreeSet<_> = (0..c.len())
            .filter(|&i| a[i] == Side::Train)
            .map(|i| &c[i].speaker)
            .collect();
        assert!(test_speakers.intersection(&train_speakers).count() > 10);
        assert_eq!(side_speaker("ravdess_01", Side::Test), "ravdess_01~test");
        assert!(random_split(&c, 1.0, 7).is_err());
        assert!(random_split(&c, 0.0, 7).is_err());
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
