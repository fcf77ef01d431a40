//! File-name conventions of the acted-emotion corpora: each parser returns the corpus's
//! own emotion name (mapped later) and a corpus-qualified speaker id.

use super::CorpusKind;

/// What a file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameParse {
    Clip { emotion: String, speaker: String },
    Bad(String),
}

fn clip(emotion: &str, speaker: String) -> NameParse {
    NameParse::Clip {
        emotion: emotion.to_string(),
        speaker,
    }
}

/// Parses a file stem (no extension) under `kind`'s convention.
pub fn parse_name(kind: CorpusKind, stem: &str) -> NameParse {
    match kind {
        CorpusKind::Ravdess => ravdess(stem),
        CorpusKind::Emovo => emovo(stem),
        CorpusKind::Emodb => emodb(stem),
        CorpusKind::Savee => savee(stem),
        CorpusKind::Tess => tess(stem),
        CorpusKind::Cremad => cremad(stem),
        CorpusKind::Csv => {
            NameParse::Bad("csv corpora are labelled by labels.csv, not names".into())
        }
    }
}

/// `MM-VC-EE-II-SS-RR-AA`: modality, vocal channel, emotion 01..08, intensity, statement,
/// repetition, actor.
fn ravdess(stem: &str) -> NameParse {
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 7
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return NameParse::Bad("not a RAVDESS name MM-VC-EE-II-SS-RR-AA".into());
    }
    let e: usize = parts[2].parse().unwrap();
    if !(1..=8).contains(&e) {
        return NameParse::Bad(format!("RAVDESS emotion code {} is not 01..08", parts[2]));
    }
    if parts[1] != "01" {
        return NameParse::Bad(format!("vocal channel {} is song, not speech", parts[1]));
    }
    // RAVDESS codes 01..08 are the label order itself.
    clip(
        crate::labels::LABELS[e - 1],
        format!("ravdess_{}", parts[6]),
    )
}

/// `EEE-SS-TT`: dis, gio, neu, pau, rab, sor, tri; speaker f1..m3.
fn emovo(stem: &str) -> NameParse {
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 3 {
        return NameParse::Bad("not an EMOVO name EEE-SS-TT".into());
    }
    let e = match parts[0] {
        "dis" => "disgust",
        "gio" => "joy",
        "neu" => "neutral",
        "pau" => "fear",
        "rab" => "anger",
        "sor" => "surprise",
        "tri" => "sadness",
        other => return NameParse::Bad(format!("EMOVO emotion code '{other}' unknown")),
    };
    clip(e, format!("emovo_{}", parts[1]))
}

/// `SSTTTEV`, e.g. `03a01Fa`: speaker 2 digits, text 3, emotion letter (German initials).
fn emodb(stem: &str) -> NameParse {
    let b = stem.as_bytes();
    if b.len() < 6 || !b[..2].iter().all(u8::is_ascii_digit) {
        return NameParse::Bad("not an EmoDB name like 03a01Fa".into());
    }
    let e = match b[5] {
        b'W' => "anger",
        b'L' => "boredom",
        b'E' => "disgust",
        b'A' => "anxiety",
        b'F' => "happiness",
        b'T' => "sadness",
        b'N' => "neutral",
        other => {
            return NameParse::Bad(format!("EmoDB emotion letter '{}' unknown", other as char))
        }
    };
    clip(e, format!("emodb_{}", &stem[..2]))
}

/// `SP_xNN` (speaker prefix DC/JE/JK/KL) with a, d, f, h, n, sa, su.
fn savee(stem: &str) -> NameParse {
    let Some((spk, rest)) = stem.split_once('_') else {
        return NameParse::Bad("not a SAVEE name like DC_a01".into());
    };
    let code: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let e = match code.as_str() {
        "a" => "anger",
        "d" => "disgust",
        "f" => "fear",
        "h" => "happiness",
        "n" => "neutral",
        "sa" => "sadness",
        "su" => "surprise",
        other => return NameParse::Bad(format!("SAVEE emotion code '{other}' unknown")),
    };
    clip(e, format!("savee_{spk}"))
}

/// `OAF_word_emotion` / `YAF_word_emotion`.
fn tess(stem: &str) -> NameParse {
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.len() < 3 {
        return NameParse::Bad("not a TESS name like OAF_back_angry".into());
    }
    let emotion = parts[2..].join("_").to_ascii_lowercase();
    clip(&emotion, format!("tess_{}", parts[0].to_ascii_uppercase()))
}

/// `1001_DFA_ANG_XX`: actor, sentence, emotion (ANG DIS FEA HAP NEU SAD), level.
fn cremad(stem: &str) -> NameParse {
    let parts: Vec<&str> = stem.split('_').collect();
    if parts.len() != 4 || !parts[0].bytes().all(|b| b.is_ascii_digit()) {
        return NameParse::Bad("not a CREMA-D name like 1001_DFA_ANG_XX".into());
    }
    let e = match parts[2] {
        "ANG" => "anger",
        "DIS" => "disgust",
        "FEA" => "fear",
        "HAP" => "happy",
        "NEU" => "neutral",
        "SAD" => "sad",
        other => return NameParse::Bad(format!("CREMA-D emotion code '{other}' unknown")),
    };
    clip(e, format!("cremad_{}", parts[0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::map_label;

    fn label(kind: CorpusKind, stem: &str) -> (Option<usize>, String) {
        match parse_name(kind, stem) {
            NameParse::Clip { emotion, speaker } => (map_label(&emotion), speaker),
            NameParse::Bad(why) => panic!("{stem}: {why}"),
        }
    }

    #[test]
    fn real_file_names_of_each_corpus() {
        assert_eq!(
            label(CorpusKind::Ravdess, "03-01-05-02-01-01-01"),
            (Some(4), "ravdess_01".into())
        );
        assert_eq!(
            label(CorpusKind::Ravdess, "03-01-02-01-02-02-24"),
            (Some(1), "ravdess_24".into())
        );
        assert_eq!(
            label(CorpusKind::Emovo, "dis-f1-b1"),
            (Some(6), "emovo_f1".into())
        );
        assert_eq!(
            label(CorpusKind::Emovo, "gio-m3-n5"),
            (Some(2), "emovo_m3".into())
        );
        assert_eq!(
            label(CorpusKind::Emodb, "03a01Fa"),
            (Some(2), "emodb_03".into())
        );
        assert_eq!(
            label(CorpusKind::Emodb, "16b10Wb"),
            (Some(4), "emodb_16".into())
        );
        assert_eq!(
            label(CorpusKind::Emodb, "08a02Lc"),
            (None, "emodb_08".into()),
            "boredom has no counterpart"
        );
        assert_eq!(
            label(CorpusKind::Savee, "JK_sa03"),
            (Some(3), "savee_JK".into())
        );
        assert_eq!(
            label(CorpusKind::Savee, "DC_su15"),
            (Some(7), "savee_DC".into())
        );
        assert_eq!(
            label(CorpusKind::Tess, "OAF_back_ps"),
            (Some(7), "tess_OAF".into())
        );
        assert_eq!(
            label(CorpusKind::Tess, "YAF_dog_fear"),
            (Some(5), "tess_YAF".into())
        );
        assert_eq!(
            label(CorpusKind::Cremad, "1001_DFA_ANG_XX"),
            (Some(4), "cremad_1001".into())
        );
    }

    #[test]
    fn bad_names_are_reported_with_a_reason() {
        for (k, s) in [
            (CorpusKind::Ravdess, "03-01-09-01-01-01-01"),
            (CorpusKind::Ravdess, "03-02-01-01-01-01-01"),
            (CorpusKind::Ravdess, "readme"),
            (CorpusKind::Emovo, "xyz-f1-b1"),
            (CorpusKind::Emodb, "03a01Xa"),
            (CorpusKind::Cremad, "1001_DFA_XXX_XX"),
            (CorpusKind::Savee, "nounderscore"),
        ] {
            assert!(
                matches!(parse_name(k, s), NameParse::Bad(_)),
                "{s} should be rejected"
            );
        }
    }
}
