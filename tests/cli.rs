//! The `features` and `info` commands as a user runs them: outputs compared with librosa
//! fixtures, exit codes, and one-line errors that name the fault.

mod common;

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
    if common::no_data("features_command_writes_librosa_equal_npy") {
        return;
    }
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

/// A PCM WAV is read block by block straight from the file (never decoded whole): the
/// same clip as 16-bit mono, as 16-bit stereo with identical channels and as 32-bit float
/// gives librosa's MFCCs, and matches the decoded in-memory path to float rounding.
#[test]
fn wav_files_are_streamed_to_the_same_features() {
    if common::no_data("wav_files_are_streamed_to_the_same_features") {
        return;
    }
    use emoscope::audio::{decode_file, write_wav_f32};
    let dir = tempfile::tempdir().unwrap();
    let clip = decode_file(&root().join(CLIP)).unwrap();
    // The FLAC holds 16-bit samples, so x * 32768 is exact: the WAVs hold the same signal.
    let write_i16 = |path: &Path, channels: u16| {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &x in &clip.samples {
            for _ in 0..channels {
                w.write_sample((x * 32768.0) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    };
    let mono = dir.path().join("mono.wav");
    write_i16(&mono, 1);
    let stereo = dir.path().join("stereo.wav");
    write_i16(&stereo, 2);
    let float = dir.path().join("float.wav");
    write_wav_f32(&float, &clip.samples, 16000).unwrap();
    let (_, reference) =
        read_npy_f32(&root().join("tests/fixtures/librosa/speech16k__ravdess_angry__mfcc.npy"))
            .unwrap();
    let mut outputs = Vec::new();
    for input in [&mono, &stereo, &float] {
        let out = dir.path().join("m.npy");
        let st = bin()
            .arg("features")
            .arg(input)
            .args(["--kind", "mfcc", "--n-fft", "400", "--hop-length", "160"])
            .args(["--n-mels", "64", "--n-mfcc", "20", "--out"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "{}", input.display());
        let (_, ours) = read_npy_f32(&out).unwrap();
        assert!(max_rel(&ours, &reference) < 1e-3, "{}", input.display());
        outputs.push(ours);
    }
    let spec = emoscope::features::FeatureSpec {
        kind: emoscope::features::FeatureKind::Mfcc,
        sample_rate: 16000,
        n_fft: 400,
        hop_length: 160,
        n_mels: 64,
        n_mfcc: 20,
        ..Default::default()
    };
    let in_memory = emoscope::features::FeatureExtractor::new(&spec)
        .unwrap()
        .compute("clip", &clip.samples)
        .unwrap();
    for ours in &outputs {
        assert!(max_rel(ours, &in_memory.data) < 1e-6);
    }

    // A NaN in a float WAV is found while streaming and named by its sample index.
    let mut bad = clip.samples.clone();
    bad[20_000] = f32::NAN;
    write_wav_f32(&float, &bad, 16000).unwrap();
    let out = dir.path().join("bad.npy");
    let e = one_line_error(&[
        "features",
        float.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("float.wav") && e.contains("sample 20000"), "{e}");
    assert!(!out.exists());
}

#[test]
fn info_reports_rate_channels_and_duration() {
    if common::no_data("info_reports_rate_channels_and_duration") {
        return;
    }
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
    if common::no_data("bad_input_exits_non_zero_with_a_one_line_error_naming_the_fault") {
        return;
    }
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
    // Resampled to 4 kHz the clip has fewer samples than the largest FFT allowed.
    let e = one_line_error(&[
        "features",
        CLIP,
        "--sr",
        "4000",
        "--n-fft",
        "32768",
        "--hop-length",
        "512",
        "--out",
        out_s,
    ]);
    assert!(e.contains("shorter than n_fft"), "{e}");
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
    assert!(e.contains("n_fft = 131072: must be at most 32768"), "{e}");
    let junk = dir.path().join("junk.flac");
    std::fs::write(&junk, b"fLaC but then nothing useful at all").unwrap();
    let e = one_line_error(&["info", junk.to_str().unwrap()]);
    assert!(e.contains("junk.flac"), "{e}");
    assert!(!Path::new(out_s).exists(), "no output on failure");

    // A full disk: the write error names the file and says why.
    if Path::new("/dev/full").exists() {
        let e = one_line_error(&["features", CLIP, "--out", "/dev/full"]);
        assert!(
            e.contains("/dev/full") && e.contains("No space left"),
            "{e}"
        );
        assert!(Path::new("/dev/full").exists());
    }
}

/// `train --no-validation` leaves no speakers to fit the temperature on, so a head needs
/// cross-fitting with it, and the networks on feature packs (which pick their epoch on the
/// validation speakers) refuse it; both before any encoding or training starts.
#[test]
fn training_without_validation_speakers_needs_cross_fitting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = |arch: &'static str| {
        vec![
            "train",
            "--data",
            "ravdess=../shared/data/ravdess",
            "--arch",
            arch,
            "--test-speakers",
            "ravdess:1,2",
            "--no-validation",
            "--out",
            out.to_str().unwrap(),
        ]
    };
    let e = one_line_error(&args("encoder_head_enrol"));
    assert!(
        e.contains("--no-validation") && e.contains("--crossfit"),
        "{e}"
    );
    let e = one_line_error(&args("emocnn"));
    assert!(
        e.contains("--no-validation applies to encoder heads only"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written on refusal");
}

/// `--layer` picks the encoder's representation a head reads: 0 to 4, and for encoder
/// heads only; anything else is refused in one line before anything is written.
#[test]
fn a_head_layer_is_checked_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let args = |arch: &'static str, layer: &'static str| {
        vec![
            "train",
            "--data",
            "ravdess=../shared/data/ravdess",
            "--arch",
            arch,
            "--test-speakers",
            "ravdess:1,2",
            "--layer",
            layer,
            "--out",
            out.to_str().unwrap(),
        ]
    };
    // Out of range: clap's usage error (exit 2), naming the range.
    let o = bin()
        .args(args("encoder_head_enrol", "5"))
        .current_dir(root())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--layer") && e.contains("0..=4"), "{e}");
    let e = one_line_error(&args("fser", "2"));
    assert!(e.contains("--layer applies to encoder heads only"), "{e}");
    assert!(!out.exists(), "nothing written on refusal");
}

/// A headless session of a real angry clip turned into the clinician's files: the CSV has
/// one row per window with the top label, the JSON's distribution is all angry.
#[test]
fn report_turns_a_headless_session_into_csv_json_and_png() {
    if common::no_data("report_turns_a_headless_session_into_csv_json_and_png") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("s.jsonl");
    let clip = root().join("../shared/data/ravdess/Actor_02/03-01-05-02-02-02-02.flac");
    let o = bin()
        .current_dir(root())
        // The former default, which calls this sentence angry in every window: the test
        // is about the report, so the model is fixed.
        .args([
            "monitor",
            "--headless",
            "--fast",
            "--model",
            "weights/emocnn",
            "--input",
        ])
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
        .args(["--model", "weights/emocnn"])
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

/// A reader that closes emoscope's output early (`emoscope analyze ... | head -1`) ends it
/// quietly with status 141, as a closed pipe ends other command-line tools: no panic, no
/// backtrace.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    if common::no_data("a_closed_output_pipe_ends_quietly") {
        return;
    }
    use std::io::BufRead;
    let clips: Vec<PathBuf> = (1..=6)
        .map(|k| {
            root().join(format!(
                "../shared/data/ravdess/Actor_01/03-01-0{k}-01-01-01-01.flac"
            ))
        })
        .collect();
    let mut child = bin()
        .args(["analyze", "--json"])
        .args(&clips)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here, closing the pipe while the other clips are analysed.
    assert!(first.contains("\"summary\""), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
