//! The prosody descriptors against openSMILE's eGeMAPSv02 on real clips of each corpus
//! (tests/fixtures/opensmile/llds.json, from scripts/make_opensmile_fixtures.py): F0 frame
//! by frame, the voicing decision, loudness contours and per-clip means, at openSMILE's
//! 10 ms frames.

mod common;

use emoscope::audio::{decode_file, resample};
use emoscope::dsp::prosody::{band_centres, spectral_llds, ProsodyAnalyser};
use emoscope::features::{FeatureExtractor, FeatureSpec, Normalisation};
use emoscope::model::Arch;
use emoscope::train::default_spec;

const SR: u32 = 16000;
const HOP: usize = 160;

struct Clip {
    path: String,
    f0: Vec<f32>,
    loudness: Vec<f32>,
}

fn fixtures() -> Vec<Clip> {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opensmile/llds.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let floats = |c: &serde_json::Value, k: &str| -> Vec<f32> {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    v["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Clip {
            path: c["path"].as_str().unwrap().to_string(),
            f0: floats(c, "f0_semitones"),
            loudness: floats(c, "loudness"),
        })
        .collect()
}

/// Ours and openSMILE's value of frame `i` when ours lag theirs by `lag` frames.
fn pairs<'a>(
    ours: &'a [f32],
    theirs: &'a [f32],
    lag: isize,
) -> impl Iterator<Item = (f32, f32)> + 'a {
    theirs.iter().enumerate().filter_map(move |(i, &t)| {
        let j = i as isize + lag;
        (j >= 0 && (j as usize) < ours.len()).then(|| (ours[j as usize], t))
    })
}

fn pearson(p: &[(f32, f32)]) -> f64 {
    let n = p.len() as f64;
    let (mx, my) = p.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
        (a + x as f64 / n, b + y as f64 / n)
    });
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in p {
        let (dx, dy) = (x as f64 - mx, y as f64 - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    sxy / (sxx * syy).sqrt().max(1e-30)
}

#[test]
fn f0_and_loudness_follow_opensmile_on_real_clips() {
    if common::no_data("f0_and_loudness_follow_opensmile_on_real_clips") {
        return;
    }
    let analyser = ProsodyAnalyser::new(SR, HOP);
    // emocnn's features at openSMILE's 10 ms hop.
    let spec = FeatureSpec {
        hop_length: HOP,
        normalisation: Normalisation::None,
        ..default_spec(&Arch::EmoCnn { width: 24 })
    };
    let ex = FeatureExtractor::new(&spec).unwrap();
    let centres = band_centres(64, 50.0, 7600.0);
    let (mut all_within, mut all_both, mut agree, mut frames) = (0usize, 0usize, 0usize, 0usize);
    for clip in fixtures() {
        let a = decode_file(&common::data_dir().join(&clip.path)).unwrap();
        let x = resample(&a.samples, a.sample_rate, SR).unwrap();
        let (rows, wave) = analyser.analyse(&x);
        let n = wave.len() / rows;
        let f0 = &wave[..n];
        let db = ex.db_mel(&clip.path, &x).unwrap();
        let loud = spectral_llds(&db.data, db.frames, &centres)[..db.frames].to_vec();
        // openSMILE's frames start where ours are centred; find the lag (in 10 ms frames)
        // where the loudness contours agree best, and hold both descriptors to it.
        let (lag, r) = (-8..=8)
            .map(|lag| {
                let p: Vec<(f32, f32)> = pairs(&loud, &clip.loudness, lag)
                    .filter(|(o, _)| o.is_finite())
                    .collect();
                (lag, pearson(&p))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            (-6..=6).contains(&lag),
            "{}: loudness best aligned at lag {lag}",
            clip.path
        );
        // Loudness: openSMILE's is Zwicker-style on an auditory spectrum, ours Stevens'
        // power 0.3 on the mel bands; the scales differ, the contours must not.
        assert!(
            r > 0.95,
            "{}: loudness contour r = {r:.3} against openSMILE",
            clip.path
        );
        // openSMILE's pitch frames are 60 ms long and start at their time stamp (centred
        // 30 ms later, where its loudness frames are centred 10 ms later): F0 has its own
        // lag, the one where the most frames voiced in both agree within a semitone.
        let f0_lag = (-8..=8isize)
            .max_by_key(|&l| {
                pairs(f0, &clip.f0, l)
                    .filter(|&(o, t)| o.is_finite() && t > 0.0 && (o - t).abs() < 1.0)
                    .count()
            })
            .unwrap();
        assert!(
            (0..=6).contains(&f0_lag),
            "{}: F0 best aligned at lag {f0_lag}",
            clip.path
        );
        let p: Vec<(f32, f32)> = pairs(f0, &clip.f0, f0_lag).collect();
        let both: Vec<(f32, f32)> = p
            .iter()
            .copied()
            .filter(|&(o, t)| o.is_finite() && t > 0.0)
            .collect();
        let within = both.iter().filter(|(o, t)| (o - t).abs() < 1.0).count();
        let same = p
            .iter()
            .filter(|&&(o, t)| o.is_finite() == (t > 0.0))
            .count();
        let mut d: Vec<f32> = both.iter().map(|(o, t)| (o - t).abs()).collect();
        d.sort_by(f32::total_cmp);
        let median = d.get(d.len() / 2).copied().unwrap_or(f32::NAN);
        eprintln!(
            "{}: lag {lag}, loudness r {r:.3}, F0 lag {f0_lag} on {} frames voiced in both: median |diff| {median:.2} st, {:.0} % within 1 st; voicing agrees on {:.0} % of {} frames",
            clip.path,
            both.len(),
            100.0 * within as f64 / both.len().max(1) as f64,
            100.0 * same as f64 / p.len() as f64,
            p.len()
        );
        assert!(
            both.len() > 30,
            "{}: only {} frames voiced in both",
            clip.path,
            both.len()
        );
        assert!(
            median < 0.2,
            "{}: median F0 difference {median} st",
            clip.path
        );
        all_within += within;
        all_both += both.len();
        agree += same;
        frames += p.len();
    }
    let within = all_within as f64 / all_both as f64;
    let agreement = agree as f64 / frames as f64;
    eprintln!(
        "all clips: F0 within 1 st on {:.1} %, voicing agrees on {:.1} %",
        within * 100.0,
        agreement * 100.0
    );
    assert!(
        within > 0.9,
        "F0 within 1 semitone of openSMILE's on {:.1} % of frames",
        within * 100.0
    );
    assert!(
        agreement > 0.85,
        "voicing agrees with openSMILE's on {:.1} % of frames",
        agreement * 100.0
    );
}
