//! Arbitrary bytes as a session.jsonl read by `emoscope report`; what it accepts is then
//! exported (CSV, JSON summary) as the report command does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let path = dir.path().join("session.jsonl");
    std::fs::write(&path, data).unwrap();
    if let Ok(rows) = emoscope::pipeline::export::read_jsonl(&path) {
        for r in &rows {
            assert!(r.probs.len() == 8);
        }
    }
});
