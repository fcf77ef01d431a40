//! Feature parity with librosa 0.11: power mel, dB mel and MFCC for every case that
//! scripts/make_fixtures.py generated (five parameter sets, synthetic signals including
//! silence, and a real RAVDESS clip read from ../shared/data).

mod common;

use std::path::{Path, PathBuf};

use emoscope::audio::decode_file;
use emoscope::dsp::power_to_db;
use emoscope::features::{FeatureExtractor, FeatureKind, FeatureSpec};
use emoscope::npy::read_npy_f32;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/librosa")
}

pub fn shared_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// max |ours - reference| / max |reference| (absolute error when the reference is all zero).
fn rel_err(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "length differs");
    let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = ours
        .iter()
        .zip(reference)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

fn spec_of(case: &serde_json::Value, kind: FeatureKind) -> FeatureSpec {
    FeatureSpec {
        kind,
        sample_rate: case["sr"].as_u64().unwrap() as u32,
        n_fft: case["n_fft"].as_u64().unwrap() as usize,
        hop_length: case["hop_length"].as_u64().unwrap() as usize,
        n_mels: case["n_mels"].as_u64().unwrap() as usize,
        n_mfcc: case["n_mfcc"].as_u64().unwrap() as usize,
        fmin: case["fmin"].as_f64().unwrap() as f32,
        fmax: case["fmax"].as_f64().map(|f| f as f32),
        db: false,
        ..FeatureSpec::default()
    }
}

#[test]
fn mel_db_and_mfcc_match_librosa_on_every_fixture() {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("manifest.json")).unwrap())
            .unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "expected at least 20 fixture cases");
    let mut checked = 0;
    let mut worst = [0.0f32; 3];
    for case in cases {
        let key = case["key"].as_str().unwrap();
        let signal: Vec<f32> = match (case["signal_file"].as_str(), case["data_file"].as_str()) {
            (Some(f), _) => read_npy_f32(&fixtures().join(f)).unwrap().1,
            (None, Some(d)) => {
                let path = shared_data().join(d);
                if common::no_data(key) {
                    continue;
                }
                decode_file(&path).unwrap().samples
            }
            _ => panic!("case {key} has no signal"),
        };
        let load =
            |what: &str| read_npy_f32(&fixtures().join(format!("{key}__{what}.npy"))).unwrap();

        let mel = FeatureExtractor::new(&spec_of(case, FeatureKind::Mel))
            .unwrap()
            .compute(key, &signal)
            .unwrap();
        let (shape, ref_mel) = load("mel");
        assert_eq!(shape, vec![mel.rows, mel.frames], "{key}: mel shape");
        let e_mel = rel_err(&mel.data, &ref_mel);
        assert!(
            e_mel <= 1e-4,
            "{key}: power mel relative error {e_mel:e} > 1e-4"
        );

        let mut db_spec = spec_of(case, FeatureKind::Mel);
        db_spec.db = true;
        let mel_db = FeatureExtractor::new(&db_spec)
            .unwrap()
            .compute(key, &signal)
            .unwrap();
        let (_, ref_db) = load("meldb");
        let e_db = rel_err(&mel_db.data, &ref_db);
        assert!(e_db <= 1e-3, "{key}: dB mel relative error {e_db:e} > 1e-3");
        // power_to_db on its own, applied to librosa's power mel.
        let e_db_only = rel_err(&power_to_db(&ref_mel, Some(80.0)), &ref_db);
        assert!(
            e_db_only <= 1e-5,
            "{key}: power_to_db alone differs by {e_db_only:e}"
        );

        let mfcc = FeatureExtractor::new(&spec_of(case, FeatureKind::Mfcc))
            .unwrap()
            .compute(key, &signal)
            .unwrap();
        let (shape, ref_mfcc) = load("mfcc");
        assert_eq!(shape, vec![mfcc.rows, mfcc.frames], "{key}: mfcc shape");
        let e_mfcc = rel_err(&mfcc.data, &ref_mfcc);
        assert!(
            e_mfcc <= 1e-3,
            "{key}: MFCC relative error {e_mfcc:e} > 1e-3"
        );

        eprintln!("{key:40} mel {e_mel:.2e}  dB {e_db:.2e}  mfcc {e_mfcc:.2e}");
        worst = [
            worst[0].max(e_mel),
            worst[1].max(e_db),
            worst[2].max(e_mfcc),
        ];
        checked += 1;
    }
    eprintln!(
        "worst relative error: mel {:.2e}, dB {:.2e}, mfcc {:.2e}",
        worst[0], worst[1], worst[2]
    );
    assert!(checked >= 20, "only {checked} cases checked");
}

#[test]
fn silence_gives_librosa_floor_values() {
    // Power mel of silence is exactly zero; its dB is the amin floor: 10*log10(1e-10) = -100.
    let spec = FeatureSpec {
        sample_rate: 16000,
        n_fft: 400,
        hop_length: 160,
        n_mels: 64,
        db: true,
        ..FeatureSpec::default()
    };
    let m = FeatureExtractor::new(&spec)
        .unwrap()
        .compute("silence", &vec![0.0; 8000])
        .unwrap();
    assert_eq!(m.frames, 51);
    assert!(m.data.iter().all(|&x| (x + 100.0).abs() < 1e-4));
}
