//! Per-window latency distribution of the live path (features + inference of one 3 s
//! window), 300 windows of real speech, reported as p50/p95/max. The model is the shipped
//! emocnn, or the folder in `EMOSCOPE_BENCH_MODEL` (e.g. a prosody or fusion model, whose
//! features include F0, voice quality and formants).
//! One core: `RAYON_NUM_THREADS=1 taskset -c 0 cargo bench --bench window_latency`.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use emoscope::audio::decode_file;
use emoscope::model::Classifier;
use emoscope::pipeline::window_input;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("EMOSCOPE_BENCH_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("weights/emocnn"));
    let clf = Classifier::load(&dir, &Device::Cpu).expect("model folder");
    let clip = decode_file(&root.join("../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac"))
        .expect("RAVDESS clip");
    let win = clf.card.features.window_samples();
    let mut times = Vec::new();
    // As the live pipeline keeps it (used only by speaker-normalised models).
    let mut speaker = emoscope::features::SpeakerProfile::default();
    for i in 0..320 {
        let start = (i * 97) % (clip.samples.len() - win);
        let w = &clip.samples[start..start + win];
        let t = Instant::now();
        let (m, _speech) = window_input(&clf.extractor, "bench", w, &mut speaker).unwrap();
        let p = clf.probs(&[m]).unwrap();
        std::hint::black_box(p);
        if i >= 20 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let q = |f: f64| times[((times.len() - 1) as f64 * f).round() as usize];
    println!("window latency over {} windows (features + VAD + {}, CPU): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms", times.len(), clf.card.arch.name(), q(0.5), q(0.95), q(1.0));
}
