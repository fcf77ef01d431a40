//! Every input the fuzzers (fuzz/, cargo +nightly fuzz) found a fault with, kept as a test
//! that runs on stable: each gives a one-line error naming the file, within a bounded
//! allocation, never a crash.

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn decode_err(path: &Path) -> String {
    match emoscope::audio::decode_file(path) {
        Ok(c) => panic!("{} decoded ({} samples)", path.display(), c.samples.len()),
        Err(e) => e.to_string(),
    }
}

/// fuzz/decode_features, 2026-11-27: a 16 kB FLAC whose Vorbis comment claims
/// 1 701 015 141 bytes; symphonia allocated all of it before reading (libFuzzer
/// out-of-memory at -malloc_limit_mb=1024).
#[test]
fn a_flac_comment_claiming_1_7_gb_is_refused_before_allocating() {
    let p = fixture("fuzz/flac_comment_claims_1.7GB.flac");
    let e = decode_err(&p);
    assert!(
        e.contains("flac_comment_claims_1.7GB.flac")
            && e.contains("corrupt FLAC metadata: a comment claims 1701015141 bytes"),
        "{e}"
    );
}

/// The same fault in the other places it can sit: a FLAC metadata block past the end of
/// the file, and an Ogg Vorbis vendor string longer than the file. The valid originals
/// still decode.
#[test]
fn other_oversized_metadata_lengths_are_refused_and_valid_files_still_decode() {
    let dir = tempfile::tempdir().unwrap();
    let flac = std::fs::read(fixture("audio/tone.flac")).unwrap();
    emoscope::audio::decode_file(&fixture("audio/tone.flac")).unwrap();
    // The first block header follows "fLaC": claim 16 MB for it.
    let mut bad = flac.clone();
    bad[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    let p = dir.path().join("block.flac");
    std::fs::write(&p, &bad).unwrap();
    let e = decode_err(&p);
    assert!(
        e.contains("block.flac") && e.contains("past the end of the file"),
        "{e}"
    );

    let ogg = std::fs::read(fixture("audio/tone.ogg")).unwrap();
    emoscope::audio::decode_file(&fixture("audio/tone.ogg")).unwrap();
    let i = ogg
        .windows(7)
        .position(|w| w == b"\x03vorbis")
        .expect("comment header");
    let mut bad = ogg.clone();
    bad[i + 7..i + 11].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let p = dir.path().join("vendor.ogg");
    std::fs::write(&p, &bad).unwrap();
    let e = decode_err(&p);
    assert!(
        e.contains("vendor.ogg") && e.contains("vendor string claims 4294967280 bytes"),
        "{e}"
    );
}

/// fuzz/labels_csv, 2026-11-27: a clip path with NUL bytes was accepted; deleting the
/// clip then dropped it from the list and failed to remove the file. Now refused at open.
#[test]
fn a_labels_csv_path_with_nul_bytes_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("fuzz/labels_nul_byte.csv"),
        dir.path().join("labels.csv"),
    )
    .unwrap();
    let e = emoscope::corpus::store::ClipStore::open(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("labels.csv") && e.contains("line 2") && e.contains("NUL byte"),
        "{e}"
    );
}
