//! Every relative link in README.md, ARCHITECTURE.md and docs/*.md resolves: the file
//! exists, and an anchor (`file.md#heading`) names a heading of that file as GitHub spells
//! its anchors. Links to the web are not fetched.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The targets of `[text](target)` and `![alt](target)` links in markdown text, code
/// blocks and inline code skipped.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop inline code spans.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

fn broken_links_in(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let dir = file.parent().unwrap();
    let mut broken = Vec::new();
    for target in links(&text) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !resolved.exists() {
            broken.push(format!("{}: {target} (no such file)", file.display()));
            continue;
        }
        if let Some(a) = anchor {
            let heads = anchors(&std::fs::read_to_string(&resolved).unwrap_or_default());
            if !heads.iter().any(|h| h == a) {
                broken.push(format!(
                    "{}: {target} (no heading with that anchor)",
                    file.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_link_in_the_docs_resolves() {
    let mut files = vec![root().join("README.md"), root().join("ARCHITECTURE.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    assert!(files.len() >= 7, "{files:?}");
    let mut n = 0;
    let mut broken = Vec::new();
    for f in &files {
        n += links(&std::fs::read_to_string(f).unwrap()).len();
        broken.extend(broken_links_in(f));
    }
    assert!(n >= 20, "only {n} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_checker_sees_a_broken_file_and_a_broken_anchor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.md"), "# The `default` model: a head\n").unwrap();
    let a = dir.path().join("a.md");
    std::fs::write(
        &a,
        "[ok](b.md#the-default-model-a-head) [gone](c.md) [bad](b.md#nope) `[code](x.md)`\n",
    )
    .unwrap();
    let broken = broken_links_in(&a);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].contains("c.md (no such file)"));
    assert!(broken[1].contains("b.md#nope (no heading"));
}

#[test]
fn the_readme_stays_short() {
    let n = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(n <= 250, "README.md has {n} lines; move detail into docs/");
}
