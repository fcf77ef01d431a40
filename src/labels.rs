//! The eight emotion labels (RAVDESS order) and the mapping of other corpora's names onto
//! them. The single place the label order lives.

/// The label vocabulary, in RAVDESS order (code 01..08 = index 0..7).
pub const LABELS: [&str; 8] = [
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
];

/// One display colour (RGB) per label, in label order: the window and the reports use
/// the same ones.
pub const LABEL_RGB: [(u8, u8, u8); 8] = [
    (160, 160, 160), // neutral
    (110, 190, 220), // calm
    (250, 200, 60),  // happy
    (80, 110, 200),  // sad
    (220, 60, 50),   // angry
    (150, 90, 190),  // fearful
    (110, 160, 60),  // disgust
    (240, 130, 200), // surprised
];

/// Number of labels.
pub const N_LABELS: usize = LABELS.len();

/// Index of "neutral", the label an enrolment is read in.
pub const NEUTRAL: usize = 0;

/// Index of an exact label name.
pub fn label_index(name: &str) -> Option<usize> {
    LABELS.iter().position(|l| *l == name)
}

/// Index of the largest probability.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// Maps a corpus's emotion name onto the vocabulary, accepting the usual synonyms
/// (anger, fear, anxiety, happiness, joy, sadness, surprise, pleasant surprise, ...).
/// Returns `None` for names with no counterpart (e.g. EmoDB's boredom): the caller
/// reports them, never renames them.
pub fn map_label(raw: &str) -> Option<usize> {
    let n = raw.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let canonical = match n.as_str() {
        "neutral" | "neu" => "neutral",
        "calm" => "calm",
        "happy" | "happiness" | "joy" | "hap" => "happy",
        "sad" | "sadness" | "sa" => "sad",
        "angry" | "anger" | "ang" => "angry",
        "fearful" | "fear" | "anxiety" | "anxiety/fear" | "fea" => "fearful",
        "disgust" | "disgusted" | "dis" => "disgust",
        "surprised" | "surprise" | "pleasant surprise" | "ps" | "pleasant surprised" => "surprised",
        _ => return None,
    };
    label_index(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutral_is_the_label_of_that_name() {
        assert_eq!(LABELS[NEUTRAL], "neutral");
    }

    #[test]
    fn synonyms_map_onto_the_eight_labels() {
        assert_eq!(map_label("anger"), Some(4));
        assert_eq!(map_label("Fear"), Some(5));
        assert_eq!(map_label("anxiety"), Some(5));
        assert_eq!(map_label("happiness"), Some(2));
        assert_eq!(map_label("sadness"), Some(3));
        assert_eq!(map_label("pleasant_surprise"), Some(7));
        assert_eq!(map_label("ps"), Some(7));
        assert_eq!(map_label("calm"), Some(1));
        assert_eq!(map_label("boredom"), None);
        assert_eq!(map_label("contempt"), None);
    }
}
