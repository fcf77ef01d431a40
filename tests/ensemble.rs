//! `emoscope ensemble`: trained models averaged into one model folder that runs wherever a
//! model does. Checked with the shipped weights: the ensemble's window probabilities are
//! the mean of its members' (each at its own card temperature), and members that would
//! make the ensemble's score dishonest or its input ill-defined are refused by name.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emoscope"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const CLIP: &str = "../shared/data/ravdess/Actor_01/03-01-05-02-01-01-01.flac";

/// Runs `c`, asserting it succeeded (its stderr in the message otherwise).
fn succeeded(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `emoscope ensemble ARGS --out OUT`, asserting it was refused: its stderr.
fn refused<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S], out: &Path) -> String {
    let o = bin()
        .arg("ensemble")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON file at `path` changed by `edit`, in place.
fn edit_json(path: &Path, edit: &dyn Fn(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

/// Each analysis window's probabilities, in label order, of every file `analyze --json`
/// reports (one JSON line each), file after file.
fn windows_of(out: &std::process::Output) -> Vec<Vec<f64>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["windows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    w["probs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p[1].as_f64().unwrap())
                        .collect()
                })
                .collect::<Vec<Vec<f64>>>()
        })
        .collect()
}

/// Each analysis window's probabilities of the test clip alone.
fn window_probs(model: &Path) -> Vec<Vec<f64>> {
    windows_of(&succeeded(
        bin()
            .args(["analyze", "--json", "--model"])
            .arg(model)
            .arg(CLIP),
    ))
}

/// A copy of the shipped fusion model with another card temperature.
fn fusion_at(dir: &Path, temperature: f64) -> PathBuf {
    model_copy(
        "weights/fusion",
        &dir.join(format!("fusion_t{temperature}")),
        &|card| card["temperature"] = temperature.into(),
    )
}

/// A copy of the shipped model folder `src` (from the repository root) at `out`, its card
/// changed by `edit`; the same weights.
fn model_copy(src: &str, out: &Path, edit: &dyn Fn(&mut serde_json::Value)) -> PathBuf {
    let src = root().join(src);
    std::fs::create_dir_all(out).unwrap();
    for f in ["card.json", "model.safetensors"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    edit_json(&out.join("card.json"), edit);
    out.to_path_buf()
}

fn card_temperature(dir: &Path) -> f64 {
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("card.json")).unwrap()).unwrap();
    card["temperature"].as_f64().unwrap()
}

#[test]
fn an_ensemble_gives_the_mean_of_its_members_probabilities_window_by_window() {
    if common::no_data("an_ensemble_gives_the_mean_of_its_members_probabilities_window_by_window") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fusion = root().join("weights/fusion");
    let t1 = card_temperature(&fusion);
    let soft = fusion_at(tmp.path(), 3.0);
    let ens = tmp.path().join("ens");
    succeeded(
        bin()
            .arg("ensemble")
            .arg(&fusion)
            .arg(&soft)
            .arg("--out")
            .arg(&ens),
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ens.join("card.json")).unwrap()).unwrap();
    assert_eq!(card["arch"]["name"], "ensemble");
    assert_eq!(card["arch"]["members"].as_array().unwrap().len(), 2);
    assert_eq!(card["arch"]["members"][1]["temperature"], 3.0);
    assert_eq!(card["temperature"], 1.0);
    assert_eq!(card["test_speakers"][0], "ravdess_01");

    // Member 1 is the same network at temperature t1, member 2 at 3.0, so from member 1's
    // probabilities p: member 2's are softmax(ln p * t1 / 3), and the ensemble's the mean.
    let p1 = window_probs(&fusion);
    let pe = window_probs(&ens);
    assert_eq!(p1.len(), pe.len());
    assert!(p1.len() >= 3, "{} windows", p1.len());
    let mut worst = 0.0f64;
    for (a, e) in p1.iter().zip(&pe) {
        let b: Vec<f64> = a.iter().map(|p| (p.ln() * t1 / 3.0).exp()).collect();
        let s: f64 = b.iter().sum();
        for k in 0..8 {
            let want = 0.5 * (a[k] + b[k] / s);
            worst = worst.max((want - e[k]).abs());
        }
    }
    assert!(worst < 2e-5, "ensemble differs from the mean by {worst}");
    // And it is not simply member 1.
    assert!(p1
        .iter()
        .zip(&pe)
        .any(|(a, e)| a.iter().zip(e).any(|(x, y)| (x - y).abs() > 1e-3)));
}

/// Each window's probabilities of `analyze --json --same-speaker` over `files`, file by file.
fn same_speaker_probs(model: &Path, files: &[PathBuf]) -> Vec<Vec<f64>> {
    windows_of(&succeeded(
        bin()
            .args(["analyze", "--json", "--same-speaker", "--model"])
            .arg(model)
            .args(files),
    ))
}

fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

/// `--profile-weighted 2`: member 2 counts for nothing while the speaker profile holds
/// only the window (one file's first window: the ensemble gives member 1's
/// probabilities) and fully against a profile of a speaker's 60 files (the plain mean).
#[test]
fn a_profile_weighted_member_counts_only_once_the_profile_holds_other_speech() {
    if common::no_data("a_profile_weighted_member_counts_only_once_the_profile_holds_other_speech")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fusion = root().join("weights/fusion");
    let soft = fusion_at(tmp.path(), 3.0);
    let make = |name: &str, weighted: bool| {
        let out = tmp.path().join(name);
        let mut c = bin();
        c.arg("ensemble")
            .arg(&fusion)
            .arg(&soft)
            .arg("--out")
            .arg(&out);
        if weighted {
            c.args(["--profile-weighted", "2"]);
        }
        succeeded(&mut c);
        out
    };
    let (plain, weighted) = (make("plain", false), make("weighted", true));
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(weighted.join("card.json")).unwrap())
            .unwrap();
    assert_eq!(card["arch"]["members"][1]["profile_ramp"], 8.0);
    assert!(card["arch"]["members"][0].get("profile_ramp").is_none());

    let alone = window_probs(&weighted);
    let first = |p: &[Vec<f64>]| vec![p[0].clone()];
    let d = max_difference(&first(&alone), &first(&window_probs(&fusion)));
    assert!(d < 1e-4, "first window alone differs from member 1 by {d}");
    let d = max_difference(&first(&alone), &first(&window_probs(&plain)));
    assert!(
        d > 1e-3,
        "the weighted member counted on a file alone ({d})"
    );

    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("../shared/data/ravdess/Actor_01"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let d = max_difference(
        &same_speaker_probs(&weighted, &files[..20]),
        &same_speaker_probs(&plain, &files[..20]),
    );
    assert!(
        d < 2e-5,
        "against a long profile it differs from the mean by {d}"
    );
}

#[test]
fn members_of_other_features_or_fine_tuned_ones_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |models: &[&str]| -> String { refused(models, &tmp.path().join("e")) };
    // emocnn has no prosody row and other test speakers.
    let e = run(&["weights/fusion", "weights/emocnn"]);
    assert!(
        e.contains("weights/emocnn") && e.contains("feature spec"),
        "{e}"
    );
    // A model fine-tuned to particular voices (its card names its base model).
    let tuned = fusion_at(tmp.path(), 1.5);
    edit_json(&tuned.join("card.json"), &|card| {
        card["base_model"] = "builtin:fusion".into()
    });
    let e = run(&["weights/fusion", tuned.to_str().unwrap()]);
    assert!(e.contains("fine-tuned") && e.contains("fusion_t1.5"), "{e}");
    let e = run(&["weights/fusion"]);
    assert!(e.contains("required") || e.contains("2"), "{e}");
    // A profile weight for a model that is not there, for every model, or a ramp of 0.
    let two = ["weights/fusion", "weights/fusion"];
    let e = run(&[&two[..], &["--profile-weighted", "3"]].concat());
    assert!(
        e.contains("--profile-weighted 3") && e.contains("1 to 2"),
        "{e}"
    );
    let e = run(&[
        &two[..],
        &["--profile-weighted", "1", "--profile-weighted", "2"],
    ]
    .concat());
    assert!(e.contains("every model"), "{e}");
    let e = run(&[
        &two[..],
        &["--profile-weighted", "2", "--profile-ramp", "0"],
    ]
    .concat());
    assert!(e.contains("--profile-ramp 0"), "{e}");
    assert!(
        !tmp.path().join("e").exists(),
        "nothing written for a refused ensemble"
    );
}

/// The shipped ensemble (`weights/fusion_prosody`, built in as `builtin:fusion_prosody`)
/// scores what its card says on RAVDESS actors 1-2, never trained on by either member:
/// 77 of 120 with each speaker's whole profile (fusion alone: 75).
#[test]
fn the_shipped_ensemble_scores_its_card_on_actors_one_and_two() {
    if common::no_data("the_shipped_ensemble_scores_its_card_on_actors_one_and_two") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("m.json");
    succeeded(
        bin()
            .args(["eval", "--model", "builtin:fusion_prosody", "--data"])
            .arg(format!(
                "ravdess={}",
                root().join("../shared/data/ravdess").display()
            ))
            .args(["--test-speakers", "ravdess:1,2", "--cache"])
            .arg(tmp.path().join("cache"))
            .arg("--json")
            .arg(&json),
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(m["n"], 120);
    assert_eq!(m["model"], "ensemble");
    let correct = (m["accuracy"].as_f64().unwrap() * 120.0).round() as i64;
    assert!((correct - 77).abs() <= 1, "{correct} of 120 right");
    assert!(m["ece_by_chance"].as_f64().unwrap() > 0.05);
}

/// A copy of the former default (one encoder head) with out-of-fold readings beside it, as
/// `train --crossfit` keeps them: 40 clips, all labelled neutral, read sure (logit 6) of
/// neutral on the clips `sure` picks and undecided on the rest.
fn head_with_readings(dir: &Path, name: &str, sure: &dyn Fn(usize) -> bool) -> PathBuf {
    let out = model_copy("weights/encoder_head_single", &dir.join(name), &|_| ());
    let logits: Vec<Vec<f32>> = (0..40)
        .map(|i| {
            let mut z = vec![0f32; 8];
            if sure(i) {
                z[0] = 6.0;
            }
            z
        })
        .collect();
    let readings: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({"clip": format!("c{i}.wav"), "profile": "clip", "label": 0}))
        .collect();
    let oof = serde_json::json!({"by": "speakers", "readings": readings, "owner": (0..40).collect::<Vec<_>>(), "logits": logits});
    std::fs::write(out.join("crossfit.json"), oof.to_string()).unwrap();
    out
}

/// Members that each kept their out-of-fold readings: the ensemble fits a temperature of
/// its own on those readings averaged (two members sure on different halves of the clips
/// average to right but unsure: below 1) and reads with it: its window probabilities are
/// the members' average raised to 1 / T and renormalised. Members that read other clips,
/// or one without readings, are said so by name.
#[test]
fn an_ensemble_of_cross_fitted_heads_fits_its_own_temperature() {
    if common::no_data("an_ensemble_of_cross_fitted_heads_fits_its_own_temperature") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = head_with_readings(tmp.path(), "a", &|i| i % 2 == 0);
    let b = head_with_readings(tmp.path(), "b", &|i| i % 2 == 1);
    let ens = tmp.path().join("ens");
    let out = succeeded(bin().arg("ensemble").arg(&a).arg(&b).arg("--out").arg(&ens));
    let t = card_temperature(&ens);
    assert!(t < 1.0, "ensemble temperature {t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ensemble temperature"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both members are the same head, so the average is one member's probabilities p, and
    // the ensemble's p^(1/T) renormalised.
    let p = window_probs(&a);
    let pe = window_probs(&ens);
    assert_eq!(p.len(), pe.len());
    let mut worst = 0.0f64;
    for (p, e) in p.iter().zip(&pe) {
        let q: Vec<f64> = p.iter().map(|v| v.powf(1.0 / t)).collect();
        let s: f64 = q.iter().sum();
        for k in 0..8 {
            worst = worst.max((q[k] / s - e[k]).abs());
        }
    }
    assert!(
        worst < 2e-5,
        "ensemble differs from the sharpened mean by {worst}"
    );

    // A member that read other clips out of fold: refused, naming both.
    edit_json(&b.join("crossfit.json"), &|oof| {
        oof["readings"][3]["clip"] = "elsewhere.wav".into()
    });
    let e = refused(&[&a, &b], &tmp.path().join("e2"));
    assert!(e.contains("read other clips") && e.contains("/b"), "{e}");
    // A member without readings: said so, and the average is read as it is.
    std::fs::remove_file(b.join("crossfit.json")).unwrap();
    let o = succeeded(
        bin()
            .arg("ensemble")
            .arg(&a)
            .arg(&b)
            .arg("--out")
            .arg(tmp.path().join("e3")),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("kept no out-of-fold readings"));
    assert_eq!(card_temperature(&tmp.path().join("e3")), 1.0);
}

/// A copy of the single enrolment head reading representation `layer` of the encoder (its
/// card's arch and encoder blocks changed; the same weights).
fn head_on_layer(dir: &Path, layer: usize) -> PathBuf {
    let out = dir.join(format!("layer{layer}"));
    model_copy("weights/encoder_head_single", &out, &|card| {
        card["arch"]["layer"] = layer.into();
        card["features"]["encoder"]["blocks"] = layer.into();
    })
}

/// Heads on different blocks of the encoder (as the default's three) make one ensemble: it
/// runs the encoder as far as its deepest member reads (the card says so), and each member
/// reads its own block, so the ensemble's windows are the mean of the members' read alone.
/// A member on other features than the encoder's blocks is still refused.
#[test]
fn heads_on_different_blocks_make_one_ensemble_each_reading_its_own() {
    if common::no_data("heads_on_different_blocks_make_one_ensemble_each_reading_its_own") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (l2, l3) = (head_on_layer(tmp.path(), 2), head_on_layer(tmp.path(), 3));
    let ens = tmp.path().join("ens");
    succeeded(
        bin()
            .arg("ensemble")
            .arg(&l3)
            .arg(&l2)
            .arg("--out")
            .arg(&ens),
    );
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ens.join("card.json")).unwrap()).unwrap();
    assert_eq!(card["features"]["encoder"]["blocks"], 3);
    assert_eq!(card["arch"]["members"][1]["arch"]["layer"], 2);
    let (p2, p3, pe) = (window_probs(&l2), window_probs(&l3), window_probs(&ens));
    assert!(pe.len() >= 3 && p2.len() == pe.len() && p3.len() == pe.len());
    let (mut worst, mut apart) = (0.0f64, 0.0f64);
    for ((a, b), e) in p2.iter().zip(&p3).zip(&pe) {
        for k in 0..8 {
            worst = worst.max((0.5 * (a[k] + b[k]) - e[k]).abs());
            apart = apart.max((a[k] - b[k]).abs());
        }
    }
    assert!(
        worst < 2e-5,
        "ensemble differs from the members' mean by {worst}"
    );
    // The two members read different blocks, so they differ: the check above can fail.
    assert!(
        apart > 0.05,
        "members on blocks 2 and 3 read alike ({apart})"
    );

    // Another level is another feature spec: refused, naming both.
    edit_json(&l2.join("card.json"), &|card| {
        card["features"]["encoder"]["level_db"] = 0.0.into()
    });
    let e = refused(&[&l3, &l2], &tmp.path().join("e2"));
    assert!(e.contains("other features") && e.contains("layer2"), "{e}");
}
