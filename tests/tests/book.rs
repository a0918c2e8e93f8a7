//! The book must not drift from the code or from real output.
//!
//! Listings are `{{#include}}`s of the steps' sources by anchor; console
//! transcripts are `{{#include}}`s of the insta snapshots that the other
//! tests check against real runs. These tests check the book's side: every
//! include resolves, every `{{#exercise}}` (which the book's preprocessor
//! renders) renders, every snapshot is included from its first line of
//! content, no Rust listing is pasted, every link and image resolves, every
//! man page named links to man7.org, one link text has one address, the
//! sidebar numbers the steps' chapters as the steps, and each step chapter has
//! one `## (N)` section per number in the step's code (its `main.rs`, and its
//! kit modules).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use workshop_tests::{Step, workspace};

fn book_src() -> PathBuf {
    workspace().join("book/src")
}

/// Every chapter: the markdown files under book/src.
fn chapters() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![book_src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("book/src exists") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no chapters in {}", book_src().display());
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn name(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap_or(path).display().to_string()
}

/// The lines of a chapter outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            lines.push((number + 1, line));
        }
    }
    lines
}

/// `{{#include path:spec}}` directives: (line number, path, spec after the first ':').
fn includes(text: &str) -> Vec<(usize, String, Option<String>)> {
    directives(text, "{{#include ")
}

/// `{{#<kind> path:spec}}` directives, `open` being `{{#<kind> `.
fn directives(text: &str, open: &str) -> Vec<(usize, String, Option<String>)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len()..];
            if rest[..start].ends_with('\\') {
                rest = after; // escaped: mdBook shows it as it is
                continue;
            }
            let end = after.find("}}").expect("an {{#include}} closes on its line");
            let target = after[..end].trim();
            let (path, spec) = match target.split_once(':') {
                Some((path, spec)) => (path.to_string(), Some(spec.to_string())),
                None => (target.to_string(), None),
            };
            found.push((number + 1, path, spec));
            rest = &after[end..];
        }
    }
    found
}

/// The number of header lines of an insta snapshot (`---` ... `---`).
fn snapshot_header_lines(snapshot: &str) -> usize {
    let mut dashes = 0;
    for (index, line) in snapshot.lines().enumerate() {
        if line == "---" {
            dashes += 1;
            if dashes == 2 {
                return index + 1;
            }
        }
    }
    panic!("not an insta snapshot: no `---` header");
}

#[test]
fn every_include_resolves() {
    let (mut problems, mut checked) = (Vec::new(), 0);
    for chapter in chapters() {
        let text = read(&chapter);
        for (line, path, spec) in includes(&text) {
            checked += 1;
            let file = chapter.parent().expect("chapter dir").join(&path);
            let at = format!("{}:{line}: {{{{#include {path}}}}}", name(&chapter));
            let Ok(content) = std::fs::read_to_string(&file) else {
                problems.push(format!("{at}: no such file"));
                continue;
            };
            if path.ends_with(".snap") {
                let first = snapshot_header_lines(&content) + 1;
                if spec.as_deref() != Some(&format!("{first}:")) {
                    problems.push(format!(
                        "{at}: include the transcript from its first line after the header, \
                         as `{path}:{first}:`"
                    ));
                }
            } else if let Some(anchor) =
                spec.filter(|s| !s.starts_with(|c: char| c.is_ascii_digit()))
            {
                let has = |tag: &str| {
                    content.lines().any(|l| l.trim_end().ends_with(&format!("{tag}: {anchor}")))
                };
                if !has("ANCHOR") || !has("ANCHOR_END") {
                    problems.push(format!(
                        "{at}: no `ANCHOR: {anchor}` … `ANCHOR_END: {anchor}` in {path}"
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no {{{{#include}}}} found in the book: is `includes` still right?");
    assert!(problems.is_empty(), "broken includes in the book:\n{}", problems.join("\n"));
}

/// Every `{{#exercise path:anchor}}` renders as the book's preprocessor renders it.
#[test]
fn every_exercise_renders() {
    let (mut problems, mut checked) = (Vec::new(), 0);
    for chapter in chapters() {
        let text = read(&chapter);
        for (line, path, anchor) in directives(&text, "{{#exercise ") {
            checked += 1;
            let file = chapter.parent().expect("chapter dir").join(&path);
            let at = format!("{}:{line}: {{{{#exercise {path}}}}}", name(&chapter));
            let rendered =
                std::fs::read_to_string(&file).map_err(anyhow::Error::from).and_then(|source| {
                    xtask::exercise::listing(&source, anchor.as_deref().unwrap_or(""))
                });
            if let Err(err) = rendered {
                problems.push(format!("{at}: {err:#}"));
            }
        }
    }
    assert!(checked > 0, "no {{{{#exercise}}}} found in the book: is `directives` still right?");
    assert!(problems.is_empty(), "exercises the book cannot show:\n{}", problems.join("\n"));
}

#[test]
fn no_rust_listing_is_pasted() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let text = read(&chapter);
        let mut block: Option<(usize, usize)> = None; // (start line, pasted lines)
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            match &mut block {
                None if trimmed.starts_with("```rust") => block = Some((number + 1, 0)),
                None => {}
                Some((start, pasted)) if trimmed.starts_with("```") => {
                    if *pasted > 3 {
                        problems.push(format!(
                            "{}:{start}: a Rust block of {pasted} pasted lines: include the code \
                             from the step's source with an anchor instead",
                            name(&chapter)
                        ));
                    }
                    block = None;
                }
                Some((_, pasted)) if !trimmed.is_empty() && !trimmed.starts_with("{{#") => {
                    *pasted += 1;
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "pasted listings:\n{}", problems.join("\n"));
}

/// mdBook's heading ids: lowercase, spaces become dashes, punctuation goes.
fn heading_id(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

fn heading_ids(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter_map(|(_, line)| line.strip_prefix('#'))
        .map(|h| heading_id(h.trim_start_matches('#').trim()))
        .collect()
}

/// Markdown link and image targets on a line: `](target)`.
fn link_targets(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| rest[..end].split_whitespace().next().unwrap_or_default())
        })
        .collect()
}

#[test]
fn internal_links_and_images_resolve() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let text = read(&chapter);
        for (line, content) in prose(&text) {
            for target in link_targets(content) {
                if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                    continue;
                }
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let file_path = if file.is_empty() {
                    chapter.clone()
                } else {
                    chapter.parent().expect("dir").join(file)
                };
                let at = format!("{}:{line}: ({target})", name(&chapter));
                if !file_path.exists() {
                    problems.push(format!("{at}: no such file"));
                } else if !fragment.is_empty() && !heading_ids(&read(&file_path)).contains(fragment)
                {
                    problems.push(format!("{at}: no heading with id #{fragment}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "broken links in the book:\n{}", problems.join("\n"));
}

/// `chroot(2)` and friends: man page names with a section number.
fn man_page_mentions(line: &str) -> Vec<(usize, String, String)> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    for (at, _) in line.match_indices('(') {
        let section = bytes.get(at + 1).copied().unwrap_or_default();
        if !(b'1'..=b'8').contains(&section) || bytes.get(at + 2) != Some(&b')') {
            continue;
        }
        let start = line[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        if start < at {
            found.push((start, line[start..at].to_string(), (section as char).to_string()));
        }
    }
    found
}

#[test]
fn man_pages_link_to_man7() {
    let mut problems = Vec::new();
    for chapter in chapters() {
        let text = read(&chapter);
        for (line, content) in prose(&text) {
            for (at, page, section) in man_page_mentions(content) {
                let url =
                    format!("https://man7.org/linux/man-pages/man{section}/{page}.{section}.html");
                // The mention must be the text of a link to its man7.org page.
                let link_start = content[..at].rfind('[');
                let linked = link_start.is_some_and(|open| {
                    let after = &content[open..];
                    after.find("](").is_some_and(|close| {
                        open + close > at && after[close + 2..].starts_with(&url)
                    })
                });
                if !linked {
                    problems.push(format!(
                        "{}:{line}: {page}({section}) should link to {url}",
                        name(&chapter)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "man pages without their man7.org link:\n{}", problems.join("\n"));
}

/// The `(N)` numbers in the comments of a step's sources: its `main.rs`, and
/// from step05 on the kit modules with its new ideas (`kit/src/dev.rs`...).
fn numbers_in_code(step: Step) -> BTreeSet<u32> {
    let sources: Vec<String> = step.sources().iter().map(|f| read(&workspace().join(f))).collect();
    let mut numbers = BTreeSet::new();
    let lines = sources.iter().flat_map(|source| source.lines());
    for line in lines.filter(|l| l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices('(') {
            // `execvp(3)` names a man page section, not a step.
            let after_word =
                line[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || "_-".contains(c));
            let digits: String = line[at + 1..].chars().take_while(char::is_ascii_digit).collect();
            if !after_word && !digits.is_empty() && line[at + 1 + digits.len()..].starts_with(')') {
                numbers.insert(digits.parse().expect("digits"));
            }
        }
    }
    numbers
}

/// The `## (N)` sections of a step's chapter.
fn numbered_sections(step: Step) -> BTreeSet<u32> {
    let chapter = read(&book_src().join(format!("{}.md", step.name())));
    prose(&chapter)
        .into_iter()
        .filter_map(|(_, line)| line.strip_prefix("## ("))
        .filter_map(|rest| rest.split_once(')')?.0.parse().ok())
        .collect()
}

#[test]
fn each_numbered_comment_has_its_section() {
    let mut problems = Vec::new();
    for step in Step::ALL {
        let (code, book) = (numbers_in_code(step), numbered_sections(step));
        if code != book {
            problems.push(format!(
                "{}: the code ({}) numbers its parts {code:?} but book/src/{}.md has `## (N)` \
                 sections {book:?}",
                step.short(),
                step.sources().join(", "),
                step.name()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn summary_lists_every_chapter() {
    let summary = read(&book_src().join("SUMMARY.md"));
    let listed: BTreeSet<String> =
        summary.lines().flat_map(link_targets).map(String::from).collect();
    let mut problems = Vec::new();
    for chapter in chapters() {
        let relative =
            chapter.strip_prefix(book_src()).expect("under book/src").display().to_string();
        if relative != "SUMMARY.md" && !listed.contains(&relative) {
            problems.push(format!("{relative} is not in SUMMARY.md"));
        }
    }
    for target in &listed {
        if !book_src().join(target).exists() {
            problems.push(format!("SUMMARY.md lists {target}, which does not exist"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// mdBook numbers the chapters of SUMMARY.md's list: the steps' chapters come
/// first in it, so that the sidebar's "1." is step 01, "2." step 02, and so on.
#[test]
fn sidebar_numbers_are_the_step_numbers() {
    let summary = read(&book_src().join("SUMMARY.md"));
    let numbered: Vec<String> = summary
        .lines()
        .filter(|line| line.starts_with("- ["))
        .flat_map(link_targets)
        .map(String::from)
        .collect();
    for (index, step) in Step::ALL.into_iter().enumerate() {
        let expected = format!("{}.md", step.name());
        assert_eq!(
            numbered.get(index),
            Some(&expected),
            "SUMMARY.md: the numbered chapter {} should be {expected}, so that the sidebar numbers \
             the steps' chapters as the steps (unnumbered chapters are the lines without `- `); \
             the numbered ones are {numbered:?}",
            index + 1
        );
    }
}

/// `[text](https://…)` links on a line: (text, address).
fn external_links(line: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (at, _) in line.match_indices("](") {
        let Some(open) = line[..at].rfind('[') else { continue };
        let rest = &line[at + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split_whitespace().next().unwrap_or_default();
        if target.contains("://") {
            found.push((line[open + 1..at].to_lowercase(), target.to_string()));
        }
    }
    found
}

/// A thing linked from the README and the book, such as multipass, is linked
/// to one address everywhere.
#[test]
fn one_address_per_link_text() {
    let mut files = chapters();
    files.push(workspace().join("README.md"));
    let mut seen: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for file in &files {
        let text = read(file);
        for (_, line) in prose(&text) {
            for (label, address) in external_links(line) {
                seen.entry(label).or_default().insert(address);
            }
        }
    }
    assert!(!seen.is_empty(), "no [text](https://…) link found: is `external_links` still right?");
    let problems: Vec<String> = seen
        .iter()
        .filter(|(_, addresses)| addresses.len() > 1)
        .map(|(label, addresses)| format!("[{label}] links to {addresses:?}"))
        .collect();
    assert!(problems.is_empty(), "one link text, several addresses:\n{}", problems.join("\n"));
}
