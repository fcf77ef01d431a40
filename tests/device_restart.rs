//! The microphone vanishing and coming back through the real cpal path: the PulseAudio
//! server behind the virtual microphone (scripts/virtual-mic.sh) is stopped 4 s into a
//! headless monitor run and started again 1.5 s later. The stream is reopened once, the
//! gap is reported (stderr and the summary's gap_seconds), windows go on after it, and
//! nothing panics. A file of its own: it restarts the server the other virtual-microphone
//! tests use, and test binaries run one at a time.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Writes a 200 Hz tone into the FIFO at real-time pace, reopening it (and restarting its
/// clock) whenever the server goes away, until `stop`.
fn writer(fifo: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // No O_CREAT: while the server is down the FIFO does not exist, and a plain
            // file made in its place would hang the next server's module load.
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            // The clock restarts with each server, so the audio never comes in a burst.
            common::write_paced(&mut f, &stop, |_| {
                k += 1;
                0.25 * (k as f32 * 2.0 * std::f32::consts::PI * 200.0 / 16000.0).sin()
            });
        }
    })
}

fn virtual_mic(action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/virtual-mic.sh");
    let o = Command::new("bash")
        .arg(script)
        .arg(action)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "virtual-mic.sh {action}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_microphone_vanishing_and_returning_is_reopened_and_the_gap_reported() {
    let Ok(fifo) = std::env::var("EMOSCOPE_VIRTUAL_MIC") else {
        eprintln!("skipped: no virtual microphone (eval \"$(bash scripts/virtual-mic.sh start)\" first; CI does)");
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(fifo, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let monitor = Command::new(env!("CARGO_BIN_EXE_emoscope"))
        .args(["monitor", "--headless", "--duration", "12"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    virtual_mic("stop");
    std::thread::sleep(Duration::from_millis(1500));
    virtual_mic("start");
    let o = monitor.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("reopened;") && err.contains("s of audio are missing"),
        "{err}"
    );
    let (s, windows) = common::monitor_lines(&String::from_utf8_lossy(&o.stdout));
    eprintln!("{s}");
    assert_eq!(s["reopens"], 1, "{s}");
    let gap = s["gap_seconds"].as_f64().unwrap();
    assert!((1.0..8.0).contains(&gap), "gap {gap} s: {s}");
    assert_eq!(s["dropped_samples"], 0, "{s}");
    // 12 s of monitoring less the gap, a window every 0.5 s once the first 3 s are in.
    let want = ((12.0 - gap - 3.0) / 0.5) as usize - 2;
    assert!(
        windows.len() >= want,
        "{} windows, expected >= {want}: {s}",
        windows.len()
    );
    let after: Vec<_> = windows
        .iter()
        .filter(|w| w["t_start"].as_f64().unwrap() > 4.0)
        .collect();
    assert!(!after.is_empty(), "no window after the gap");
    assert!(after
        .iter()
        .all(|w| w["speech"] == true || w["speech"] == false));
}
