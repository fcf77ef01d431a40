//! Arbitrary bytes as a clip folder's labels.csv, read by the clip store and the corpus
//! reader; whatever they accept must stay inside the folder, and a store that opened
//! must write the list back unchanged in meaning, through relabel and delete.
#![no_main]

use emoscope::corpus::store::ClipStore;
use emoscope::corpus::{load, CorpusKind, DataSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let root = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let dir = root.path().join("clips");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("labels.csv"), data).unwrap();
    let real = dir.canonicalize().unwrap();
    if let Ok(c) = load(&DataSource {
        kind: CorpusKind::Csv,
        path: dir.join("labels.csv"),
    }) {
        for clip in &c.clips {
            let p = clip.path.canonicalize().unwrap_or_else(|_| clip.path.clone());
            assert!(
                p.starts_with(&real) || p.starts_with(&dir),
                "{} escapes {}",
                p.display(),
                dir.display()
            );
        }
    }
    if let Ok(mut store) = ClipStore::open(&dir) {
        let n = store.clips.len();
        for i in 0..n {
            assert!(store.path_of(i).unwrap().starts_with(&dir));
        }
        if n > 0 {
            store.relabel(0, 3).unwrap();
            let again = ClipStore::open(&dir).unwrap();
            assert_eq!(again.clips, store.clips);
            // Deleting may fail (the entry is a folder, say), but the list survives it
            // and says the same as the store.
            let _ = store.delete(n - 1);
            let again = ClipStore::open(&dir).unwrap();
            assert_eq!(again.clips, store.clips);
        }
    }
});
