//! Exercise mode: one marked source is both the solution and the exercise.
//!
//! Each step's lesson regions are marked with `// ANCHOR: exercise_<name> (N)
//! <title>: <hint>` … `// ANCHOR_END: exercise_<name>`; `cargo xtask exercise`
//! turns them into `todo!()`s. These tests check that every region is written
//! (one failure line per region still `todo!()`), that every numbered part of
//! a step is a region, and that the book's exercise listings, generated from
//! the same sources into `book/src/exercises/`, are up to date and shown in
//! each chapter.

use rstest::rstest;
use workshop_tests::run::not_implemented;
use workshop_tests::{Step, workspace};
use xtask::exercise::{self, Region};

fn source(step: Step) -> String {
    let path = workspace().join(step.exercise_source());
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn regions(step: Step) -> Vec<Region> {
    exercise::regions(&source(step)).unwrap_or_else(|err| {
        panic!("{}: the exercise markers are broken: {err:#}", step.exercise_source())
    })
}

/// Every region of the step is written: no `todo!()` is left. In exercise
/// mode, this says in one line per region what is left to do.
#[rstest]
#[case::step01_chroot(Step::Step01Chroot)]
#[case::step02_unshare_cli(Step::Step02UnshareCli)]
#[case::step03_pid_ns(Step::Step03PidNs)]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
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
        step.exercise_source(),
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
                "{}: the exercise regions of {} are numbered {numbers:?}, but its \
                 chapter has the sections {sections:?}: each numbered part should be one region \
                 (`// ANCHOR: exercise_<name> (N) <title>: <hint>` … `// ANCHOR_END: \
                 exercise_<name>` around the lines a student writes)",
                step.short(),
                step.exercise_source()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `book/src/exercises/<crate>.rs` is what `cargo xtask exercise --book`
/// makes of the step's source now.
#[test]
fn book_exercises_are_up_to_date() {
    let mut stale = Vec::new();
    for step in Step::ALL {
        let expected = exercise::book_listing(step.exercise_source(), &source(step))
            .unwrap_or_else(|err| panic!("{}: {err:#}", step.name()));
        let path = workspace().join("book/src/exercises").join(format!("{}.rs", step.name()));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(format!("book/src/exercises/{}.rs", step.name()));
        }
    }
    assert!(
        stale.is_empty(),
        "the book's exercise listings are stale: run `cargo xtask exercise --book`, which \
         writes them from the steps' sources: {}.\n(A student who changed a step outside its \
         exercise regions sees this too, and may ignore it.)",
        stale.join(", ")
    );
}

/// Each chapter shows every region of its step in exercise form, by
/// including the generated listing at a book anchor around the region.
#[test]
fn each_chapter_shows_its_exercises() {
    let mut problems = Vec::new();
    for step in Step::ALL {
        let path = workspace().join("book/src").join(format!("{}.md", step.name()));
        let chapter = std::fs::read_to_string(&path).expect("the chapter exists");
        for region in regions(step) {
            if region.book_anchors.is_empty() {
                problems.push(format!(
                    "{}: region exercise_{} is inside no book anchor, so the book cannot show it",
                    step.short(),
                    region.name
                ));
                continue;
            }
            let include =
                |anchor: &String| format!("{{{{#include exercises/{}.rs:{anchor}}}}}", step.name());
            if !region.book_anchors.iter().any(|anchor| chapter.contains(&include(anchor))) {
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
