//! The Whisper encoder on candle against the numpy reference of
//! `shared/tools/whisper_probe.py` (fixtures by scripts/make_encoder_fixtures.py from the
//! CTranslate2 model.bin): the log-mel front end and the time-mean of every representation
//! (block 0's input, blocks 1-4's outputs) on real RAVDESS clips at their own length; and
//! the built-in weights file against its card and its bounds.

mod common;

use std::path::{Path, PathBuf};

use emoscope::audio::decode_file;
use emoscope::encoder::{whisper_spec, Encoder, BUILTIN_BLOCKS, N_MELS, WIDTH};
use emoscope::features::FeatureExtractor;
use emoscope::npy::read_npy_f32;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoder")
}

fn manifest() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn db_mel_of(clip: &str) -> emoscope::features::FeatureMatrix {
    let audio = decode_file(&common::data_dir().join(clip)).unwrap();
    assert_eq!(
        audio.sample_rate, 16000,
        "{clip} is read at its stored rate"
    );
    let ex = FeatureExtractor::new(&whisper_spec(3.0)).unwrap();
    ex.db_mel(clip, &audio.samples).unwrap()
}

#[test]
fn log_mel_matches_the_reference() {
    if common::no_data("log_mel_matches_the_reference") {
        return;
    }
    let m = &manifest()[0];
    let (shape, reference) =
        read_npy_f32(&fixtures().join(m["log_mel"].as_str().unwrap())).unwrap();
    let ours = Encoder::log_mel(&db_mel_of(m["clip"].as_str().unwrap())).unwrap();
    assert_eq!(ours.dims(), &[1, shape[0], shape[1]]);
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let err = ours
        .iter()
        .zip(&reference)
        .fold(0.0f32, |e, (a, b)| e.max((a - b).abs()));
    // Log-mel values lie in about [-1, 2]; librosa's and our STFT differ in rounding only.
    assert!(err < 1e-4, "log-mel differs from the reference by {err}");
}

#[test]
fn every_block_mean_matches_the_reference_on_real_clips() {
    if common::no_data("every_block_mean_matches_the_reference_on_real_clips") {
        return;
    }
    let enc = Encoder::builtin().unwrap();
    for m in manifest() {
        let clip = m["clip"].as_str().unwrap();
        let (shape, reference) =
            read_npy_f32(&fixtures().join(m["layer_means"].as_str().unwrap())).unwrap();
        assert_eq!(shape, [BUILTIN_BLOCKS + 1, WIDTH]);
        let ours = enc.layer_means(&db_mel_of(clip)).unwrap();
        assert_eq!(ours.len(), BUILTIN_BLOCKS + 1);
        for (k, (o, r)) in ours.iter().zip(reference.chunks_exact(WIDTH)).enumerate() {
            let scale = r.iter().fold(0.0f32, |s, x| s.max(x.abs()));
            let err = o
                .iter()
                .zip(r)
                .fold(0.0f32, |e, (a, b)| e.max((a - b).abs()));
            eprintln!("{clip} representation {k}: max |ours - reference| {err:.2e}, max |reference| {scale:.2}");
            // Both sides widen the same float16 weights to f32; what differs is the order (reached:
            // at most 6.3e-6 of the largest value, block 4 of Actor 13),
            // of f32 sums (gemm against numpy's BLAS) and erf against candle's gelu_erf.
            assert!(
                err <= 2e-5 * scale,
                "{clip}: representation {k}: max error {err} against max |value| {scale}"
            );
        }
    }
}

#[test]
fn a_cut_or_misshapen_weights_file_is_refused_by_name() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/whisper_base/encoder.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = Encoder::from_file(&cut, 4)
        .err()
        .expect("a cut file is refused")
        .to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("not a safetensors file"),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    // More blocks than the file holds: the missing tensor is named.
    let e = Encoder::from_file(&path, 5).err().unwrap().to_string();
    assert!(e.contains("no tensor layer_4/"), "{e}");
    // A tensor of the wrong shape: conv1 with 40 bands instead of 80.
    let mut t = std::collections::HashMap::new();
    let w = candle_core::Tensor::zeros(
        (WIDTH, N_MELS / 2, 3),
        candle_core::DType::F16,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    t.insert("conv1/weight".to_string(), w);
    let bad = dir.path().join("shape.safetensors");
    candle_core::safetensors::save(&t, &bad).unwrap();
    let e = Encoder::from_file(&bad, 1).err().unwrap().to_string();
    assert!(
        e.contains("shape.safetensors") && e.contains("conv1/weight") && e.contains("[512, 40, 3]"),
        "{e}"
    );
}

#[test]
fn the_builtin_weights_are_what_the_card_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/whisper_base");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("card.json")).unwrap()).unwrap();
    assert_eq!(card["blocks"], BUILTIN_BLOCKS.to_string());
    assert_eq!(card["license"], "MIT (OpenAI, 2022)");
    assert!(std::fs::read_to_string(dir.join("LICENSE"))
        .unwrap()
        .contains("Copyright (c) 2022 OpenAI"));
    let bytes = std::fs::read(dir.join("encoder.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), card["tensors"].as_u64().unwrap() as usize);
    // 5 front-end tensors and 12 per block, all float16.
    assert_eq!(st.len(), 5 + 12 * BUILTIN_BLOCKS);
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F16, "{name}");
    }
    assert_eq!(
        st.tensor("layer_3/self_attention/linear_0/weight")
            .unwrap()
            .shape(),
        [1536, 512]
    );
    assert_eq!(
        st.tensor("position_encodings/encodings").unwrap().shape(),
        [1500, 512]
    );
}
