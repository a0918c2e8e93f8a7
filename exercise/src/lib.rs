//! Exercise mode, the pure part: a step's source is both the solution and the
//! exercise. `cargo xtask exercise` writes the exercise into the step's file;
//! the book's preprocessor, `mdbook-exercises`, shows it in each chapter. Both
//! call [`to_exercise`], so the book and the exercise cannot disagree.
//!
//! Inside each lesson function, the lines a student writes are marked with
//! mdBook anchors, so that the book's listings stay clean (mdBook drops every
//! anchor line it includes):
//!
//! ```text
//! fn change_root(rootfs: &Path) -> Result<()> {
//!     // ANCHOR: exercise_chroot (3) change the root: chroot(2) into ROOTFS, then chdir("/")
//!     chroot(rootfs)?;
//!     chdir("/")
//!     // ANCHOR_END: exercise_chroot
//! }
//! ```
//!
//! mdBook reads only the anchor's name (`ANCHOR:\s*([\w_-]+)`); the rest of
//! the line is the region's number, title and hint. [`to_exercise`] replaces
//! what is between the two marker lines with a `todo!()` that carries the
//! header and the man7.org page of the first man page it names, and keeps the
//! marker lines, which delimit the student's region. It is idempotent: an
//! exercise turned into an exercise stays as it is.
//!
//! A `todo!()` panics with `not yet implemented: (3) change the root: …` and
//! exit status 101; [`find_todo_panic`] finds that in a step's stderr, for the
//! tests and `cargo xtask grade`.
//!
//! [`listing`] is what the book shows of a region in exercise form: the lines
//! of one book anchor of the exercise, as mdBook's `{{#include file:anchor}}`
//! would take them.

use anyhow::{Result, bail};

/// The marker that opens a region: `// ANCHOR: exercise_<name> (N) <title>: <hint>`.
const START: &str = "// ANCHOR: exercise_";

/// The marker that closes it: `// ANCHOR_END: exercise_<name>`.
const END: &str = "// ANCHOR_END: exercise_";

/// The line an exercise gets after its doc comment, so that the unused
/// variables and imports and the code after a `todo!()` do not bury the
/// student's own warnings. The solution does not have it.
pub const ALLOW_LINE: &str =
    "#![allow(unused, unreachable_code)] // exercise mode: the solution has no such line";

/// rustfmt's `max_width`: a longer `todo!` is written over three lines, as rustfmt would.
const MAX_WIDTH: usize = 100;

/// What `todo!()` prints before its message.
pub const TODO_PANIC: &str = "not yet implemented: ";

/// One region a student writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The name after `exercise_`, e.g. `chroot`.
    pub name: String,
    /// The number of the step's part, `(3)`.
    pub number: u32,
    /// What the part does, e.g. `change the root`.
    pub title: String,
    /// How: the system call, with its man page section, e.g. `chroot(2) into ROOTFS`.
    pub hint: String,
    /// The mdBook anchors (not exercise ones) around the region, outermost
    /// first, e.g. `["enter", "mount_proc"]`: what the book can include to show it.
    pub book_anchors: Vec<String>,
    /// The 1-based line numbers of the two marker lines.
    pub start_line: usize,
    pub end_line: usize,
    /// The lines between the markers.
    pub body: Vec<String>,
    /// The indentation of the marker lines.
    indent: String,
}

impl Region {
    /// The innermost book anchor around the region, e.g. `chroot`.
    pub fn book_anchor(&self) -> Option<&str> {
        self.book_anchors.last().map(String::as_str)
    }

    /// The hint with the man page's address: what the `todo!()` says after the title.
    pub fn full_hint(&self) -> String {
        match self.man7_url() {
            Some(url) => format!("{} — {url}", self.hint),
            None => self.hint.clone(),
        }
    }

    /// `(3) change the root: chroot(2) into ROOTFS, then chdir("/")`.
    pub fn header(&self) -> String {
        format!("({}) {}: {}", self.number, self.title, self.hint)
    }

    /// The first man page the title or hint names, e.g. `("chroot", '2')`.
    pub fn man_page(&self) -> Option<(String, char)> {
        man_pages(&format!("{}: {}", self.title, self.hint)).into_iter().next()
    }

    /// The man7.org page of [`Region::man_page`].
    pub fn man7_url(&self) -> Option<String> {
        self.man_page().map(|(page, section)| man7_url(&page, section))
    }

    /// What the `todo!()` says: the header, then the man page's address.
    pub fn todo_text(&self) -> String {
        format!("({}) {}: {}", self.number, self.title, self.full_hint())
    }

    /// Whether the student has written the region: no `todo!(` left in it.
    pub fn is_written(&self) -> bool {
        !self.body.iter().any(|line| line.contains("todo!("))
    }
}

/// `https://man7.org/linux/man-pages/man2/chroot.2.html` for `chroot`, `2`.
pub fn man7_url(page: &str, section: char) -> String {
    format!("https://man7.org/linux/man-pages/man{section}/{page}.{section}.html")
}

/// The man pages named in `text` as `name(N)`, N from 1 to 8, in order. A
/// `(N)` that follows no name, like a part's number, is not one.
pub fn man_pages(text: &str) -> Vec<(String, char)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut found = Vec::new();
    for (at, _) in text.match_indices('(') {
        let mut after = text[at + 1..].chars();
        let (Some(section @ '1'..='8'), Some(')')) = (after.next(), after.next()) else {
            continue;
        };
        let start = text[..at].rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
        if start < at {
            found.push((text[start..at].to_string(), section));
        }
    }
    found
}

/// An mdBook anchor on `line`: `ANCHOR: name` or `ANCHOR_END: name`, as
/// mdBook reads it (the name is `[\w_-]+`; anything after it is ignored).
fn anchor<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let at = line.find(tag)?;
    let (name, _) = split_name(line[at + tag.len()..].trim_start());
    (!name.is_empty()).then_some(name)
}

/// `text` cut after the anchor name it starts with (`[\w_-]*`): the name, and the rest.
fn split_name(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'));
    text.split_at(end.unwrap_or(text.len()))
}

/// Reads `(N) title: hint` after a region's name.
fn parse_header(text: &str, line: usize) -> Result<(u32, String, String)> {
    let form = "expected `// ANCHOR: exercise_<name> (N) <title>: <hint>`";
    let Some(rest) = text.strip_prefix('(') else {
        bail!("line {line}: no `(N)` after the region's name: {form}");
    };
    let Some((number, rest)) = rest.split_once(") ") else {
        bail!("line {line}: no `(N)` after the region's name: {form}");
    };
    let Ok(number) = number.parse() else {
        bail!("line {line}: `({number})` is not a part's number: {form}");
    };
    let Some((title, hint)) = rest.split_once(": ") else {
        bail!("line {line}: no `: ` between the title and the hint: {form}");
    };
    let (title, hint) = (title.trim(), hint.trim());
    if title.is_empty() || hint.is_empty() {
        bail!("line {line}: the title and the hint must not be empty: {form}");
    }
    Ok((number, title.to_string(), hint.to_string()))
}

/// The exercise regions of a step's source, in order. Fails on a marker that
/// is malformed, unclosed, nested, or whose hint names no man page.
pub fn regions(source: &str) -> Result<Vec<Region>> {
    let mut regions: Vec<Region> = Vec::new();
    let mut open: Option<Region> = None;
    let mut book_anchors: Vec<String> = Vec::new();
    for (index, line) in source.split('\n').enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix(START) {
            if let Some(region) = &open {
                bail!(
                    "line {number}: region exercise_{} (line {}) is not closed yet: regions do not nest",
                    region.name,
                    region.start_line
                );
            }
            let (name, header) = split_name(rest);
            let header = header.trim();
            if name.is_empty() {
                bail!("line {number}: a region needs a name: `// ANCHOR: exercise_<name> …`");
            }
            if regions.iter().any(|r| r.name == name) {
                bail!("line {number}: there is already a region exercise_{name}");
            }
            let (part, title, hint) = parse_header(header, number)?;
            let region = Region {
                name: name.to_string(),
                number: part,
                title,
                hint,
                book_anchors: book_anchors.clone(),
                start_line: number,
                end_line: 0,
                body: Vec::new(),
                indent: line[..line.len() - line.trim_start().len()].to_string(),
            };
            if region.man_page().is_none() {
                bail!(
                    "line {number}: the hint of exercise_{name} names no man page: say which \
                     system call to use with its section, e.g. `chroot(2)`"
                );
            }
            open = Some(region);
        } else if let Some(rest) = trimmed.strip_prefix(END) {
            match open.take() {
                Some(mut region) if rest.trim() == region.name => {
                    region.end_line = number;
                    regions.push(region);
                }
                Some(region) => bail!(
                    "line {number}: `{trimmed}` closes another region than exercise_{} (line {})",
                    region.name,
                    region.start_line
                ),
                None => bail!("line {number}: `{trimmed}` closes no region"),
            }
        } else if let Some(region) = &mut open {
            region.body.push(line.to_string());
        } else if let Some(name) = anchor(line, "ANCHOR:") {
            book_anchors.push(name.to_string());
        } else if let Some(name) = anchor(line, "ANCHOR_END:")
            && let Some(at) = book_anchors.iter().rposition(|open| open == name)
        {
            book_anchors.remove(at);
        }
    }
    if let Some(region) = open {
        bail!("region exercise_{} (line {}) is never closed", region.name, region.start_line);
    }
    Ok(regions)
}

/// `text` as the inside of a Rust string literal that is also a format
/// string (as `todo!`'s first argument is).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '{' => out.push_str("{{"),
            '}' => out.push_str("}}"),
            c => out.push(c),
        }
    }
    out
}

/// The `todo!()` lines for `region`: a statement, or the block's value when
/// only comments come between the region and the block's closing brace. A
/// `todo!()` too long for one line is written over several, as rustfmt would,
/// and a hint too long for one line is wrapped at spaces with Rust's string
/// continuation (`\` at the end of a line), which leaves the message as it is:
/// no line is wider than rustfmt's 100 columns, so none is clipped in the book.
fn todo_lines(region: &Region, lines: &[&str]) -> Vec<String> {
    let after = lines[region.end_line..].iter().map(|l| l.trim());
    let tail = after
        .into_iter()
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .is_some_and(|l| l.starts_with('}'));
    let semicolon = if tail { "" } else { ";" };
    let indent = &region.indent;
    let text = literal(&region.todo_text());
    let one_line = format!("{indent}todo!(\"{text}\"){semicolon}");
    if one_line.chars().count() <= MAX_WIDTH {
        return vec![one_line];
    }
    let mut out = vec![format!("{indent}todo!(")];
    // The string starts after `"`, one column right of the argument's indent;
    // its continuation lines line up with it.
    let first = format!("{indent}    \"");
    let rest = format!("{indent}     ");
    let mut line = first.clone();
    for word in text.split_inclusive(' ') {
        let width = |s: &str| s.chars().count();
        // Room for the word, and for the ` \` or `"` that ends the line.
        if line != first && line != rest && width(&line) + width(word) + 1 > MAX_WIDTH {
            out.push(format!("{line}\\"));
            line = rest.clone();
        }
        line.push_str(word);
    }
    out.push(format!("{line}\""));
    out.push(format!("{indent}){semicolon}"));
    out
}

/// The exercise made from a step's source: each region's lines become a
/// `todo!()` with its hint, the marker lines stay, and [`ALLOW_LINE`] follows
/// the crate's doc comment. Everything else is left byte for byte.
pub fn to_exercise(source: &str) -> Result<String> {
    let regions = regions(source)?;
    if regions.is_empty() {
        bail!("no exercise regions (`// ANCHOR: exercise_<name> (N) <title>: <hint>`)");
    }
    let lines: Vec<&str> = source.split('\n').collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let doc_end = lines.iter().take_while(|l| l.starts_with("//!")).count();
    let has_allow = lines.get(doc_end) == Some(&ALLOW_LINE);
    let mut next = 0; // the next line of `lines` to copy
    for region in &regions {
        out.extend(lines[next..region.start_line].iter().map(|l| l.to_string()));
        out.extend(todo_lines(region, &lines));
        next = region.end_line - 1; // the END marker is copied with what follows
    }
    out.extend(lines[next..].iter().map(|l| l.to_string()));
    if !has_allow {
        out.insert(doc_end, ALLOW_LINE.to_string());
    }
    Ok(out.join("\n"))
}

/// Whether `source` is an exercise as handed out: every region a `todo!()`.
pub fn is_exercise(source: &str) -> bool {
    to_exercise(source).is_ok_and(|exercise| exercise == source)
}

/// The regions still to write: those with a `todo!(` left in them.
pub fn unwritten(source: &str) -> Result<Vec<Region>> {
    Ok(regions(source)?.into_iter().filter(|r| !r.is_written()).collect())
}

/// The lines of `source` between `ANCHOR: <anchor>` and `ANCHOR_END:
/// <anchor>`, without any anchor line: what mdBook's `{{#include
/// file:anchor}}` takes. `None` when there is no such anchor.
pub fn anchored(source: &str, anchor: &str) -> Option<String> {
    let mut lines = source.lines();
    lines.by_ref().find(|line| self::anchor(line, "ANCHOR:") == Some(anchor))?;
    let mut taken = Vec::new();
    for line in lines {
        if self::anchor(line, "ANCHOR_END:") == Some(anchor) {
            return Some(taken.join("\n"));
        }
        if self::anchor(line, "ANCHOR:").is_none() && self::anchor(line, "ANCHOR_END:").is_none() {
            taken.push(line);
        }
    }
    None
}

/// What the book shows of the book anchor `anchor` of a step's source in
/// exercise form: the exercise made from `source` (the solution, or an
/// exercise already), then the lines of that anchor, as mdBook takes them.
pub fn listing(source: &str, anchor: &str) -> Result<String> {
    let exercise = to_exercise(source)?;
    match anchored(&exercise, anchor) {
        Some(lines) => Ok(lines),
        None => bail!("no `// ANCHOR: {anchor}` … `// ANCHOR_END: {anchor}` in it"),
    }
}

/// A `todo!()` a step ran into, read from its stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TodoPanic {
    /// Where it panicked, e.g. `step04-full-demo/src/main.rs:103:5`, if said.
    pub location: Option<String>,
    pub number: u32,
    pub title: String,
    /// The hint and the man page's address.
    pub hint: String,
}

/// Finds the first exercise `todo!()` panic in `stderr`: `thread '…'
/// panicked at <file>:<line>:<col>:` followed by `not yet implemented: (N)
/// <title>: <hint>`.
pub fn find_todo_panic(stderr: &str) -> Option<TodoPanic> {
    let mut location = None;
    for line in stderr.lines() {
        if let Some(at) = line.find(" panicked at ").filter(|_| line.starts_with("thread '")) {
            let rest = &line[at + " panicked at ".len()..];
            location = Some(rest.strip_suffix(':').unwrap_or(rest).to_string());
        } else if let Some(text) = line.strip_prefix(TODO_PANIC)
            && let Ok((number, title, hint)) = parse_header(text, 0)
        {
            return Some(TodoPanic { location, number, title, hint });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = r#"//! # A step
//!
//! It does (1).

use std::path::Path;

// ANCHOR: chroot
/// (1) Change the root.
fn change_root(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise_chroot (1) change the root: chroot(2) into ROOTFS, then chdir("/")
    chroot(rootfs)?;
    chdir("/")
    // ANCHOR_END: exercise_chroot
}
// ANCHOR_END: chroot

fn enter() -> ! {
    // ANCHOR: mount_proc
    // ANCHOR: exercise_mount_proc (2) mount proc: mount(2) "proc" on /proc
    mount_proc();
    // ANCHOR_END: exercise_mount_proc
    // ANCHOR_END: mount_proc
    // ANCHOR: exec
    // ANCHOR: exercise_exec (3) become the command: execvp(3) it, or a very long hint that will not fit on one line
    exec()
    // ANCHOR_END: exercise_exec
    // ANCHOR_END: exec
}
"#;

    const EXERCISE: &str = r#"//! # A step
//!
//! It does (1).
#![allow(unused, unreachable_code)] // exercise mode: the solution has no such line

use std::path::Path;

// ANCHOR: chroot
/// (1) Change the root.
fn change_root(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise_chroot (1) change the root: chroot(2) into ROOTFS, then chdir("/")
    todo!(
        "(1) change the root: chroot(2) into ROOTFS, then chdir(\"/\") — \
         https://man7.org/linux/man-pages/man2/chroot.2.html"
    )
    // ANCHOR_END: exercise_chroot
}
// ANCHOR_END: chroot

fn enter() -> ! {
    // ANCHOR: mount_proc
    // ANCHOR: exercise_mount_proc (2) mount proc: mount(2) "proc" on /proc
    todo!(
        "(2) mount proc: mount(2) \"proc\" on /proc — \
         https://man7.org/linux/man-pages/man2/mount.2.html"
    );
    // ANCHOR_END: exercise_mount_proc
    // ANCHOR_END: mount_proc
    // ANCHOR: exec
    // ANCHOR: exercise_exec (3) become the command: execvp(3) it, or a very long hint that will not fit on one line
    todo!(
        "(3) become the command: execvp(3) it, or a very long hint that will not fit on one line — \
         https://man7.org/linux/man-pages/man3/execvp.3.html"
    )
    // ANCHOR_END: exercise_exec
    // ANCHOR_END: exec
}
"#;

    #[test]
    fn regions_are_read_from_their_markers() {
        let regions = regions(SOLUTION).unwrap();
        let names: Vec<_> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["chroot", "mount_proc", "exec"]);
        let chroot = &regions[0];
        assert_eq!((chroot.number, chroot.title.as_str()), (1, "change the root"));
        assert_eq!(chroot.hint, r#"chroot(2) into ROOTFS, then chdir("/")"#);
        assert_eq!(chroot.book_anchor(), Some("chroot"));
        assert_eq!((chroot.start_line, chroot.end_line), (10, 13));
        assert_eq!(chroot.body, ["    chroot(rootfs)?;", "    chdir(\"/\")"]);
        assert_eq!(
            chroot.man7_url().unwrap(),
            "https://man7.org/linux/man-pages/man2/chroot.2.html"
        );
        assert_eq!(regions[1].book_anchors, ["mount_proc"]);
        assert_eq!(regions[2].book_anchors, ["exec"]);
        assert!(regions.iter().all(Region::is_written));
    }

    #[test]
    fn the_exercise_has_todos_with_hints_and_keeps_the_rest() {
        let exercise = to_exercise(SOLUTION).unwrap();
        assert_eq!(exercise, EXERCISE);
        assert!(is_exercise(&exercise));
        assert!(!is_exercise(SOLUTION));
        // Idempotent: an exercise stays as it is.
        assert_eq!(to_exercise(&exercise).unwrap(), exercise);
        let unwritten: Vec<u32> = unwritten(&exercise).unwrap().iter().map(|r| r.number).collect();
        assert_eq!(unwritten, [1, 2, 3]);
    }

    #[test]
    fn a_short_todo_stays_on_one_line() {
        let source = "fn f() -> u8 {\n    // ANCHOR: exercise_f (1) f: fork(2)\n    1\n    // ANCHOR_END: exercise_f\n}\n";
        let exercise = to_exercise(source).unwrap();
        assert!(
            exercise.contains(
                "    todo!(\"(1) f: fork(2) — https://man7.org/linux/man-pages/man2/fork.2.html\")\n"
            ),
            "{exercise}"
        );
        assert!(exercise.starts_with(ALLOW_LINE), "no doc comment: the allow line goes first");
    }

    /// The string of a `todo!(…)` as Rust reads it: `\` at the end of a line
    /// skips the line break and the next line's leading spaces.
    fn todo_string(code: &str) -> String {
        let start = code.find("todo!(").unwrap();
        let quoted = &code[code[start..].find('"').unwrap() + start + 1..];
        let mut out = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('"', _) => break,
                ('\\', Some('\n')) => {
                    while chars.peek().is_some_and(|c| c.is_whitespace()) {
                        chars.next();
                    }
                }
                ('\\', Some(_)) => out.push(chars.next().unwrap()),
                (c, _) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn long_hints_are_wrapped_to_100_columns_and_say_the_same() {
        let exercise = to_exercise(SOLUTION).unwrap();
        for line in exercise.lines().filter(|l| !l.contains("ANCHOR")) {
            assert!(line.chars().count() <= MAX_WIDTH, "{} columns: {line}", line.chars().count());
        }
        for region in regions(&exercise).unwrap() {
            let body = region.body.join("\n");
            // `{{` in a format string is one `{`: none of these hints has a brace.
            assert_eq!(todo_string(&body), region.todo_text(), "{body}");
        }
    }

    #[test]
    fn braces_and_quotes_are_escaped() {
        assert_eq!(literal(r#"a "b" {c} \d"#), r#"a \"b\" {{c}} \\d"#);
    }

    #[test]
    fn a_student_s_partial_work_is_not_an_exercise() {
        let partial = EXERCISE.replacen(
            "    todo!(\n        \"(1) change the root: chroot(2) into ROOTFS, then chdir(\\\"/\\\") — \\\n         https://man7.org/linux/man-pages/man2/chroot.2.html\"\n    )",
            "    chroot(rootfs)?;\n    chdir(\"/\")",
            1,
        );
        assert_ne!(partial, EXERCISE);
        assert!(!is_exercise(&partial));
        let left: Vec<u32> = unwritten(&partial).unwrap().iter().map(|r| r.number).collect();
        assert_eq!(left, [2, 3]);
        assert_eq!(to_exercise(&partial).unwrap(), EXERCISE);
    }

    #[test]
    fn malformed_markers_are_errors() {
        let cases = [
            ("// ANCHOR: exercise_a (1) a: fork(2)\n", "never closed"),
            ("// ANCHOR_END: exercise_a\n", "closes no region"),
            ("// ANCHOR: exercise_a a: fork(2)\n// ANCHOR_END: exercise_a\n", "no `(N)`"),
            ("// ANCHOR: exercise_a (1) a fork(2)\n// ANCHOR_END: exercise_a\n", "no `: `"),
            ("// ANCHOR: exercise_a (1) a: just do it\n// ANCHOR_END: exercise_a\n", "man page"),
            (
                "// ANCHOR: exercise_a (1) a: fork(2)\n// ANCHOR: exercise_b (2) b: fork(2)\n",
                "do not nest",
            ),
            (
                "// ANCHOR: exercise_a (1) a: fork(2)\n// ANCHOR_END: exercise_b\n",
                "closes another region",
            ),
            ("fn main() {}\n", "no exercise regions"),
        ];
        for (source, expected) in cases {
            let err = to_exercise(source).unwrap_err().to_string();
            assert!(err.contains(expected), "{source:?}: {err:?} should say {expected:?}");
        }
    }

    #[test]
    fn man_pages_are_names_with_a_section() {
        assert_eq!(
            man_pages("(3) become: execvp(3) then die(125), see user_namespaces(7)"),
            [("execvp".to_string(), '3'), ("user_namespaces".to_string(), '7')]
        );
    }

    #[test]
    fn a_todo_panic_is_found_in_stderr() {
        let stderr = "some output\nthread 'main' (4242) panicked at step04-full-demo/src/main.rs:103:5:\n\
            not yet implemented: (3) change the root: chroot(2) into ROOTFS — https://man7.org/x\n\
            note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        let todo = find_todo_panic(stderr).unwrap();
        assert_eq!(todo.location.as_deref(), Some("step04-full-demo/src/main.rs:103:5"));
        assert_eq!((todo.number, todo.title.as_str()), (3, "change the root"));
        assert_eq!(todo.hint, "chroot(2) into ROOTFS — https://man7.org/x");
        // Older Rust versions do not show the thread's id.
        let older = stderr.replace("'main' (4242)", "'main'");
        assert_eq!(find_todo_panic(&older), Some(todo));
        assert_eq!(find_todo_panic("not yet implemented\n"), None);
        assert_eq!(find_todo_panic("thread 'main' panicked at x.rs:1:1:\noops\n"), None);
    }
}
