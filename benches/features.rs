//! Feature extraction speed: MFCCs of a 10-minute signal (the librosa comparison case,
//! n_fft 2048, hop 512, 128 mels, 20 MFCCs at 22.05 kHz) and the live monitor's unit of
//! work, the log-mel of one 3 s window at 16 kHz. Run: `cargo bench --bench features`.

use criterion::{criterion_group, criterion_main, Criterion};
use emoscope::features::{FeatureExtractor, FeatureKind, FeatureSpec};

fn signal(n: usize, sr: f32) -> Vec<f32> {
    // A deterministic speech-like mix: harmonics with a wandering pitch plus noise.
    let mut state = 12345u32;
    (0..n)
        .map(|i| {
            let t = i as f32 / sr;
            let f0 = 140.0 + 40.0 * (0.7 * t).sin();
            let h: f32 = (1..6)
                .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                .sum();
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            0.2 * h + 0.01 * ((state >> 8) as f32 / 16777216.0 - 0.5)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mfcc = FeatureSpec {
        kind: FeatureKind::Mfcc,
        ..FeatureSpec::default()
    };
    let long = signal(600 * 22050, 22050.0);
    let ex = FeatureExtractor::new(&mfcc).unwrap();
    let mut g = c.benchmark_group("features");
    g.sample_size(10);
    g.bench_function("mfcc_10min_22k", |b| {
        b.iter(|| ex.compute("bench", &long).unwrap())
    });
    let live = FeatureSpec {
        sample_rate: 16000,
        n_fft: 512,
        hop_length: 160,
        n_mels: 64,
        db: true,
        ..FeatureSpec::default()
    };
    let win = signal(48000, 16000.0);
    let ex = FeatureExtractor::new(&live).unwrap();
    g.sample_size(50);
    g.bench_function("logmel_3s_window_16k", |b| {
        b.iter(|| ex.compute("bench", &win).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
