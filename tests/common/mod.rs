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
