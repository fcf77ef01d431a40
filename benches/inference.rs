//! Per-window latency of the live path: a 3 s window at 16 kHz through features
//! (dB mel, normalisation) and the shipped emocnn on the CPU, and the paper-1 CNN for
//! comparison. One core: `RAYON_NUM_THREADS=1 taskset -c 0 cargo bench --bench inference`.

use std::path::Path;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use emoscope::model::Classifier;

fn speech_like(n: usize, sr: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / sr;
            let f0 = 150.0 + 30.0 * (2.0 * t).sin();
            (1..8)
                .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                .sum::<f32>()
                * 0.1
                * (1.0 + (3.0 * t).sin())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let mut g = c.benchmark_group("window");
    for name in ["emocnn", "paper1_cnn"] {
        let clf = Classifier::load(&root.join(name), &Device::Cpu).unwrap();
        let spec = clf.card.features.clone();
        let x = speech_like(spec.window_samples(), spec.sample_rate as f32);
        g.bench_function(format!("{name}_features"), |b| {
            b.iter(|| clf.extractor.model_input("bench", &x, None).unwrap())
        });
        let input = clf.extractor.model_input("bench", &x, None).unwrap();
        g.bench_function(format!("{name}_inference"), |b| {
            b.iter(|| clf.probs(std::slice::from_ref(&input)).unwrap())
        });
        g.bench_function(format!("{name}_features_and_inference"), |b| {
            b.iter(|| {
                let m = clf.extractor.model_input("bench", &x, None).unwrap();
                clf.probs(&[m]).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
