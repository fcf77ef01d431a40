//! The live pipeline with file, synthetic and failing sources: identical to `analyze`
//! window by window, drop-oldest back-pressure with counts, "no speech" on silence and
//! noise, reopening after a device error, and a clear error for a missing device.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use candle_core::Device;
use emoscope::analysis::analyze_samples;
use emoscope::audio::decode_file;
use emoscope::model::Classifier;
use emoscope::pipeline::{window_plan, BufferSource, Pipeline, PipelineConfig, Prediction, Source};

fn model() -> Classifier {
    Classifier::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/emocnn"),
        &Device::Cpu,
    )
    .unwrap()
}

fn clip(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/ravdess")
        .join(name)
}

fn run(source: Box<dyn Source>, cfg: PipelineConfig) -> (Vec<Prediction>, Pipeline) {
    run_with(source, model(), cfg)
}

fn run_with(
    source: Box<dyn Source>,
    clf: Classifier,
    cfg: PipelineConfig,
) -> (Vec<Prediction>, Pipeline) {
    let p = Pipeline::start(source, clf, cfg).unwrap();
    let mut out = Vec::new();
    while let Ok(x) = p.predictions.recv_timeout(Duration::from_secs(30)) {
        out.push(x);
    }
    (out, p)
}

/// The live pipeline over `samples` with `clf`, unsmoothed; the file is fed faster than
/// real time, with room for every window in the queue.
fn live_every_window(samples: &[f32], clf: Classifier) -> (Vec<Prediction>, Pipeline) {
    let cfg = PipelineConfig {
        ema_alpha: 1.0,
        queue_windows: 64,
        ..PipelineConfig::default()
    };
    let p = Pipeline::start(
        Box::new(BufferSource::new("clips", samples.to_vec(), 16000, false)),
        clf,
        cfg,
    )
    .unwrap();
    let mut preds = Vec::new();
    while let Ok(x) = p.predictions.recv_timeout(Duration::from_secs(30)) {
        preds.push(x);
    }
    (preds, p)
}

/// Two sentences of RAVDESS actor 2 back to back (16 kHz).
fn two_sentences() -> Vec<f32> {
    let mut samples = decode_file(&clip("Actor_02/03-01-05-02-02-02-02.flac"))
        .unwrap()
        .samples;
    samples.extend(
        decode_file(&clip("Actor_02/03-01-03-01-01-01-02.flac"))
            .unwrap()
            .samples,
    );
    samples
}

/// The live predictions equal `analyze`'s windows: same starts, speech flags and
/// probabilities (within 1e-5).
fn assert_same_windows(preds: &[Prediction], offline: &emoscope::analysis::FileAnalysis) {
    assert_eq!(preds.len(), offline.windows.len());
    for (live, off) in preds.iter().zip(&offline.windows) {
        assert!((live.window_start - off.t_start).abs() < 1e-9);
        assert_eq!(live.speech, off.speech);
        for (a, (_, b)) in live.raw.iter().zip(&off.probs) {
            assert!(
                (a - b).abs() < 1e-5,
                "window at {} s: {a} vs {b}",
                off.t_start
            );
        }
    }
}

#[test]
fn file_through_the_pipeline_equals_analyze_window_by_window() {
    if common::no_data("file_through_the_pipeline_equals_analyze_window_by_window") {
        return;
    }
    let path = clip("Actor_02/03-01-05-02-02-02-02.flac");
    let c = decode_file(&path).unwrap();
    let offline = analyze_samples(&model(), "x", &c.samples, 0.5).unwrap();
    let cfg = PipelineConfig {
        ema_alpha: 1.0,
        ..PipelineConfig::default()
    };
    let (preds, p) = run(
        Box::new(BufferSource::new("clip", c.samples.clone(), 16000, false)),
        cfg,
    );
    assert_eq!(preds.len(), offline.windows.len());
    assert_eq!(preds.len(), window_plan(c.samples.len(), 48000, 8000).len());
    assert_same_windows(&preds, &offline);
    assert_eq!(p.counters.dropped_samples.load(Ordering::Relaxed), 0);
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    p.stop();
}

#[test]
fn a_slow_consumer_drops_the_oldest_windows_and_counts_them() {
    // 0.01 s hop: features come far faster than the model, the 2-slot queue overflows.
    let src = BufferSource::synthetic("tone:200", 8.0, false).unwrap();
    let cfg = PipelineConfig {
        hop_seconds: 0.01,
        queue_windows: 2,
        ema_alpha: 1.0,
        ..PipelineConfig::default()
    };
    let (preds, p) = run(Box::new(src), cfg);
    let made = p.counters.windows.load(Ordering::Relaxed);
    let dropped = p.counters.dropped_windows.load(Ordering::Relaxed);
    assert_eq!(made, window_plan(128_000, 48_000, 160).len() as u64);
    assert!(dropped > 0, "expected drops with a 2-window queue");
    assert_eq!(
        preds.len() as u64 + dropped,
        made,
        "every window is either classified or counted as dropped"
    );
    assert!(preds.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(
        preds.last().unwrap().index,
        made - 1,
        "the newest window survives"
    );
    assert_eq!(p.counters.dropped_samples.load(Ordering::Relaxed), 0);
    p.stop();
}

/// Held by tests that time the pipeline against real time and by those that keep both
/// cores busy, so the one does not run beside the other.
static CORES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// An inference thread slower than real time (emocnn at width 256, the widest a card takes,
/// on a real-time source with a window every 0.05 s; at width 192 and a window every 0.1 s
/// it dropped only 0-2 windows, none when other tests ran beside it, and since the
/// convolutions run on the packed AVX-512 kernel width 256 kept up with 0.1 s): windows are
/// dropped and counted, audio never is.
#[test]
fn inference_slower_than_real_time_drops_windows_never_audio() {
    let _cores = CORES.lock().unwrap_or_else(|e| e.into_inner());
    let mut card = model().card.clone();
    card.arch = emoscope::model::Arch::EmoCnn { width: 256 };
    let slow = Classifier::new(card, &Device::Cpu).unwrap();
    let src = BufferSource::synthetic("tone:200", 5.0, true).unwrap();
    let cfg = PipelineConfig {
        hop_seconds: 0.05,
        ema_alpha: 1.0,
        ..PipelineConfig::default()
    };
    let (preds, p) = run_with(Box::new(src), slow, cfg);
    let made = p.counters.windows.load(Ordering::Relaxed);
    let dropped = p.counters.dropped_windows.load(Ordering::Relaxed);
    let slowest = preds.iter().map(|x| x.latency_ms()).fold(0.0, f64::max);
    eprintln!(
        "{made} windows, {} classified, {dropped} dropped; slowest {slowest:.0} ms",
        preds.len()
    );
    assert!(
        slowest > 100.0,
        "inference kept up ({slowest:.0} ms); the test needs a slower model"
    );
    assert!(dropped > 0, "no window was dropped");
    assert_eq!(preds.len() as u64 + dropped, made);
    assert_eq!(made, window_plan(80_000, 48_000, 800).len() as u64);
    assert_eq!(
        p.counters.dropped_samples.load(Ordering::Relaxed),
        0,
        "audio was dropped"
    );
    p.stop();
}

#[test]
fn silence_and_low_noise_are_no_speech_without_a_label() {
    for kind in ["silence", "noise:0.003"] {
        let (preds, p) = run(
            Box::new(BufferSource::synthetic(kind, 5.0, false).unwrap()),
            PipelineConfig {
                queue_windows: 256,
                ..PipelineConfig::default()
            },
        );
        assert_eq!(preds.len(), 5, "{kind}");
        assert!(preds.iter().all(|x| !x.speech && x.top.is_none()), "{kind}");
        p.stop();
    }
}

#[test]
fn a_failing_source_is_reopened_and_nothing_is_lost() {
    if common::no_data("a_failing_source_is_reopened_and_nothing_is_lost") {
        return;
    }
    let c = decode_file(&clip("Actor_01/03-01-07-01-02-01-01.flac")).unwrap();
    let n = c.samples.len();
    let src = BufferSource::new("flaky", c.samples, 16000, false).failing_after(20_000);
    let (preds, p) = run(
        Box::new(src),
        PipelineConfig {
            queue_windows: 256,
            ..PipelineConfig::default()
        },
    );
    assert_eq!(p.counters.reopens.load(Ordering::Relaxed), 1);
    assert_eq!(
        preds.len(),
        window_plan(n, 48000, 8000).len(),
        "all windows after the reopen"
    );
    assert_eq!(p.counters.dropped_samples.load(Ordering::Relaxed), 0);
    p.stop();
}

#[test]
fn a_missing_device_gives_a_clear_error() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_emoscope"))
        .args([
            "monitor",
            "--headless",
            "--device",
            "no-such-microphone",
            "--duration",
            "1",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no-such-microphone") && e.contains("emoscope devices"),
        "{e}"
    );
}

#[test]
fn session_log_is_readable_while_running_and_complete_at_the_end() {
    if common::no_data("session_log_is_readable_while_running_and_complete_at_the_end") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("session");
    let path = clip("Actor_02/03-01-05-02-02-02-02.flac");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_emoscope"))
        .args(["monitor", "--headless", "--jsonl", "-", "--input"])
        .arg(&path)
        .arg("--record-session")
        .arg(&sess)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Real-time pace: 2.7 s in, the WAV header already covers at least a second.
    std::thread::sleep(Duration::from_millis(2700));
    let partial = decode_file(&sess.join("audio.wav")).unwrap();
    assert!(
        partial.duration() >= 1.0,
        "only {} s readable mid-session",
        partial.duration()
    );
    assert!(child.wait().unwrap().success());
    let full = decode_file(&sess.join("audio.wav")).unwrap();
    let orig = decode_file(&path).unwrap();
    assert_eq!(full.samples.len(), orig.samples.len());
    let err = full
        .samples
        .iter()
        .zip(&orig.samples)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1.0 / 32767.0 + 1e-6,
        "recorded audio differs by {err}"
    );
    let lines = std::fs::read_to_string(sess.join("session.jsonl")).unwrap();
    let n = lines.lines().count();
    assert_eq!(
        n,
        window_plan(orig.samples.len(), 48000, 8000).len() + 1,
        "windows plus the summary"
    );
    assert!(lines.lines().last().unwrap().starts_with("{\"summary\""));
}

#[test]
fn only_speech_windows_grow_the_speaker_profile() {
    if common::no_data("only_speech_windows_grow_the_speaker_profile") {
        return;
    }
    use emoscope::features::{FeatureExtractor, Normalisation, SpeakerProfile};
    let mut spec = emoscope::train::default_spec(&emoscope::model::Arch::EmoCnn { width: 24 });
    spec.normalisation = Normalisation::Speaker;
    let ex = FeatureExtractor::new(&spec).unwrap();
    let win = spec.window_samples();
    let mut profile = SpeakerProfile::default();
    let (_, speech) =
        emoscope::pipeline::window_input(&ex, "silence", &vec![0.0; win], &mut profile).unwrap();
    assert!(!speech);
    assert_eq!(profile.frames(), 0, "silence must not enter the profile");
    // A real sentence (RAVDESS actor 2, angry): its voiced frames are counted, the
    // pauses before and after it are not.
    let a = decode_file(&clip("Actor_02/03-01-05-02-02-02-02.flac")).unwrap();
    assert_eq!(a.sample_rate, 16_000);
    let (_, speech) =
        emoscope::pipeline::window_input(&ex, "clip", &a.samples[..win], &mut profile).unwrap();
    assert!(speech);
    let frames = profile.frames();
    assert!(
        (60..188).contains(&frames),
        "{frames} of 188 frames counted as speech"
    );
}

/// The default model with speaker normalisation in its card (saved under `dir`, loaded
/// as often as needed): what matters here is the feature path, not what it has learned.
fn speaker_model(dir: &Path) -> Classifier {
    if !dir.join("card.json").exists() {
        let mut clf = model();
        clf.card.features.normalisation = emoscope::features::Normalisation::Speaker;
        clf.save(dir).unwrap();
    }
    let clf = Classifier::load(dir, &Device::Cpu).unwrap();
    assert_eq!(
        clf.extractor.spec().normalisation,
        emoscope::features::Normalisation::Speaker
    );
    clf
}

/// Asserts that each prediction's profile seconds are the length of the union of the
/// windows so far that the profile learnt from (`learnt`, one per prediction); returns it.
fn assert_profile_seconds(preds: &[Prediction], learnt: &[bool]) -> f64 {
    let (mut covered_to, mut union) = (0.0f64, 0.0f64);
    for (p, &l) in preds.iter().zip(learnt) {
        if l {
            union += p.window_end - p.window_start.max(covered_to).min(p.window_end);
            covered_to = p.window_end;
        }
        let s = p.profile_seconds.unwrap() as f64;
        assert!(
            (s - union).abs() < 1e-3,
            "at {} s: {s} vs {union}",
            p.window_start
        );
    }
    union
}

#[test]
fn a_speaker_normalised_model_grows_the_same_profile_live_as_in_analyze() {
    if common::no_data("a_speaker_normalised_model_grows_the_same_profile_live_as_in_analyze") {
        return;
    }
    // Two sentences of actor 2 back to back: the profile grows across windows.
    let samples = two_sentences();
    let tmp = tempfile::tempdir().unwrap();
    let offline = analyze_samples(&speaker_model(tmp.path()), "x", &samples, 0.5).unwrap();
    let (preds, p) = live_every_window(&samples, speaker_model(tmp.path()));
    assert_eq!(preds.len(), offline.windows.len());
    assert!(preds.len() >= 8, "{} windows", preds.len());
    assert_same_windows(&preds, &offline);
    // Seconds of speech in the profile: the length of the union of the speech windows
    // so far (3 s with the first, 0.5 s more with each next one), never more than heard.
    let first = preds.iter().position(|p| p.speech).unwrap();
    let learnt: Vec<bool> = preds.iter().map(|p| p.speech).collect();
    let union = assert_profile_seconds(&preds, &learnt);
    assert!((preds[first].profile_seconds.unwrap() - 3.0).abs() < 1e-3);
    assert!(union <= samples.len() as f64 / 16000.0 + 1e-6);
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    p.stop();
    // A model normalised per window reports no profile.
    assert!(live_every_window(&samples, model())
        .0
        .iter()
        .all(|p| p.profile_seconds.is_none()));
}

/// A prosody model (fusion of the spectrogram CNN and the prosody functionals; freshly
/// initialised from its seed, saved under `dir`): the feature path is what is tested.
fn prosody_model(dir: &Path) -> Classifier {
    if !dir.join("card.json").exists() {
        let mut card = model().card;
        card.arch = emoscope::model::Arch::Fusion { width: 4 };
        card.features = emoscope::train::default_spec(&card.arch);
        Classifier::new(card, &Device::Cpu)
            .unwrap()
            .save(dir)
            .unwrap();
    }
    Classifier::load(dir, &Device::Cpu).unwrap()
}

#[test]
fn a_prosody_model_gives_the_same_probabilities_live_as_in_analyze() {
    if common::no_data("a_prosody_model_gives_the_same_probabilities_live_as_in_analyze") {
        return;
    }
    let samples = two_sentences();
    let tmp = tempfile::tempdir().unwrap();
    let clf = prosody_model(tmp.path());
    // The model input carries the functionals row after the 64 mel bands, and on speech
    // it is not empty: F0, loudness and the rest were computed from the window.
    let mut profile = emoscope::features::SpeakerProfile::default();
    let (x, speech) =
        emoscope::pipeline::window_input(&clf.extractor, "clip", &samples[..48000], &mut profile)
            .unwrap();
    assert!(speech);
    assert_eq!(x.rows, 65);
    let row = &x.data[64 * x.frames..];
    let nonzero = row[..emoscope::features::N_FUNCTIONALS]
        .iter()
        .filter(|v| v.abs() > 1e-6)
        .count();
    assert!(
        nonzero > 60,
        "{nonzero} functionals differ from the speaker's mean"
    );
    // Then how much speech the profile holds and the window's own: the first window of a
    // session is all its profile has heard.
    let at = emoscope::features::PROFILE_FRAMES_AT;
    assert!(
        profile.lld_frames() > 50,
        "{} descriptor frames",
        profile.lld_frames()
    );
    assert_eq!(row[at], profile.lld_frames() as f32);
    assert_eq!(row[at + 1], row[at]);
    assert!(row[emoscope::features::FUNCTIONALS_ROW_VALUES..]
        .iter()
        .all(|&v| v == 0.0));
    // A second window, half overlapping, adds its frames: the profile now holds more
    // than the window.
    let (x2, _) = emoscope::pipeline::window_input(
        &clf.extractor,
        "clip",
        &samples[24000..72000],
        &mut profile,
    )
    .unwrap();
    let row2 = &x2.data[64 * x2.frames..];
    assert_eq!(row2[at], profile.lld_frames() as f32);
    assert!(
        row2[at] > 1.5 * row2[at + 1],
        "profile {} frames, window {}",
        row2[at],
        row2[at + 1]
    );

    let offline = analyze_samples(&clf, "x", &samples, 0.5).unwrap();
    let (preds, p) = live_every_window(&samples, prosody_model(tmp.path()));
    assert!(preds.len() >= 8, "{} windows", preds.len());
    assert_same_windows(&preds, &offline);
    assert!(preds
        .iter()
        .any(|p| p.profile_seconds.is_some_and(|s| s > 3.0)));
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    p.stop();
}

/// The former default (builtin:fusion_prosody), an ensemble whose prosody member is weighed by the speaker profile:
/// live and `analyze` give the same probabilities window by window, the first window is
/// read as by its fusion member alone (the profile holds nothing beyond that window), and
/// later windows, once the profile holds more, are not.
#[test]
fn the_default_ensemble_weighs_alike_live_and_in_analyze() {
    if common::no_data("the_default_ensemble_weighs_alike_live_and_in_analyze") {
        return;
    }
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights");
    let load = |name: &str| Classifier::load(&weights.join(name), &Device::Cpu).unwrap();
    let samples = two_sentences();
    let offline = analyze_samples(&load("fusion_prosody"), "x", &samples, 0.5).unwrap();
    let (preds, p) = live_every_window(&samples, load("fusion_prosody"));
    assert!(preds.len() >= 8, "{} windows", preds.len());
    assert_same_windows(&preds, &offline);
    p.stop();

    // Fusion's probabilities at the ensemble's own temperature t on top: p^(1/t), renormalised.
    let t = load("fusion_prosody").card.temperature as f32;
    let fusion = analyze_samples(&load("fusion"), "x", &samples, 0.5).unwrap();
    let diff = |k: usize| -> f32 {
        let q: Vec<f32> = fusion.windows[k]
            .probs
            .iter()
            .map(|(_, p)| p.powf(1.0 / t))
            .collect();
        let s: f32 = q.iter().sum();
        preds[k]
            .raw
            .iter()
            .zip(&q)
            .map(|(a, b)| (a - b / s).abs())
            .fold(0.0, f32::max)
    };
    assert!(preds[0].speech);
    assert!(
        diff(0) < 1e-4,
        "first window differs from fusion by {}",
        diff(0)
    );
    let last = preds.len() - 1;
    assert!(
        diff(last) > 1e-3,
        "last window equals fusion's ({})",
        diff(last)
    );
}

/// The default model, three heads on the pretrained encoder averaged: live and `analyze` give the same
/// probabilities window by window (one FeatureSpec path, the encoder on the DSP thread),
/// nothing is dropped when the pipeline may wait, and a window reads the same whatever
/// the session heard before it (without an enrolment it reads each window alone):
/// `analyze` of the second sentence alone gives its windows the probabilities they had
/// in the whole stream.
#[test]
fn the_default_encoder_head_is_the_same_live_and_in_analyze() {
    if common::no_data("the_default_encoder_head_is_the_same_live_and_in_analyze") {
        return;
    }
    let _cores = CORES.lock().unwrap_or_else(|e| e.into_inner());
    let load =
        || Classifier::load(Path::new(emoscope::model::BUILTIN_MODEL), &Device::Cpu).unwrap();
    assert_eq!(load().card.arch.label(), "encoder_head x3");
    let samples = two_sentences();
    let offline = analyze_samples(&load(), "x", &samples, 0.5).unwrap();
    let (preds, p) = live_every_window(&samples, load());
    assert!(preds.len() >= 8, "{} windows", preds.len());
    assert_same_windows(&preds, &offline);
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    // It reads an enrolment; without one the session's speech never becomes one.
    assert!(preds.iter().all(|p| p.profile_seconds == Some(0.0)));
    p.stop();
    // Windows 2 s apart (4 hops of 0.5 s) start at the same samples in the tail alone.
    let tail = analyze_samples(&load(), "tail", &samples[32000..], 0.5).unwrap();
    for (k, w) in tail.windows.iter().enumerate() {
        let whole = &offline.windows[k + 4];
        assert_eq!(whole.t_start, w.t_start + 2.0);
        for ((_, a), (_, b)) in whole.probs.iter().zip(&w.probs) {
            assert!((a - b).abs() < 1e-5, "window {k}: {a} against {b}");
        }
    }
}

/// A calm head (freshly initialised from its seed: the feature path is what is tested) whose
/// gate admits the speech windows where the first value of block 3's mean is below its
/// median over the stream's speech windows: live and `analyze` give the same probabilities
/// window by window, and the profile counts the seconds of the admitted windows only.
#[test]
fn a_calm_reference_learns_the_same_windows_live_as_in_analyze() {
    if common::no_data("a_calm_reference_learns_the_same_windows_live_as_in_analyze") {
        return;
    }
    use emoscope::features::{CalmGate, FeatureExtractor};
    let _cores = CORES.lock().unwrap_or_else(|e| e.into_inner());
    let samples = two_sentences();
    let arch = emoscope::model::Arch::from_name("encoder_head_calm").unwrap();
    let mut card = Classifier::load(Path::new(emoscope::model::BUILTIN_MODEL), &Device::Cpu)
        .unwrap()
        .card;
    card.arch = arch.clone();
    card.features = emoscope::train::default_spec(&arch);
    // Each window's block 3 mean, first value, and whether it holds speech.
    let ex = FeatureExtractor::new(&card.features).unwrap();
    let (win, hop) = (48000, 8000);
    let at = 3 * 2 * emoscope::encoder::WIDTH;
    let windows: Vec<(bool, f32)> = window_plan(samples.len(), win, hop)
        .into_iter()
        .map(|s| {
            let w = &samples[s..s + win];
            let db = ex.window_db_mel("w", w).unwrap();
            let v = ex.llds(&db, None).unwrap();
            (
                emoscope::dsp::Vad::default().is_speech(w, 16000),
                v.data[at],
            )
        })
        .collect();
    let mut speech: Vec<f32> = windows.iter().filter(|w| w.0).map(|w| w.1).collect();
    speech.sort_by(f32::total_cmp);
    let median = speech[speech.len() / 2];
    let mut weight = vec![0.0; emoscope::encoder::WIDTH];
    weight[0] = -1.0;
    let gate = CalmGate {
        layer: 3,
        weight,
        bias: median,
    };
    let admitted: Vec<bool> = windows.iter().map(|&(s, x)| s && x < median).collect();
    assert!(admitted.iter().any(|&a| a) && windows.iter().zip(&admitted).any(|(w, &a)| w.0 && !a));
    card.features.encoder.as_mut().unwrap().calm_gate = Some(gate);
    let tmp = tempfile::tempdir().unwrap();
    Classifier::new(card, &Device::Cpu)
        .unwrap()
        .save(tmp.path())
        .unwrap();
    let load = || Classifier::load(tmp.path(), &Device::Cpu).unwrap();
    let offline = analyze_samples(&load(), "x", &samples, 0.5).unwrap();
    let (preds, p) = live_every_window(&samples, load());
    assert_eq!(preds.len(), windows.len());
    assert_same_windows(&preds, &offline);
    // Seconds in the reference: the union of the admitted windows so far.
    assert_profile_seconds(&preds, &admitted);
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    p.stop();
}

/// The default reads an enrolment (actor 2's two neutral statements, read before the
/// session): live and `analyze` read every window against it alike, the session's own
/// speech never changes it (every window reports the enrolment's seconds), and it changes
/// what is read: the same windows without it read otherwise.
#[test]
fn an_enrolment_is_read_alike_live_and_in_analyze_and_the_session_never_changes_it() {
    if common::no_data(
        "an_enrolment_is_read_alike_live_and_in_analyze_and_the_session_never_changes_it",
    ) {
        return;
    }
    use emoscope::analysis::{analyze_samples_with, learn_enrolment};
    let _cores = CORES.lock().unwrap_or_else(|e| e.into_inner());
    let load =
        || Classifier::load(Path::new(emoscope::model::BUILTIN_MODEL), &Device::Cpu).unwrap();
    let mut clf = load();
    assert!(clf.card.features.enrolment());
    let mut enrolment = emoscope::features::Enrolment::default();
    for name in ["03-01-01-01-01-01-02.flac", "03-01-01-01-02-01-02.flac"] {
        let x = decode_file(&clip(&format!("Actor_02/{name}"))).unwrap();
        let n =
            learn_enrolment(&clf, name, &x.samples, x.sample_rate, 0.5, &mut enrolment).unwrap();
        assert!(n >= 1, "{name}: {n} speech windows");
    }
    assert_eq!(enrolment.sources.len(), 2);
    assert!(
        (4.0..10.0).contains(&enrolment.seconds),
        "{} s of enrolment",
        enrolment.seconds
    );
    let samples = two_sentences();
    clf.enrolment = Some(enrolment.clone());
    let offline = analyze_samples_with(
        &clf,
        "x",
        &samples,
        0.5,
        &mut enrolment.profile.clone(),
        true,
    )
    .unwrap();
    let (preds, p) = live_every_window(&samples, clf);
    assert_same_windows(&preds, &offline);
    assert_eq!(p.counters.dropped_windows.load(Ordering::Relaxed), 0);
    for w in &preds {
        assert_eq!(w.profile_seconds, Some(enrolment.seconds as f32));
    }
    p.stop();
    let alone = analyze_samples(&load(), "x", &samples, 0.5).unwrap();
    let moved = offline
        .windows
        .iter()
        .zip(&alone.windows)
        .map(|(a, b)| {
            a.probs
                .iter()
                .zip(&b.probs)
                .map(|((_, x), (_, y))| (x - y).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0f32, f32::max);
    assert!(
        moved > 0.05,
        "the enrolment moves no probability by more than {moved}"
    );
}
