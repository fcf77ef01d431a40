//! Arbitrary bytes as a model folder: the first two bytes give the length of card.json,
//! the rest is model.safetensors (mutations of the real built-in card and weights in the
//! corpus reach deep). Loading must give a model or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (card, weights) = data[2..].split_at(n);
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let (card_path, weights_path) = emoscope::model::model_files(dir.path());
    std::fs::write(card_path, card).unwrap();
    std::fs::write(weights_path, weights).unwrap();
    let _ = emoscope::model::Classifier::load(dir.path(), &candle_core::Device::Cpu);
});
