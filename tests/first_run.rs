//! What a new user meets first: the binary alone (as `cargo install` or the .deb puts it)
//! runs from any folder with its built-in model and demo clip; summaries of audio without
//! speech name no emotion; a file read as fast as possible loses no window.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emoscope"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `emoscope` run from `dir` with no model named anywhere.
fn run_in(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("EMOSCOPE_MODEL")
        .output()
        .unwrap()
}

fn analysis(json_line: &str) -> serde_json::Value {
    serde_json::from_str(json_line.trim()).unwrap()
}

/// The binary copied alone into an empty folder, run from another empty folder: the
/// built-in model and demo clip need nothing beside it, and the demo file in assets/
/// gives the same result as the built-in copy.
#[test]
fn the_binary_alone_runs_the_demo_from_any_folder() {
    let install = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let bin = install.path().join("emoscope");
    std::fs::copy(exe(), &bin).unwrap();

    let demo = analysis(&ok(
        run_in(&bin, elsewhere.path(), &["demo", "--json"]),
        "emoscope demo",
    ));
    let windows = demo["windows"].as_array().unwrap();
    // 10.14 s, 3 s windows every 0.5 s: starts 0, 0.5, ... 7.0.
    assert_eq!(windows.len(), 15);
    assert!((demo["duration"].as_f64().unwrap() - 10.14).abs() < 0.01);
    assert!(demo["speech_windows"].as_u64().unwrap() >= 10, "{demo}");
    assert!(demo["summary_top"].is_string(), "{demo}");
    let sum: f64 = demo["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4);

    // The same clip from the repository's assets/, copied next to the user.
    std::fs::copy(
        root().join("assets/demo.flac"),
        elsewhere.path().join("demo.flac"),
    )
    .unwrap();
    let file = analysis(&ok(
        run_in(&bin, elsewhere.path(), &["analyze", "--json", "demo.flac"]),
        "emoscope analyze demo.flac",
    ));
    assert_eq!(file["summary"], demo["summary"]);
    assert_eq!(file["windows"].as_array().unwrap().len(), windows.len());

    // The table names the built-in model.
    let table = ok(run_in(&bin, elsewhere.path(), &["demo"]), "emoscope demo");
    assert!(table.contains("encoder_head x3 - "), "{table}");
    assert!(table.contains("builtin:demo"), "{table}");
    // A named model folder that is not there is a clear error naming it.
    let o = run_in(
        &bin,
        elsewhere.path(),
        &["demo", "--model", "weights/emocnn"],
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("weights/emocnn") && e.lines().count() == 1,
        "{e}"
    );
}

/// The built-in models are `weights/encoder_head` (the default), `weights/fusion_prosody`
/// and `weights/fusion` as built: the same probabilities, window by window; the name of the
/// default before those says where it went.
#[test]
fn the_built_in_models_are_the_weights_folders() {
    let dir = root();
    let windows = |model: Option<&str>| {
        let mut args = vec!["analyze", "--json", "assets/demo.flac"];
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        analysis(&ok(run_in(&exe(), &dir, &args), model.unwrap_or("default")))["windows"].clone()
    };
    let default = windows(None);
    assert_eq!(default, windows(Some("builtin:encoder_head")));
    assert_eq!(default, windows(Some("weights/encoder_head")));
    let former = windows(Some("builtin:fusion_prosody"));
    assert_eq!(former, windows(Some("weights/fusion_prosody")));
    assert_ne!(default, former);
    let fusion = windows(Some("builtin:fusion"));
    assert_eq!(fusion, windows(Some("weights/fusion")));
    assert_ne!(former, fusion);
    let o = run_in(&exe(), &dir, &["demo", "--model", "builtin:emocnn"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("builtin:encoder_head") && e.contains("weights/emocnn"),
        "{e}"
    );
}

fn write_wav(path: &Path, samples: &[f32]) {
    emoscope::audio::write_wav_f32(path, samples, 16000).unwrap();
}

/// White noise and silence: every window says "no speech", and so do the summaries of
/// `analyze` and of the headless monitor: no emotion is named.
#[test]
fn without_speech_no_summary_names_an_emotion() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = 0x2545_f491u32;
    let noise: Vec<f32> = (0..16000 * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            0.3 * ((s as f32 / u32::MAX as f32) * 2.0 - 1.0)
        })
        .collect();
    write_wav(&tmp.path().join("noise.wav"), &noise);
    write_wav(&tmp.path().join("silence.wav"), &vec![0.0; 16000 * 3]);
    for f in ["noise.wav", "silence.wav"] {
        let r = analysis(&ok(
            run_in(&exe(), tmp.path(), &["analyze", "--json", f]),
            f,
        ));
        assert_eq!(r["speech_windows"], 0, "{f}: {r}");
        assert!(r["summary_top"].is_null(), "{f}: {r}");
        assert_eq!(r["summary"].as_array().unwrap().len(), 0, "{f}");
        let table = ok(run_in(&exe(), tmp.path(), &["analyze", f]), f);
        let summary = table.lines().find(|l| l.contains("summary")).unwrap();
        assert!(summary.contains("no speech"), "{summary}");
        assert!(
            !emoscope::labels::LABELS.iter().any(|l| summary.contains(l)),
            "{summary}"
        );

        let out = ok(
            run_in(
                &exe(),
                tmp.path(),
                &["monitor", "--headless", "--input", f, "--fast"],
            ),
            "monitor",
        );
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let sm = &last["summary"];
        assert_eq!(sm["speech_windows"], 0, "{f}: {sm}");
        assert!(
            sm["top"].is_null() && sm["mean_probs"].is_null(),
            "{f}: {sm}"
        );
    }
}

/// A 7.5-minute real recording (RAVDESS actors 1 and 2, all 120 clips back to back) read
/// as fast as possible: every window reaches the model, none is dropped, in order.
#[test]
fn a_long_file_read_as_fast_as_possible_loses_no_window() {
    if common::no_data("a_long_file_read_as_fast_as_possible_loses_no_window") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for actor in ["Actor_01", "Actor_02"] {
        let dir = root().join("../shared/data/ravdess").join(actor);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let c = emoscope::audio::decode_file(&f).unwrap();
            assert_eq!(c.sample_rate, 16000);
            all.extend_from_slice(&c.samples);
        }
    }
    assert!(all.len() > 16000 * 400, "{} s", all.len() / 16000);
    let wav = tmp.path().join("long.wav");
    write_wav(&wav, &all);
    let out = ok(
        run_in(
            &exe(),
            tmp.path(),
            &["monitor", "--headless", "--input", "long.wav", "--fast"],
        ),
        "monitor --fast",
    );
    let (summary, windows) = common::monitor_lines(&out);
    let expected = emoscope::pipeline::window_plan(all.len(), 48000, 8000).len();
    assert_eq!(expected, 899, "7.5 minutes in 3 s windows every 0.5 s");
    assert_eq!(windows.len(), expected);
    assert_eq!(summary["windows"], expected as u64);
    assert_eq!(summary["dropped_windows"], 0);
    assert_eq!(summary["dropped_samples"], 0);
    for (k, w) in windows.iter().enumerate() {
        assert!((w["t_start"].as_f64().unwrap() - k as f64 * 0.5).abs() < 1e-9);
    }
}

/// The Debian package (scripts/package_deb.sh, dpkg-deb): lists the binary, the desktop
/// entry and the icon, and the binary unpacked from it runs the demo. Skipped where
/// dpkg-deb is missing (not a Debian-family system).
#[test]
fn the_deb_package_holds_a_binary_that_runs_and_a_desktop_entry() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        eprintln!("skipped: no dpkg-deb on this system");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = ok(
        Command::new("bash")
            .arg(root().join("scripts/package_deb.sh"))
            .arg(exe())
            .arg(tmp.path())
            .output()
            .unwrap(),
        "package_deb.sh",
    );
    let deb = PathBuf::from(deb.trim());
    assert!(deb.exists(), "{}", deb.display());
    let listing = ok(
        Command::new("dpkg-deb")
            .arg("-c")
            .arg(&deb)
            .output()
            .unwrap(),
        "dpkg-deb -c",
    );
    for want in [
        "./usr/bin/emoscope",
        "./usr/share/applications/emoscope.desktop",
        "./usr/share/icons/hicolor/256x256/apps/emoscope.png",
        "./usr/share/doc/emoscope/copyright",
    ] {
        assert!(listing.contains(want), "{want} missing from\n{listing}");
    }
    let info = ok(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg("Package")
            .arg("Depends")
            .output()
            .unwrap(),
        "dpkg-deb -f",
    );
    assert!(
        info.contains("Package: emoscope") && info.contains("libasound2"),
        "{info}"
    );
    // Unpacked into an empty root, as dpkg would install it.
    let rootfs = tmp.path().join("root");
    ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&rootfs)
            .output()
            .unwrap(),
        "dpkg-deb -x",
    );
    let desktop =
        std::fs::read_to_string(rootfs.join("usr/share/applications/emoscope.desktop")).unwrap();
    assert!(desktop.contains("Exec=emoscope") && desktop.contains("Icon=emoscope"));
    let r = analysis(&ok(
        run_in(
            &rootfs.join("usr/bin/emoscope"),
            tmp.path(),
            &["demo", "--json"],
        ),
        "packaged emoscope demo",
    ));
    assert_eq!(r["windows"].as_array().unwrap().len(), 15);
}
