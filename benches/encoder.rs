//! The frozen encoder on one 3 s window of real speech: the front end (dB mel of the
//! Whisper spec), then the convolutions and each block, p50/p95 over 60 windows.
//! One core: `RAYON_NUM_THREADS=1 taskset -c 0 cargo bench --bench encoder`.

use std::path::Path;
use std::time::Instant;

use emoscope::audio::decode_file;
use emoscope::encoder::{whisper_spec, Encoder};
use emoscope::features::FeatureExtractor;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clip = decode_file(&root.join("../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac"))
        .expect("RAVDESS clip");
    let ex = FeatureExtractor::new(&whisper_spec(3.0)).unwrap();
    let enc = Encoder::builtin().unwrap();
    let win = ex.spec().window_samples();
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); enc.blocks() + 2];
    for i in 0..70 {
        let start = (i * 97) % (clip.samples.len() - win);
        let t = Instant::now();
        let db = ex
            .window_db_mel("bench", &clip.samples[start..start + win])
            .unwrap();
        let mel = Encoder::log_mel(&db).unwrap();
        let front = t.elapsed().as_secs_f64() * 1000.0;
        let mut last = front;
        let mut times = vec![front];
        for k in 0..=enc.blocks() {
            let out = enc.forward_upto(&mel, k).unwrap();
            std::hint::black_box(out);
            let total = t.elapsed().as_secs_f64() * 1000.0;
            times.push(total - last);
            last = total;
        }
        if i >= 10 {
            for (r, x) in rows.iter_mut().zip(times) {
                r.push(x);
            }
        }
    }
    let q = |v: &mut Vec<f64>, f: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * f).round() as usize]
    };
    let names = [
        "log-mel (dB mel of the Whisper spec)".to_string(),
        "convolutions + positions".to_string(),
    ]
    .into_iter()
    .chain((0..enc.blocks()).map(|k| format!("convolutions + blocks 0-{k}")));
    for (name, r) in names.zip(rows.iter_mut()) {
        println!(
            "{name:<40} p50 {:7.2} ms  p95 {:7.2} ms",
            q(r, 0.5),
            q(r, 0.95)
        );
    }
}
