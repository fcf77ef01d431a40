//! The module layering of ARCHITECTURE.md, enforced: every `crate::` path in a module's
//! code (comments aside) names only modules below it. A change that needs an upward import
//! either moves code down or changes the map, in ARCHITECTURE.md and here together.

use std::collections::BTreeSet;
use std::path::Path;

/// Each module and the modules it may import, as ARCHITECTURE.md's map lists them.
const MAP: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "analysis", "audio", "corpus", "dsp", "encoder", "features", "labels", "model", "npy",
            "pipeline", "train", "ui", "util", "font",
        ],
    ),
    (
        "ui",
        &[
            "train", "analysis", "pipeline", "model", "corpus", "features", "dsp", "audio",
            "labels", "util",
        ],
    ),
    (
        "train",
        &[
            "analysis", "pipeline", "model", "corpus", "features", "encoder", "dsp", "audio",
            "labels", "font", "npy", "util",
        ],
    ),
    (
        "analysis",
        &["pipeline", "model", "features", "audio", "labels"],
    ),
    (
        "pipeline",
        &[
            "model", "features", "dsp", "audio", "labels", "font", "util",
        ],
    ),
    (
        "model",
        &["features", "encoder", "kernel", "dsp", "labels", "util"],
    ),
    ("corpus", &["audio", "labels", "util"]),
    ("features", &["encoder", "dsp", "audio", "util"]),
    ("encoder", &["features", "kernel", "dsp", "audio", "util"]),
    ("kernel", &[]),
    ("dsp", &["audio"]),
    ("audio", &["util"]),
    ("labels", &[]),
    ("util", &[]),
    ("font", &[]),
    ("npy", &[]),
];

fn sources(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            sources(&e.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|x| x == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The emoscope modules a file's code names through `crate::` (comment lines skipped).
fn imports(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut upward = Vec::new();
    for (module, allowed) in MAP {
        let mut files = Vec::new();
        let dir = src.join(module);
        sources(if dir.is_dir() { &dir } else { &src }, &mut files);
        if !dir.is_dir() {
            files.retain(|f| f.file_name().unwrap() == format!("{module}.rs").as_str());
        }
        assert!(!files.is_empty(), "no source for module {module}");
        for f in files {
            checked += 1;
            for name in imports(&f) {
                let known = MAP.iter().any(|(m, _)| *m == name);
                if known && name != *module && !allowed.contains(&name.as_str()) {
                    upward.push(format!("{} imports crate::{name}", f.display()));
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} files read");
    assert!(
        upward.is_empty(),
        "imports against ARCHITECTURE.md's map:\n{}",
        upward.join("\n")
    );
}

/// The checker itself sees an upward import (so the test above can fail).
#[test]
fn an_upward_import_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.rs");
    std::fs::write(&f, "// crate::ui in a comment\nuse crate::ui::MonitorApp;\nfn f() { crate::util::percentile(&[], 0.5); }\n").unwrap();
    assert_eq!(
        imports(&f).into_iter().collect::<Vec<_>>(),
        vec!["ui".to_string(), "util".to_string()]
    );
}
