//! Exercise mode: one marked source is both the solution and the exercise.
//!
//! Each step's lesson regions are marked with `// ANCHOR: exercise_<name> (N)
//! <title>: <hint>` … `// ANCHOR_END: exercise_<name>`, in its `main.rs` and,
//! from step05 on, in the kit modules with its new ideas; `cargo xtask exercise`
//! turns them into `todo!()`s. These tests check that every region is written
//! (one failure line per region still `todo!()`), that every numbered part of
//! a step is a region, and that each chapter shows its step's regions in
//! exercise form, with `{{#exercise}}` (the book's preprocessor renders them
//! from the steps' sources when the book is built: nothing is generated into
//! the repository).

use rstest::rstest;
use rstest_reuse::apply;
use workshop_tests::run::not_implemented;
use workshop_tests::{Step, every_step, workspace};
use xtask::exercise::{self, Region};

fn source(file: &str) -> String {
    let path = workspace().join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The exercise regions of a step, in the order of their numbers, each with
/// the file it is in: its `main.rs`, and from step05 on the kit modules with
/// its new ideas.
fn regions_in_files(step: Step) -> Vec<(String, Region)> {
    let mut all = Vec::new();
    for file in step.sources() {
        let regions = exercise::regions(&source(&file)).unwrap_or_else(|err| {
            panic!("{file}: the exercise markers are broken: {err:#}");
        });
        all.extend(regions.into_iter().map(|region| (file.clone(), region)));
    }
    all.sort_by_key(|(_, region)| region.number);
    all
}

fn regions(step: Step) -> Vec<Region> {
    regions_in_files(step).into_iter().map(|(_, region)| region).collect()
}

/// Every region of the step is written: no `todo!()` is left. In exercise
/// mode, this says in one line per region what is left to do.
#[apply(every_step)]
fn regions_are_written(#[case] step: Step) {
    let regions = regions(step);
    let left: Vec<&Region> = regions.iter().filter(|r| !r.is_written()).collect();
    if left.is_empty() {
        return;
    }
    let numbers: Vec<String> = left.iter().map(|r| format!("({}) {}", r.number, r.title)).collect();
    let mut message = format!(
        "{}: {} of the {} exercise regions of {} still hold a todo!(): {}",
        step.short(),
        left.len(),
        regions.len(),
        step.sources().join(", "),
        numbers.join(", ")
    );
    for region in left {
        message += &format!(
            "\n{}\n    hint: {}",
            not_implemented(step, region.number, &region.title),
            region.full_hint()
        );
    }
    panic!("{message}");
}

/// The `## (N)` sections of a step's chapter.
fn numbered_sections(step: Step) -> Vec<u32> {
    let path = workspace().join("book/src").join(format!("{}.md", step.name()));
    let chapter = std::fs::read_to_string(&path).expect("the chapter exists");
    let mut numbers: Vec<u32> = chapter
        .lines()
        .filter_map(|line| line.strip_prefix("## ("))
        .filter_map(|rest| rest.split_once(')')?.0.parse().ok())
        .collect();
    numbers.sort();
    numbers
}

/// Each numbered part of a step, each `## (N)` of its chapter, is exactly one
/// exercise region, so that exercise mode leaves no lesson out.
#[test]
fn every_numbered_part_is_an_exercise() {
    let mut problems = Vec::new();
    for step in Step::ALL {
        let mut numbers: Vec<u32> = regions(step).iter().map(|r| r.number).collect();
        numbers.sort();
        let sections = numbered_sections(step);
        if numbers != sections {
            problems.push(format!(
                "{}: the exercise regions of {} are numbered {numbers:?}, but its chapter has \
                 the sections {sections:?}: each numbered part should be one region (`// ANCHOR: \
                 exercise_<name> (N) <title>: <hint>` … `// ANCHOR_END: exercise_<name>` around \
                 the lines a student writes)",
                step.short(),
                step.sources().join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A numbered part has one name: the chapter's `## (N) Title` is the title
/// of region (N), which the `todo!()` and the tests' messages say.
#[test]
fn sections_and_regions_have_the_same_names() {
    let mut problems = Vec::new();
    for step in Step::ALL {
        let path = workspace().join("book/src").join(format!("{}.md", step.name()));
        let chapter = std::fs::read_to_string(&path).expect("the chapter exists");
        for (file, region) in regions_in_files(step) {
            let heading = chapter.lines().find_map(|line| {
                line.strip_prefix(&format!("## ({}) ", region.number)).map(str::trim)
            });
            if heading.map(str::to_lowercase) != Some(region.title.to_lowercase()) {
                problems.push(format!(
                    "book/src/{}.md: section ({}) is called {heading:?}, but its exercise region \
                     in {file} is called {:?}: use one name",
                    step.name(),
                    region.number,
                    region.title
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each chapter shows every region of its step in exercise form, with an
/// `{{#exercise}}` of a book anchor around the region, and each of those
/// renders.
#[test]
fn each_chapter_shows_its_exercises() {
    let mut problems = Vec::new();
    for step in Step::ALL {
        let path = workspace().join("book/src").join(format!("{}.md", step.name()));
        let chapter = std::fs::read_to_string(&path).expect("the chapter exists");
        for (file, region) in regions_in_files(step) {
            if region.book_anchors.is_empty() {
                problems.push(format!(
                    "{}: region exercise_{} is inside no book anchor, so the book cannot show it",
                    step.short(),
                    region.name
                ));
                continue;
            }
            let include = |anchor: &String| format!("{{{{#exercise ../../{file}:{anchor}}}}}");
            let shown: Vec<&String> =
                region.book_anchors.iter().filter(|a| chapter.contains(&include(a))).collect();
            for anchor in &shown {
                if let Err(err) = exercise::listing(&source(&file), anchor) {
                    problems.push(format!(
                        "book/src/{}.md: {}: {err:#}",
                        step.name(),
                        include(anchor)
                    ));
                }
            }
            if shown.is_empty() {
                problems.push(format!(
                    "book/src/{}.md should show ({}) {} in exercise form, in its Exercises \
                     section: {}",
                    step.name(),
                    region.number,
                    region.title,
                    region.book_anchors.iter().map(include).collect::<Vec<_>>().join(" or ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The book and the README quote what the harness says about an unwritten
/// part (`step04: (5) mount proc is not implemented yet — …` and its `hint:`
/// line). Those quotes must be what the markers and the harness produce today.
#[test]
fn quoted_messages_match_the_markers() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(workspace().join("book/src"))
        .expect("book/src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(workspace().join("README.md"));
    let all_regions: Vec<(Step, Region)> =
        Step::ALL.into_iter().flat_map(|s| regions(s).into_iter().map(move |r| (s, r))).collect();
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a chapter");
        for (number, line) in text.lines().enumerate() {
            let at = format!(
                "{}:{}",
                file.strip_prefix(workspace()).unwrap_or(&file).display(),
                number + 1
            );
            if let Some(quote) = line.find("is not implemented yet").map(|end| &line[..end]) {
                // `…step04: (5) mount proc ` before the words.
                let found = all_regions.iter().find(|(step, region)| {
                    quote.ends_with(&format!(
                        "{}: ({}) {} ",
                        step.short(),
                        region.number,
                        region.title
                    ))
                });
                match found {
                    None => {
                        problems.push(format!("{at}: no exercise region is quoted by {line:?}"))
                    }
                    Some((step, region)) if line.contains(", section (") => {
                        let expected = not_implemented(*step, region.number, &region.title);
                        if !line.ends_with(&expected) {
                            problems.push(format!("{at}: the harness says {expected:?}"));
                        }
                    }
                    Some(_) => {}
                }
            }
            let hint = line.trim_start().strip_prefix("hint: ").filter(|h| h.contains("man7.org"));
            if let Some(hint) = hint
                && !all_regions.iter().any(|(_, region)| region.full_hint() == hint)
            {
                problems.push(format!("{at}: no exercise region has the hint {hint:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the book quotes exercise messages that the markers no longer produce; copy them from \
         a fresh `cargo xtask grade` run:\n{}",
        problems.join("\n")
    );
}
