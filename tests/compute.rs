//! `--compute`: where a model runs, named in logs, the headless summary and the session
//! report, and the CPU taking over when the GPU cannot be used, at start or mid-session,
//! without the live stream stopping. On a build without CUDA (CI's) asking for a GPU is a
//! real start failure; the mid-session failure is injected (EMOSCOPE_FAIL_COMPUTE_AFTER)
//! as the virtual microphone tests stop a PulseAudio server.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use emoscope::model::{Classifier, Compute, BUILTIN_MODEL};

fn emoscope(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emoscope"));
    c.args(args).env_remove("EMOSCOPE_FAIL_COMPUTE_AFTER");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asking for a GPU this build lacks: the CPU runs the model, the warning says why and how
/// to build with CUDA, and the figures are the CPU's to the digit.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_this_build_lacks_falls_back_to_the_cpu_saying_why() {
    let cpu = emoscope(
        &["analyze", "builtin:demo", "--json", "--compute", "cpu"],
        &[],
    );
    assert!(cpu.status.success(), "{}", text(&cpu.stderr));
    assert!(
        !text(&cpu.stderr).contains("warning"),
        "{}",
        text(&cpu.stderr)
    );
    let gpu = emoscope(
        &["analyze", "builtin:demo", "--json", "--compute", "cuda:1"],
        &[],
    );
    assert!(gpu.status.success(), "{}", text(&gpu.stderr));
    let err = text(&gpu.stderr);
    assert!(
        err.contains("--compute cuda:1 asked for a GPU, but this emoscope was built without CUDA")
            && err.contains("--features cuda")
            && err.contains("the model runs on the CPU"),
        "{err}"
    );
    assert_eq!(text(&gpu.stdout), text(&cpu.stdout));
    // The table form names the device the model ran on.
    let table = emoscope(&["analyze", "builtin:demo", "--compute", "cuda"], &[]);
    assert!(
        text(&table.stdout).contains("(CPU)"),
        "{}",
        text(&table.stdout)
    );
}

#[test]
fn a_place_that_is_not_one_is_refused_with_the_forms_allowed() {
    for bad in ["tpu", "cuda:x", "cuda:"] {
        let o = emoscope(&["analyze", "builtin:demo", "--compute", bad], &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("'{bad}' is not a place to run a model"))
                && err.contains("auto, cpu, cuda or cuda:N"),
            "{bad}: {err}"
        );
    }
    // Every command that runs a model takes it.
    for cmd in [
        "analyze",
        "demo",
        "eval",
        "train",
        "finetune",
        "calibrate",
        "ensemble",
        "monitor",
    ] {
        let o = emoscope(&[cmd, "--help"], &[]);
        assert!(
            text(&o.stdout).contains("--compute <auto|cpu|cuda[:N]>"),
            "{cmd}"
        );
    }
}

/// The model moved to another device computes what it computed: the CPU-to-CPU move the
/// live path makes after a failure, on real windows of a real clip.
#[test]
fn a_model_moved_to_another_device_gives_the_same_probabilities() {
    if common::no_data("a_model_moved_to_another_device_gives_the_same_probabilities") {
        return;
    }
    let clf = Classifier::load_on(&PathBuf::from(BUILTIN_MODEL), Compute::Cpu)
        .unwrap()
        .0;
    let moved = clf.to_device(&candle_core::Device::Cpu).unwrap();
    let clip = common::data_dir().join("ravdess/Actor_02/03-01-05-02-02-02-02.flac");
    let audio = emoscope::audio::decode_file(&clip).unwrap();
    let y = emoscope::audio::resample(
        &audio.samples,
        audio.sample_rate,
        clf.card.features.sample_rate,
    )
    .unwrap();
    let a = emoscope::analysis::analyze_samples(&clf, "clip", &y, 0.5).unwrap();
    let b = emoscope::analysis::analyze_samples(&moved, "clip", &y, 0.5).unwrap();
    assert!(a.windows.len() >= 2);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

fn jsonl(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Inference failing mid-session (injected at the 2nd window): the model moves to the
/// CPU, every window is still classified, none is dropped, the probabilities are those of
/// an undisturbed run, and the summary and the session report say where the model ran.
#[test]
fn inference_failing_mid_session_moves_to_the_cpu_and_the_stream_goes_on() {
    if common::no_data("inference_failing_mid_session_moves_to_the_cpu_and_the_stream_goes_on") {
        return;
    }
    let clip = common::data_dir().join("ravdess/Actor_01/03-01-05-01-01-01-01.flac");
    let clip = clip.to_str().unwrap();
    let args = [
        "monitor",
        "--headless",
        "--fast",
        "--input",
        clip,
        "--compute",
        "cpu",
    ];
    let calm = emoscope(&args, &[]);
    assert!(calm.status.success(), "{}", text(&calm.stderr));
    let failing = emoscope(&args, &[("EMOSCOPE_FAIL_COMPUTE_AFTER", "1")]);
    assert!(failing.status.success(), "{}", text(&failing.stderr));
    let err = text(&failing.stderr);
    assert!(
        err.contains("warning: inference on CPU failed: model: injected failure")
            && err.contains("the model moves to the CPU and the stream goes on"),
        "{err}"
    );
    let (a, b) = (jsonl(&calm), jsonl(&failing));
    assert_eq!(a.len(), b.len());
    assert!(a.len() >= 3, "{} lines", a.len());
    for (x, y) in a.iter().zip(&b).take(a.len() - 1) {
        assert_eq!(x["probs"], y["probs"]);
        assert_eq!(y["dropped_samples"], 0);
        assert_eq!(y["dropped_windows"], 0);
    }
    let (s, t) = (&a.last().unwrap()["summary"], &b.last().unwrap()["summary"]);
    assert_eq!(s["compute"], "CPU");
    assert_eq!(s["compute_fallbacks"], 0);
    assert_eq!(t["compute"], "CPU (after CPU failed)");
    assert_eq!(t["compute_fallbacks"], 1);
    assert_eq!(s["windows"], t["windows"]);
    assert_eq!(t["dropped_samples"], 0);

    // The session report names it.
    let tmp = tempfile::tempdir().unwrap();
    let jl = tmp.path().join("s.jsonl");
    std::fs::write(&jl, &failing.stdout).unwrap();
    let out = tmp.path().join("report");
    let r = emoscope(
        &[
            "report",
            jl.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(r.status.success(), "{}", text(&r.stderr));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("session.json")).unwrap()).unwrap();
    assert_eq!(meta["meta"]["compute"], "CPU (after CPU failed)");
}
