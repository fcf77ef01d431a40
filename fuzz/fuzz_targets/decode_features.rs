//! Arbitrary bytes as an audio file (the first byte picks the extension the decoder is
//! hinted with), decoded, resampled to the built-in model's rate and featurised window
//! by window as `analyze` does. Every outcome must be Ok or an error; no panic, hang or
//! allocation beyond libFuzzer's -malloc_limit_mb.
#![no_main]

use std::sync::OnceLock;

use emoscope::features::{FeatureExtractor, SpeakerProfile};
use libfuzzer_sys::fuzz_target;

const EXTS: [&str; 6] = ["wav", "flac", "ogg", "mp3", "bin", "WAV"];

fn extractor() -> &'static FeatureExtractor {
    static EX: OnceLock<FeatureExtractor> = OnceLock::new();
    EX.get_or_init(|| {
        let card = emoscope::model::ModelCard::load(std::path::Path::new(
            emoscope::model::BUILTIN_MODEL,
        ))
        .expect("built-in card");
        FeatureExtractor::new(&card.features).expect("built-in features")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join(format!("clip.{}", EXTS[pick as usize % EXTS.len()]));
    std::fs::write(&path, bytes).unwrap();
    let Ok(clip) = emoscope::audio::decode_file(&path) else {
        return;
    };
    let ex = extractor();
    let rate = ex.spec().sample_rate;
    // At most 4 s of input: enough for a window and a half.
    let keep = (clip.sample_rate as usize * 4).min(clip.samples.len());
    let Ok(samples) = emoscope::audio::resample(&clip.samples[..keep], clip.sample_rate, rate)
    else {
        return;
    };
    let win = ex.spec().window_samples();
    let mut speaker = SpeakerProfile::default();
    for a in emoscope::pipeline::window_plan(samples.len(), win, win / 2) {
        let w = &samples[a..(a + win).min(samples.len())];
        if let Ok((m, _)) = emoscope::pipeline::window_input(ex, "fuzz", w, &mut speaker) {
            assert_eq!(m.rows, ex.spec().input_rows());
        }
    }
});
