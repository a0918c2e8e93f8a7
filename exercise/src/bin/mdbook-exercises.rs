//! `mdbook-exercises`: the mdBook preprocessor that shows the steps'
//! exercises in the book, rendered from the steps' sources at build time.
//!
//! A chapter asks for a region in exercise form the way it includes code:
//!
//! ```text
//! {{#exercise ../../step04-full-demo/src/main.rs:chroot}}
//! ```
//!
//! The path is relative to the chapter, as with `{{#include}}`; after the `:`
//! comes a book anchor of that file. The directive becomes the lines of that
//! anchor in the exercise made by [`exercise::to_exercise`], the very function
//! behind `cargo xtask exercise`. Nothing is generated into the repository.
//!
//! mdBook runs it as `book.toml` says, with the book's directory as working
//! directory: `mdbook-exercises supports <renderer>` (every renderer is
//! supported), then `mdbook-exercises` with `[context, book]` as JSON on stdin,
//! and the book as JSON expected on stdout. The book is walked as plain JSON,
//! so mdBook 0.4 (`sections`) and 0.5 (`items`) both work. A directive that
//! cannot be rendered (no such file, no such anchor, broken markers) fails the
//! build with a message naming the chapter and the line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// What opens a directive.
const OPEN: &str = "{{#exercise ";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("supports") {
        return ExitCode::SUCCESS; // plain text in, plain text out: any renderer will do
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mdbook-exercises: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("cannot read mdBook's input")?;
    let (context, mut book): (Value, Value) =
        serde_json::from_str(&input).context("mdBook's input is not `[context, book]` as JSON")?;
    let root = context["root"].as_str().map(PathBuf::from).unwrap_or_default();
    let src = context["config"]["book"]["src"].as_str().unwrap_or("src");
    preprocess(&mut book, &root.join(src))?;
    serde_json::to_writer(std::io::stdout().lock(), &book).context("cannot write the book")?;
    Ok(())
}

/// Renders the directives of every chapter of `book` (mdBook's JSON), whose
/// chapter files are under `src`.
fn preprocess(book: &mut Value, src: &Path) -> Result<()> {
    // mdBook 0.5 calls the top list `items`, mdBook 0.4 `sections`.
    let key = if book.get("items").is_some() { "items" } else { "sections" };
    let items = book.get_mut(key).context("the book has neither `items` nor `sections`")?;
    walk(items, src)
}

/// Each `{"Chapter": {...}}` in `items`, and in its `sub_items`.
fn walk(items: &mut Value, src: &Path) -> Result<()> {
    let Some(items) = items.as_array_mut() else { return Ok(()) };
    for item in items {
        let Some(chapter) = item.get_mut("Chapter") else { continue };
        let source_path = chapter["source_path"].as_str().map(PathBuf::from);
        if let (Some(source_path), Some(Value::String(content))) =
            (source_path, chapter.get_mut("content"))
        {
            let dir = src.join(&source_path).parent().map(Path::to_path_buf).unwrap_or_default();
            *content = render(content, &dir)
                .with_context(|| format!("in {}", Path::new("src").join(&source_path).display()))?;
        }
        if let Some(sub_items) = chapter.get_mut("sub_items") {
            walk(sub_items, src)?;
        }
    }
    Ok(())
}

/// `content` with each `{{#exercise path:anchor}}` replaced by the listing,
/// `path` taken from `dir`, the chapter's directory. An escaped one,
/// `\{{#exercise …}}`, is left for mdBook, which drops the backslash.
fn render(content: &str, dir: &Path) -> Result<String> {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some(start) = rest.find(OPEN) {
        let line = content[..content.len() - rest.len() + start].matches('\n').count() + 1;
        if rest[..start].ends_with('\\') {
            out.push_str(&rest[..start + OPEN.len()]);
            rest = &rest[start + OPEN.len()..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find("}}") else {
            bail!("line {line}: `{OPEN}` is not closed with `}}}}`");
        };
        let directive = after[..end].trim();
        let Some((path, anchor)) = directive.rsplit_once(':') else {
            bail!(
                "line {line}: `{OPEN}{directive}}}}}` names no anchor: write `{OPEN}path:anchor}}}}`"
            );
        };
        let file = dir.join(path);
        let source = std::fs::read_to_string(&file)
            .with_context(|| format!("line {line}: cannot read {}", file.display()))?;
        let listing = exercise::listing(&source, anchor)
            .with_context(|| format!("line {line}: {path}, anchor `{anchor}`"))?;
        out.push_str(&listing);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: &str = "//! A step.\n\n// ANCHOR: f\n/// (1) Fork.\nfn f() -> u8 {\n    \
        // ANCHOR: exercise_f (1) fork: fork(2)\n    1\n    // ANCHOR_END: exercise_f\n}\n\
        // ANCHOR_END: f\n";

    const LISTING: &str = "/// (1) Fork.\nfn f() -> u8 {\n    \
        todo!(\"(1) fork: fork(2) — https://man7.org/linux/man-pages/man2/fork.2.html\")\n}";

    /// A book directory with `src/` and the step `step/src/main.rs`.
    fn book() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("step/src")).unwrap();
        std::fs::write(dir.path().join("step/src/main.rs"), STEP).unwrap();
        dir
    }

    #[test]
    fn a_directive_becomes_the_exercise_form_of_its_anchor() {
        let dir = book();
        let content = "Before.\n\n```rust\n{{#exercise ../step/src/main.rs:f}}\n```\n\nAfter.\n";
        let rendered = render(content, &dir.path().join("src")).unwrap();
        assert_eq!(rendered, format!("Before.\n\n```rust\n{LISTING}\n```\n\nAfter.\n"));
        // Without a directive, the chapter is left as it is; an escaped one too.
        for plain in ["{{#include x.rs:y}}\n", "`\\{{#exercise x.rs:y}}`"] {
            assert_eq!(render(plain, dir.path()).unwrap(), plain);
        }
    }

    #[test]
    fn mistakes_in_a_directive_name_the_line() {
        let dir = book();
        let src = dir.path().join("src");
        let cases = [
            (
                "\n{{#exercise ../step/src/main.rs:nope}}",
                "line 2: ../step/src/main.rs, anchor `nope`",
            ),
            ("{{#exercise ../step/src/nope.rs:f}}", "line 1: cannot read"),
            ("{{#exercise ../step/src/main.rs}}", "names no anchor"),
            ("{{#exercise ../step/src/main.rs:f", "is not closed"),
        ];
        for (content, expected) in cases {
            let err = format!("{:#}", render(content, &src).unwrap_err());
            assert!(err.contains(expected), "{content:?}: {err}");
        }
    }

    /// mdBook 0.5 names the top list `items`, 0.4 `sections`; chapters nest in `sub_items`.
    #[test]
    fn both_book_formats_are_walked() {
        let dir = book();
        let chapter = |content: &str, sub: Value| {
            serde_json::json!({"Chapter": {
                "name": "c", "content": content, "source_path": "chapter.md", "sub_items": [sub]
            }})
        };
        let nested = chapter("{{#exercise ../step/src/main.rs:f}}", serde_json::json!("Separator"));
        for key in ["items", "sections"] {
            let mut json = serde_json::json!({ key: [chapter("x", nested.clone())] });
            preprocess(&mut json, &dir.path().join("src")).unwrap();
            let inner = &json[key][0]["Chapter"]["sub_items"][0]["Chapter"]["content"];
            assert_eq!(inner, LISTING, "{key}");
        }
        assert!(preprocess(&mut serde_json::json!({}), dir.path()).is_err());
    }
}
