//! Shared by the integration tests: whether the corpora beside the checkout
//! (`../shared/data`: RAVDESS, EMOVO, nEMO) are there. A fresh clone on its own has none,
//! and its tests that need them say they were skipped; CI sets `EMOSCOPE_REQUIRE_DATA=1`,
//! where a missing corpus fails instead.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/data` beside the checkout.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// True (after saying so) when the corpora are missing and the calling test should
/// return without checking anything; panics instead under `EMOSCOPE_REQUIRE_DATA=1`.
pub fn no_data(test: &str) -> bool {
    let ravdess = data_dir().join("ravdess/Actor_01");
    if ravdess.is_dir() {
        return false;
    }
    if std::env::var_os("EMOSCOPE_REQUIRE_DATA").is_some() {
        panic!(
            "{test}: the corpora are missing ({} does not exist) and EMOSCOPE_REQUIRE_DATA is set",
            ravdess.display()
        );
    }
    eprintln!(
        "{test} skipped: no corpora at {} (put RAVDESS, EMOVO and nEMO there to run it)",
        data_dir().display()
    );
    true
}

/// Writes `sample(k)` for k = 0, 1, ... as s16le into `out` at real-time pace (16 kHz, 10 ms
/// blocks), as a microphone would deliver it, until `stop` is set or a write fails (the
/// virtual microphone's server went away); returns how many samples were written.
pub fn write_paced(
    out: &mut impl std::io::Write,
    stop: &std::sync::atomic::AtomicBool,
    mut sample: impl FnMut(u64) -> f32,
) -> u64 {
    let t0 = std::time::Instant::now();
    let mut i = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let block: Vec<u8> = (i..i + 160)
            .flat_map(|k| ((sample(k).clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        if out.write_all(&block).is_err() {
            break;
        }
        i += 160;
        let due = t0 + std::time::Duration::from_secs_f64(i as f64 / 16000.0);
        if let Some(w) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(w);
        }
    }
    i
}

/// The JSON lines `emoscope monitor --headless` printed: its summary (the last line's
/// `summary` object) and its window lines.
pub fn monitor_lines(stdout: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.pop().expect("no output");
    let summary = last
        .get("summary")
        .cloned()
        .unwrap_or_else(|| panic!("the last line is not the summary: {last}"));
    (summary, lines)
}
