//! Paths read from a labels.csv stay inside its folder: an absolute path, `..`, or a
//! symlink leading outside is refused with an error naming the line, and delete, relabel
//! and fine-tuning never touch the file outside (each test checks it still exists).

use std::path::{Path, PathBuf};

use emoscope::corpus::store::ClipStore;
use emoscope::corpus::{load, CorpusKind, DataSource};

/// A folder holding `outside/precious.txt` and an empty clip folder `clips/`.
fn layout() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let precious = outside.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let clips = root.path().join("clips");
    std::fs::create_dir(&clips).unwrap();
    (root, clips, precious)
}

fn write_csv(dir: &Path, rows: &[&str]) -> PathBuf {
    let csv = dir.join("labels.csv");
    let mut text = String::from("path,emotion,speaker\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    csv
}

fn tone() -> Vec<f32> {
    (0..8000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect()
}

/// Every hostile form is refused by the clip store and the corpus reader (the one
/// fine-tuning reads a clip folder with), naming line 3; the outside file stays.
#[test]
fn hostile_paths_in_labels_csv_are_refused_and_nothing_outside_is_touched() {
    let (root, clips, precious) = layout();
    std::os::unix::fs::symlink(&precious, clips.join("link.wav")).unwrap();
    std::os::unix::fs::symlink(precious.parent().unwrap(), clips.join("sub")).unwrap();
    let forms = [
        (precious.display().to_string(), "is absolute"),
        ("../outside/precious.txt".to_string(), "goes up with '..'"),
        (
            "ok/../../outside/precious.txt".to_string(),
            "goes up with '..'",
        ),
        ("link.wav".to_string(), "through a symlink"),
        ("sub/precious.txt".to_string(), "through a symlink"),
        // A file not there yet, in a folder that is a symlink to outside.
        ("sub/new.wav".to_string(), "through a symlink"),
        // Found by fuzz/labels_csv: a NUL byte made delete drop the entry, then fail.
        ("angry\0.wav".to_string(), "NUL byte"),
        // Deleting it would delete the list.
        ("./labels.csv".to_string(), "names the labels.csv itself"),
        ("./.".to_string(), "names the folder itself"),
    ];
    for (path, why) in &forms {
        let row = format!("{path},angry,me");
        let csv = write_csv(&clips, &["fine.wav,happy,me", &row]);
        let before = std::fs::read_to_string(&csv).unwrap();
        let e = ClipStore::open(&clips).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains(why), "{path}: {e}");
        assert!(e.contains("labels.csv"), "{path}: {e}");
        let e = load(&DataSource {
            kind: CorpusKind::Csv,
            path: csv.clone(),
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3") && e.contains(why), "{path}: {e}");
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), before, "{path}");
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    }
    drop(root);
}

/// A symlink swapped in after the folder was opened: delete refuses it (and keeps the
/// list), relabel only rewrites the list, and the outside file stays.
#[test]
fn a_symlink_swapped_in_after_opening_is_not_followed_by_delete() {
    let (_root, clips, precious) = layout();
    let mut store = ClipStore::open(&clips).unwrap();
    let i = store.add(&tone(), 16000, 4, "me").unwrap();
    store.add(&tone(), 16000, 2, "me").unwrap();
    let file = store.path_of(i).unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&precious, &file).unwrap();
    store.relabel(i, 3).unwrap();
    let e = store.delete(i).unwrap_err().to_string();
    assert!(
        e.contains("through a symlink") && e.contains("left alone"),
        "{e}"
    );
    assert_eq!(store.clips.len(), 2, "the list keeps the clip");
    let e = ClipStore::open(&clips).unwrap_err().to_string();
    assert!(
        e.contains("line 2") && e.contains("through a symlink"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

/// Ordinary layouts still work: subfolders, `./`, and a clip folder reached through a
/// symlink (its files resolve inside it).
#[test]
fn subfolders_and_a_symlinked_clip_folder_are_accepted() {
    let (root, clips, _precious) = layout();
    std::fs::create_dir(clips.join("day1")).unwrap();
    let mut store = ClipStore::open(&clips).unwrap();
    store.add(&tone(), 16000, 4, "me").unwrap();
    let name = store.clips[0].file.clone();
    std::fs::rename(clips.join(&name), clips.join("day1").join(&name)).unwrap();
    write_csv(
        &clips,
        &[
            &format!("day1/{name},angry,me"),
            &format!("./day1/{name},sad,me"),
        ],
    );
    let via = root.path().join("via-link");
    std::os::unix::fs::symlink(&clips, &via).unwrap();
    let mut store = ClipStore::open(&via).unwrap();
    assert_eq!(store.clips.len(), 2);
    let c = load(&DataSource {
        kind: CorpusKind::Csv,
        path: via.join("labels.csv"),
    })
    .unwrap();
    assert_eq!(c.clips.len(), 2);
    emoscope::audio::decode_file(&c.clips[0].path).unwrap();
    store.delete(1).unwrap();
    assert!(!clips.join("day1").join(&name).exists());
}
