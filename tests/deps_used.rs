//! No unused direct dependency: every crate the manifests declare is named in the code that
//! may use it (the same check as `cargo machete`, without installing it).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of every `.rs` file under `dirs` (relative to `base`).
fn sources(base: &Path, dirs: &[&str]) -> String {
    fn walk(p: &Path, out: &mut String) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(p).unwrap());
            out.push('\n');
        }
    }
    let mut out = String::new();
    for d in dirs {
        walk(&base.join(d), &mut out);
    }
    out
}

/// Whether `code` names the crate `name` (as a path, a `use` or an attribute).
fn names_crate(code: &str, name: &str) -> bool {
    let id = name.replace('-', "_");
    [
        format!("{id}::"),
        format!("use {id}"),
        format!("extern crate {id}"),
    ]
    .iter()
    .any(|pat| {
        code.match_indices(pat.as_str()).any(|(i, _)| {
            !code[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    })
}

/// The names declared in `[section]` of the manifest at `dir`.
fn declared(dir: &Path, section: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc.get(section)
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn unused(dir: &Path, section: &str, dirs: &[&str]) -> Vec<String> {
    let code = sources(dir, dirs);
    declared(dir, section)
        .into_iter()
        .filter(|n| !names_crate(&code, n))
        .map(|n| format!("{}: [{section}] {n}", dir.join("Cargo.toml").display()))
        .collect()
}

#[test]
fn every_declared_dependency_is_used() {
    let solver = root().join("solver");
    let mut bad = Vec::new();
    bad.extend(unused(&root(), "dependencies", &["src"]));
    bad.extend(unused(
        &root(),
        "dev-dependencies",
        &["tests", "benches", "src"],
    ));
    bad.extend(unused(&solver, "dependencies", &["src"]));
    bad.extend(unused(
        &solver,
        "dev-dependencies",
        &["tests", "benches", "src"],
    ));
    assert!(bad.is_empty(), "declared but unused:\n{}", bad.join("\n"));
}

#[test]
fn the_check_tells_a_use_from_a_longer_name() {
    assert!(names_crate("use rand::Rng;", "rand"));
    assert!(names_crate(
        "let x = arrow_array::Int32Array::from(v);",
        "arrow-array"
    ));
    assert!(!names_crate("use my_rand::Rng;", "rand"));
    assert!(!names_crate("// rand is not used", "rand"));
}

/// The argument parser is the command line's business: no module of the library outside
/// `src/cli` names `clap` (the CLI maps its value enums onto the library's, `cli/choices.rs`).
#[test]
fn clap_only_in_the_cli() {
    let src = root().join("src");
    let mut offenders = Vec::new();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == "cli") {
            continue;
        }
        let rel = p.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
        if names_crate(&sources(&src, &[&rel]), "clap") {
            offenders.push(rel);
        }
    }
    assert!(offenders.is_empty(), "clap named in {offenders:?}");
}
