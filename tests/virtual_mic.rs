//! The real microphone path end to end: a known RAVDESS clip is played at real-time pace
//! into a PulseAudio pipe source (a virtual microphone behind ALSA `default`, started by
//! `scripts/virtual-mic.sh`, which .ci/run does) and `emoscope monitor --headless` listens
//! through cpal. Runs when EMOSCOPE_VIRTUAL_MIC names the FIFO; says so and passes otherwise.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emoscope::audio::decode_file;

const CLIP: &str = "../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac";

/// The label most windows name (the last of equals, as `max_by_key` picks).
fn majority<'a>(tops: &[&'a str]) -> &'a str {
    tops.iter()
        .max_by_key(|t| tops.iter().filter(|u| u == t).count())
        .copied()
        .expect("at least one window with speech")
}

#[test]
fn clip_through_the_virtual_microphone_matches_analyze_with_nothing_dropped() {
    if common::no_data("clip_through_the_virtual_microphone_matches_analyze_with_nothing_dropped") {
        return;
    }
    let Ok(fifo) = std::env::var("EMOSCOPE_VIRTUAL_MIC") else {
        eprintln!("skipped: no virtual microphone (eval \"$(bash scripts/virtual-mic.sh start)\" first; CI does)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let clip = decode_file(&root.join(CLIP)).unwrap();
    assert_eq!(clip.sample_rate, 16000);
    // What analyze says of the same audio (1.5 s of silence, the clip, silence) at every
    // alignment of the 0.5 s window grid the live stream may have (the writer and the
    // monitor start independently, so the clip falls at an unknown offset of the grid; the
    // speaker profile grows from the windows as they come, live and in analyze): the
    // majority label of the speech windows at each offset, 0 to 0.45 s. The default reads
    // this clip happy or angry depending on the offset, so the live majority
    // must be one of those analyze gives.
    let expected: Vec<String> = {
        let clf = emoscope::model::Classifier::load(
            Path::new(emoscope::model::BUILTIN_MODEL),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        (0..10)
            .map(|k| {
                let lead = 24_000 + k * 800;
                let mut x = vec![0.0f32; lead];
                x.extend_from_slice(&clip.samples);
                x.resize(lead + clip.samples.len() + 48_000, 0.0);
                let r = emoscope::analysis::analyze_samples(&clf, "padded clip", &x, 0.5).unwrap();
                let tops: Vec<&str> = r.windows.iter().filter_map(|w| w.top).collect();
                majority(&tops).to_string()
            })
            .collect()
    };
    eprintln!("analyze's majority label at each offset of the window grid: {expected:?}");
    // Writer: silence, then the clip 1.5 s in, then silence, all at real-time pace in 10 ms blocks.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let samples = clip.samples.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("open the virtual mic FIFO");
            let lead = 24_000u64;
            common::write_paced(&mut f, &stop, |k| {
                match k.checked_sub(lead).and_then(|k| samples.get(k as usize)) {
                    Some(&x) => x,
                    None => 0.0,
                }
            });
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let o = Command::new(env!("CARGO_BIN_EXE_emoscope"))
        .args(["monitor", "--headless", "--duration", "8.5"])
        .current_dir(root)
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (s, windows) = common::monitor_lines(&String::from_utf8_lossy(&o.stdout));
    assert!(
        windows.len() >= 8,
        "only {} windows in 8.5 s",
        windows.len()
    );
    for w in windows.windows(2) {
        let d = w[1]["t_start"].as_f64().unwrap() - w[0]["t_start"].as_f64().unwrap();
        assert!(
            (d - 0.5).abs() < 1e-6,
            "windows must come every 0.5 s hop, got {d}"
        );
    }
    assert_eq!(s["dropped_samples"], 0, "{s}");
    assert_eq!(s["dropped_windows"], 0, "{s}");
    let tops: Vec<&str> = windows.iter().filter_map(|w| w["top"].as_str()).collect();
    assert!(
        !tops.is_empty(),
        "no speech heard through the virtual microphone"
    );
    let majority = majority(&tops);
    assert!(
        expected.iter().any(|e| e == majority),
        "live top label {majority} is not among analyze's at any alignment {expected:?}: {tops:?}"
    );
    assert!(
        windows.iter().any(|w| w["top"].is_null()),
        "the silence around the clip is 'no speech'"
    );
}

/// Playback (the training tab's "play") through cpal's default output: a 440 Hz tone goes
/// to the virtual server's null sink, and its monitor hears 440 Hz.
#[test]
fn playback_reaches_the_default_output() {
    if std::env::var("EMOSCOPE_VIRTUAL_MIC").is_err() {
        eprintln!("skipped: no PulseAudio server (eval \"$(bash scripts/virtual-mic.sh start)\" first; CI does)");
        return;
    }
    let mut rec = Command::new("parec")
        .args([
            "-d",
            "vsink.monitor",
            "--raw",
            "--format=s16le",
            "--rate=16000",
            "--channels=1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("parec (pulseaudio-utils)");
    std::thread::sleep(Duration::from_millis(300));
    let tone: Vec<f32> = (0..16000)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin())
        .collect();
    let p = emoscope::audio::playback::play(&tone, 16000).expect("default output device");
    let t0 = Instant::now();
    while !p.finished() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "playback stalled at {:.2}",
            p.progress()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(p);
    let _ = rec.kill();
    let out = rec.wait_with_output().unwrap().stdout;
    let x: Vec<f32> = out
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
        .collect();
    // The loudest 0.5 s: its zero crossings give the frequency.
    let seg = 8000;
    let (best, _) = (0..x.len().saturating_sub(seg))
        .step_by(800)
        .map(|s| (s, x[s..s + seg].iter().map(|v| v * v).sum::<f32>()))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let y = &x[best..(best + seg).min(x.len())];
    let rms = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
    assert!(
        rms > 0.1,
        "the sink heard almost nothing (rms {rms}, {} samples)",
        x.len()
    );
    let crossings = y.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    let hz = crossings as f32 / (y.len() as f32 / 16000.0);
    assert!((hz - 440.0).abs() < 15.0, "heard {hz} Hz");
}
