//! The documentation holds together: every relative link in README.md, CHANGELOG.md, docs/*.md
//! and traces/*.md points at a file of the repository, none points outside it, and the pages
//! speak of the software only.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The markdown pages checked.
fn pages() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    for dir in ["docs", "traces"] {
        let mut more: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        more.sort();
        v.extend(more);
    }
    v
}

/// The targets of `[text](target)` links and `[label]: target` definitions, outside code
/// spans and fenced blocks, with the line they are on.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans: `[x](y)` inside backticks is not a link.
        let mut plain = String::new();
        for (j, part) in line.split('`').enumerate() {
            if j % 2 == 0 {
                plain.push_str(part);
            }
        }
        let t = plain.trim_start();
        if let Some(rest) = t.strip_prefix('[')
            && let Some((_, target)) = rest.split_once("]:")
        {
            out.push((i + 1, target.trim().to_owned()));
        }
        let mut rest = plain.as_str();
        while let Some(k) = rest.find("](") {
            let after = &rest[k + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push((i + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|p| target.starts_with(p))
}

#[test]
fn every_relative_link_resolves_inside_the_repository() {
    let repo = root().canonicalize().unwrap();
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for (line, target) in links(&text) {
            let file = target.split('#').next().unwrap();
            if is_external(&target) || file.is_empty() {
                continue;
            }
            checked += 1;
            let path = dir.join(file);
            let name = format!("{}:{line}: {target}", page.display());
            match path.canonicalize() {
                Ok(p) if p.starts_with(&repo) => {}
                Ok(_) => bad.push(format!("{name} (outside the repository)")),
                Err(_) => bad.push(format!("{name} (no such file)")),
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser right?"
    );
}

#[test]
fn the_link_parser_finds_links_and_skips_code() {
    let got = links("see [a](docs/a.md) and `[b](b.md)`\n```\n[c](c.md)\n```\n[d]: d.md#x\n");
    let targets: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(targets, ["docs/a.md", "d.md#x"]);
}

/// Words that speak of how the software was made rather than of the software.
const OFF_TOPIC: &[&str] = &[
    "this session",
    "last session",
    "previous session",
    "next session",
    "the issue",
    "issue's",
    "the lead",
    "shared machine",
    "this machine",
    "this vm",
    "this 2-core machine",
    "other builds",
    "../shared",
];

#[test]
fn pages_speak_of_the_software_only() {
    let mut bad = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (i, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let mut hits: Vec<String> = OFF_TOPIC
                .iter()
                .filter(|w| lower.contains(*w))
                .map(|w| w.to_string())
                .collect();
            for word in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
                if matches!(
                    word,
                    "engineer" | "engineers" | "agent" | "agents" | "helper" | "helpers"
                ) {
                    hits.push(word.into());
                }
            }
            if let Some(k) = lower.find("issue ")
                && lower[k + 6..].starts_with(|c: char| c.is_ascii_digit())
            {
                hits.push("issue N".into());
            }
            if !hits.is_empty() {
                bad.push(format!("{}:{}: {hits:?}: {line}", page.display(), i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "off-topic wording:\n{}", bad.join("\n"));
}

#[test]
fn docs_exist_for_every_page_the_readme_promises() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 220,
        "README.md should stay a landing page"
    );
    for (_, target) in links(&readme) {
        if target.starts_with("docs/") {
            assert!(Path::new(&root().join(target.split('#').next().unwrap())).is_file());
        }
    }
}
