//! The `features` and `info` commands as a user runs them: outputs compared with librosa
//! fixtures, exit codes, and one-line errors that name the fault.

use std::path::{Path, PathBuf};
use std::process::Command;

use emoscope::npy::read_npy_f32;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emoscope"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const CLIP: &str = "../shared/data/ravdess/Actor_01/03-01-05-02-01-01-01.flac";

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn features_command_writes_librosa_equal_npy() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.npy");
    let st = bin()
        .args([
            "features",
            CLIP,
            "--kind",
            "mfcc",
            "--n-fft",
            "400",
            "--hop-length",
            "160",
            "--n-mels",
            "64",
            "--n-mfcc",
            "20",
            "--out",
        ])
        .arg(&out)
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success());
    let (shape, ours) = read_npy_f32(&out).unwrap();
    let (rshape, reference) =
        read_npy_f32(&root().join("tests/fixtures/librosa/speech16k__ravdess_angry__mfcc.npy"))
            .unwrap();
    assert_eq!(shape, rshape);
    assert!(max_rel(&ours, &reference) < 1e-3);

    let st = bin()
        .args([
            "features",
            CLIP,
            "--kind",
            "mel",
            "--db",
            "--n-fft",
            "512",
            "--hop-length",
            "160",
            "--n-mels",
            "40",
            "--fmin",
            "50",
            "--fmax",
            "7000",
            "--out",
        ])
        .arg(&out)
        .current_dir(root())
        .status()
        .unwrap();
    assert!(st.success());
    let (_, ours) = read_npy_f32(&out).unwrap();
    let (_, reference) = read_npy_f32(
        &root().join("tests/fixtures/librosa/speech16k_band__ravdess_angry__meldb.npy"),
    )
    .unwrap();
    assert!(max_rel(&ours, &reference) < 1e-3);
}

#[test]
fn info_reports_rate_channels_and_duration() {
    let o = bin()
        .args(["info", CLIP])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("sample rate: 16000 Hz"), "{s}");
    assert!(s.contains("channels:    1"), "{s}");
}

fn one_line_error(args: &[&str]) -> String {
    let o = bin().args(args).current_dir(root()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{args:?} should exit 1");
    let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert_eq!(e.lines().count(), 1, "error should be one line: {e}");
    assert!(e.starts_with("error: "), "{e}");
    e
}

#[test]
fn bad_input_exits_non_zero_with_a_one_line_error_naming_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.npy");
    let out_s = out.to_str().unwrap();
    let e = one_line_error(&["features", "no/such/file.wav", "--out", out_s]);
    assert!(e.contains("no/such/file.wav"), "{e}");
    let e = one_line_error(&[
        "features",
        CLIP,
        "--n-fft",
        "256",
        "--hop-length",
        "512",
        "--out",
        out_s,
    ]);
    assert!(e.contains("n_fft"), "{e}");
    let e = one_line_error(&[
        "features",
        CLIP,
        "--n-fft",
        "256",
        "--n-mels",
        "300",
        "--hop-length",
        "128",
        "--out",
        out_s,
    ]);
    assert!(e.contains("n_mels"), "{e}");
    let e = one_line_error(&[
        "features",
        CLIP,
        "--n-fft",
        "131072",
        "--hop-length",
        "512",
        "--out",
        out_s,
    ]);
    assert!(e.contains("shorter than n_fft"), "{e}");
    let junk = dir.path().join("junk.flac");
    std::fs::write(&junk, b"fLaC but then nothing useful at all").unwrap();
    let e = one_line_error(&["info", junk.to_str().unwrap()]);
    assert!(e.contains("junk.flac"), "{e}");
    assert!(!Path::new(out_s).exists(), "no output on failure");
}

/// A headless session of a real angry clip turned into the clinician's files: the CSV has
/// one row per window with the top label, the JSON's distribution is all angry.
#[test]
fn report_turns_a_headless_session_into_csv_json_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("s.jsonl");
    let clip = root().join("../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac");
    let o = bin()
        .current_dir(root())
        .args(["monitor", "--headless", "--fast", "--input"])
        .arg(&clip)
        .arg("--jsonl")
        .arg(&jsonl)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("report");
    let o = bin()
        .current_dir(root())
        .arg("report")
        .arg(&jsonl)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("session.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "3 windows in a 3.7 s clip: {csv}");
    assert!(rows.iter().all(|r| r.contains(",true,angry,")), "{csv}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("session.json")).unwrap()).unwrap();
    assert_eq!(j["distribution"][4], serde_json::json!(["angry", 1.0]));
    assert!(j["meta"]["model"]
        .as_str()
        .unwrap()
        .starts_with("emocnn - "));
    assert!(std::fs::metadata(out.join("report.png")).unwrap().len() > 10_000);
    // A file that is not a session is named.
    let o = bin()
        .arg("report")
        .arg(&clip)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("03-01-05-02-02-02-02.flac"), "{e}");
}
