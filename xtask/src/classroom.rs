//! `cargo xtask exercise` and `cargo xtask solution`: hand a step out as an
//! exercise, and take the solution back, without ever losing a student's work.
//!
//! While a step is an exercise, its solution waits in `.exercise/` at the
//! workspace root, which git ignores:
//!
//! - `.exercise/solutions/<crate>.rs`: the step's source as it was, byte for byte;
//! - `.exercise/handed-out/<crate>.rs`: the exercise exactly as it was written,
//!   to tell whether the student has worked on it since;
//! - `.exercise/student/<crate>-<UTC time>.rs`: a student's copy, kept whenever
//!   `--force` replaces a file that had work in it.
//!
//! `solution` puts the saved solution back and then forgets it (the working
//! tree holds it again), so a solution edited afterwards is simply the new one.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::exercise::{self, Region};
use crate::run::Step;

/// The exercise state of one workspace.
pub struct Classroom {
    root: PathBuf,
}

impl Classroom {
    /// The classroom of the workspace at `root`.
    pub fn new(root: &Path) -> Classroom {
        Classroom { root: root.to_path_buf() }
    }

    /// The classroom of this workspace.
    pub fn here() -> Classroom {
        Classroom::new(crate::workspace_root())
    }

    /// The file with the step's exercise regions, under the root:
    /// `step04-full-demo/src/main.rs`, or a `kit` module (`kit/src/overlay.rs`).
    pub fn source(&self, step: Step) -> PathBuf {
        self.root.join(step.exercise_source())
    }

    fn state(&self, kind: &str, step: Step) -> PathBuf {
        self.root.join(".exercise").join(kind).join(format!("{}.rs", step.crate_name()))
    }

    /// Where the solution waits while the step is an exercise.
    pub fn saved_solution(&self, step: Step) -> PathBuf {
        self.state("solutions", step)
    }

    /// The exercise as it was handed out.
    pub fn handed_out(&self, step: Step) -> PathBuf {
        self.state("handed-out", step)
    }

    /// Where the book's exercise listing of `step` is.
    pub fn book_listing(&self, step: Step) -> PathBuf {
        self.root.join("book/src/exercises").join(format!("{}.rs", step.crate_name()))
    }

    /// `path` as typed from the workspace root.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }

    /// Turns `step` into its exercise. A no-op on an exercise; refuses a file
    /// with a student's work in it unless `force`, which keeps a copy first.
    pub fn exercise(&self, step: Step, force: bool) -> Result<String> {
        let (name, path) = (step.name(), self.source(step));
        let shown = self.show(&path);
        let current = read(&path)?;
        let saved = read_if_exists(&self.saved_solution(step))?;
        let exercise_now = exercise::to_exercise(&current)
            .with_context(|| format!("cannot make an exercise of {shown}"))?;
        if exercise_now == current {
            let note = if saved.is_none() {
                format!(
                    "\n  (no solution is saved in {}: see `cargo xtask solution {name}`)",
                    self.show(&self.saved_solution(step))
                )
            } else {
                String::new()
            };
            return Ok(format!("{name}: {shown} is already an exercise: nothing to do{note}"));
        }
        let unwritten = exercise::unwritten(&current)?;
        let (solution, kept) = match saved {
            Some(solution) if solution == current => (solution, None),
            None if unwritten.is_empty() => (current.clone(), None),
            saved => {
                let what = match &saved {
                    Some(_) => format!(
                        "{shown} is neither a fresh exercise nor the solution saved in {} (a \
                         student's work?)",
                        self.show(&self.saved_solution(step))
                    ),
                    None => format!(
                        "{shown} is an exercise in progress ({} of its regions still todo!())",
                        unwritten.len()
                    ),
                };
                if !force {
                    let mut message = format!(
                        "{what}: it holds work that making the exercise again would lose\n\
                         hint: `cargo xtask exercise {name} --force` keeps a copy of it in .exercise/student/ first"
                    );
                    if saved.is_some() {
                        message += &format!(
                            "\nhint: if {shown} is a new solution to hand out, delete {} first",
                            self.show(&self.saved_solution(step))
                        );
                    }
                    bail!(message);
                }
                let kept = self.keep_student_copy(step, &current)?;
                (saved.unwrap_or_else(|| current.clone()), Some(kept))
            }
        };
        let exercise = exercise::to_exercise(&solution)?;
        if solution != current || !self.saved_solution(step).exists() {
            // Only a real solution is saved: never a student's unfinished file.
            if exercise::unwritten(&solution)?.is_empty() {
                write(&self.saved_solution(step), &solution)?;
            }
        }
        write(&self.handed_out(step), &exercise)?;
        write(&path, &exercise)?;
        let regions = exercise::regions(&exercise)?;
        let mut out = String::new();
        if let Some(kept) = kept {
            out += &format!("{name}: kept the file as it was in {}\n", self.show(&kept));
        }
        out += &format!(
            "{name}: {shown} is an exercise now: {} regions to write, {}",
            regions.len(),
            list(&regions)
        );
        if self.saved_solution(step).exists() {
            out += &format!(
                "\n  the solution is in {} (git ignores .exercise/); `cargo xtask solution {name}` puts it back",
                self.show(&self.saved_solution(step))
            );
        }
        Ok(out)
    }

    /// Puts the saved solution of `step` back. Refuses when the file has
    /// changed since it was handed out unless `force`, which keeps a copy first.
    pub fn solution(&self, step: Step, force: bool) -> Result<String> {
        let (name, path) = (step.name(), self.source(step));
        let shown = self.show(&path);
        let current = read(&path)?;
        let saved_path = self.saved_solution(step);
        let Some(solution) = read_if_exists(&saved_path)? else {
            let unwritten = exercise::unwritten(&current)
                .with_context(|| format!("cannot read the exercise regions of {shown}"))?;
            if unwritten.is_empty() {
                return Ok(format!(
                    "{name}: {shown} has no todo!() left (the solution, or finished work): nothing to do"
                ));
            }
            bail!(
                "no solution of {name} is saved in {}: this copy of the workshop was handed out \
                 as an exercise ({} of {name}'s regions are still todo!())\n{}",
                self.show(&saved_path),
                unwritten.len(),
                self.where_to_find_the_solution(step)
            );
        };
        if current == solution {
            self.forget(step)?;
            return Ok(format!("{name}: {shown} is already the solution: nothing to do"));
        }
        let handed_out = read_if_exists(&self.handed_out(step))?;
        let mut out = String::new();
        if handed_out.as_deref() != Some(current.as_str()) {
            if !force {
                bail!(
                    "{shown} has changed since it was handed out as an exercise (a student's \
                     work?): putting the solution back would lose it\n\
                     hint: `cargo xtask solution {name} --force` keeps a copy of it in .exercise/student/ first"
                );
            }
            let kept = self.keep_student_copy(step, &current)?;
            out += &format!("{name}: kept the file as it was in {}\n", self.show(&kept));
        }
        write(&path, &solution)?;
        self.forget(step)?;
        out += &format!("{name}: {shown} is the solution again");
        Ok(out)
    }

    /// Writes `book/src/exercises/<crate>.rs` for every step, from the saved
    /// solution when there is one, else from the source as it is (either way
    /// the exercise is the same).
    pub fn write_book(&self) -> Result<String> {
        let mut out = Vec::new();
        for step in Step::ALL {
            let source = match read_if_exists(&self.saved_solution(step))? {
                Some(solution) => solution,
                None => read(&self.source(step))?,
            };
            let listing = exercise::book_listing(&step.exercise_source(), &source)?;
            let path = self.book_listing(step);
            let shown = self.show(&path);
            if read_if_exists(&path)?.as_deref() == Some(listing.as_str()) {
                out.push(format!("{}: {shown} is up to date", step.name()));
            } else {
                write(&path, &listing)?;
                out.push(format!("{}: wrote {shown}", step.name()));
            }
        }
        Ok(out.join("\n"))
    }

    /// Saves a student's file in `.exercise/student/<crate>-<UTC time>.rs`.
    fn keep_student_copy(&self, step: Step, text: &str) -> Result<PathBuf> {
        let dir = self.root.join(".exercise/student");
        let stamp = utc_stamp(std::time::SystemTime::now());
        let mut path = dir.join(format!("{}-{stamp}.rs", step.crate_name()));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("{}-{stamp}-{n}.rs", step.crate_name()));
        }
        write(&path, text)?;
        Ok(path)
    }

    /// Forgets the saved solution and exercise of `step` (the source holds the solution).
    fn forget(&self, step: Step) -> Result<()> {
        for path in [self.saved_solution(step), self.handed_out(step)] {
            match std::fs::remove_file(&path) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| format!("cannot remove {}", path.display()));
                }
                _ => {}
            }
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir); // only if empty
            }
        }
        let _ = std::fs::remove_dir(self.root.join(".exercise")); // only if empty
        Ok(())
    }

    /// Hints at where the solution of `step` is: the teacher, or the latest
    /// commit whose source has no `todo!()` left, if git knows one.
    fn where_to_find_the_solution(&self, step: Step) -> String {
        let relative = step.exercise_source();
        let commit = self.solution_commit(&relative);
        let how = match commit {
            Some((hash, subject)) => format!(
                "hint: or take it from git, from commit {} (\"{subject}\"): `git checkout {} -- {relative}`",
                &hash[..hash.len().min(12)],
                &hash[..hash.len().min(12)]
            ),
            None => format!(
                "hint: or take it from git, from a commit of the solution: `git checkout <commit> -- {relative}`"
            ),
        };
        format!("hint: ask your teacher for the solution\n{how}")
    }

    /// The latest of the last 50 commits where `relative` is a solution.
    fn solution_commit(&self, relative: &str) -> Option<(String, String)> {
        let git = |args: &[&str]| -> Option<String> {
            let out = Command::new("git").args(args).current_dir(&self.root).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let log = git(&["log", "-n", "50", "--format=%H%x09%s", "--", relative])?;
        log.lines().filter_map(|line| line.split_once('\t')).find_map(|(hash, subject)| {
            // A solution has no todo!() (older ones may have no markers either).
            let text = git(&["show", &format!("{hash}:{relative}")])?;
            (!text.contains("todo!(")).then(|| (hash.to_string(), subject.to_string()))
        })
    }
}

/// `(1) change the root, (2) become the command`.
fn list(regions: &[Region]) -> String {
    regions.iter().map(|r| format!("({}) {}", r.number, r.title)).collect::<Vec<_>>().join(", ")
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_if_exists(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `text` to `path` all at once (a temporary file renamed over it),
/// keeping the permissions of the file it replaces.
fn write(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().context("a file has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().context("a file has a name")?.to_string_lossy();
    let temporary = dir.join(format!(".{name}.xtask-tmp"));
    std::fs::write(&temporary, text)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&temporary, meta.permissions())
            .with_context(|| format!("cannot set the permissions of {}", temporary.display()))?;
    }
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

/// `20250131-235959`: the UTC date and time, for file names that sort.
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let seconds = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const SOLUTION: &str = "//! A step.\n\nfn f() -> u8 {\n    // ANCHOR: exercise_f (1) fork: fork(2)\n    1\n    // ANCHOR_END: exercise_f\n}\n";

    /// A workspace with every step's source set to `SOLUTION`.
    fn workspace() -> (tempfile::TempDir, Classroom) {
        let dir = tempfile::tempdir().unwrap();
        let classroom = Classroom::new(dir.path());
        for step in Step::ALL {
            write(&classroom.source(step), SOLUTION).unwrap();
        }
        (dir, classroom)
    }

    fn student_copies(classroom: &Classroom) -> Vec<String> {
        let dir = classroom.root.join(".exercise/student");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn exercise_then_solution_is_byte_identical() {
        let (_dir, classroom) = workspace();
        let step = Step::Step04;
        let out = classroom.exercise(step, false).unwrap();
        assert!(out.contains("is an exercise now: 1 regions to write, (1) fork"), "{out}");
        let exercise = read(&classroom.source(step)).unwrap();
        assert!(exercise::is_exercise(&exercise));
        assert_eq!(read(&classroom.saved_solution(step)).unwrap(), SOLUTION);
        assert_eq!(read(&classroom.handed_out(step)).unwrap(), exercise);
        // A second time: nothing to do.
        let out = classroom.exercise(step, false).unwrap();
        assert!(out.contains("already an exercise"), "{out}");
        assert_eq!(read(&classroom.source(step)).unwrap(), exercise);
        // Back to the solution, byte for byte, and the saved copies are gone.
        let out = classroom.solution(step, false).unwrap();
        assert!(out.contains("is the solution again"), "{out}");
        assert_eq!(read(&classroom.source(step)).unwrap(), SOLUTION);
        assert!(!classroom.saved_solution(step).exists());
        assert!(!classroom.handed_out(step).exists());
        let out = classroom.solution(step, false).unwrap();
        assert!(out.contains("nothing to do"), "{out}");
        assert!(student_copies(&classroom).is_empty());
    }

    #[test]
    fn a_student_s_work_is_never_lost() {
        let (_dir, classroom) = workspace();
        let step = Step::Step01;
        classroom.exercise(step, false).unwrap();
        let exercise = read(&classroom.source(step)).unwrap();
        let work = exercise.replace("todo!(", "my_attempt(");
        write(&classroom.source(step), &work).unwrap();

        // solution: refused, then kept with --force.
        let err = crate::report(&classroom.solution(step, false).unwrap_err());
        assert!(err.contains("has changed since it was handed out"), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert_eq!(read(&classroom.source(step)).unwrap(), work);
        let out = classroom.solution(step, true).unwrap();
        assert!(
            out.contains("kept the file as it was in .exercise/student/step01-chroot-"),
            "{out}"
        );
        assert_eq!(read(&classroom.source(step)).unwrap(), SOLUTION);
        assert_eq!(student_copies(&classroom), std::slice::from_ref(&work));

        // exercise over a student's work: refused, then kept with --force.
        classroom.exercise(step, false).unwrap();
        let exercise = read(&classroom.source(step)).unwrap();
        // A change outside the regions, todo!() still there: still an exercise, nothing to do.
        let comment = exercise.replace("fn f()", "fn f() /* mine */");
        write(&classroom.source(step), &comment).unwrap();
        assert!(classroom.exercise(step, false).unwrap().contains("already an exercise"));
        assert_eq!(read(&classroom.source(step)).unwrap(), comment);
        // A region written: that is work.
        let written = SOLUTION.replace("    1\n", "    2\n");
        write(&classroom.source(step), &written).unwrap();
        let err = crate::report(&classroom.exercise(step, false).unwrap_err());
        assert!(err.contains("is neither a fresh exercise nor the solution saved"), "{err}");
        let out = classroom.exercise(step, true).unwrap();
        assert!(out.contains("kept the file as it was"), "{out}");
        assert!(exercise::is_exercise(&read(&classroom.source(step)).unwrap()));
        assert_eq!(student_copies(&classroom).len(), 2);
        // The saved solution is still the real one.
        assert_eq!(read(&classroom.saved_solution(step)).unwrap(), SOLUTION);
    }

    #[test]
    fn without_a_saved_solution_solution_says_where_to_get_it() {
        let (_dir, classroom) = workspace();
        let step = Step::Step02;
        let exercise = exercise::to_exercise(SOLUTION).unwrap();
        write(&classroom.source(step), &exercise).unwrap(); // as in a student's clone
        let err = crate::report(&classroom.solution(step, false).unwrap_err());
        assert!(err.contains("no solution of step02 is saved"), "{err}");
        assert!(err.contains("ask your teacher"), "{err}");
        assert!(err.contains("git checkout"), "{err}");
        assert_eq!(read(&classroom.source(step)).unwrap(), exercise);
        // exercise on it: nothing to do, and it says that no solution is saved.
        let out = classroom.exercise(step, false).unwrap();
        assert!(out.contains("already an exercise") && out.contains("no solution"), "{out}");
        // A student's unfinished work is never saved as "the solution".
        let partial = exercise.replace("//! A step.", "//! A step, mine.");
        let partial = partial.replace("todo!(", "todo!(/*soon*/ ");
        write(&classroom.source(step), &partial).unwrap();
        let _ = classroom.exercise(step, true);
        assert!(!classroom.saved_solution(step).exists());
    }

    #[test]
    fn the_book_listings_are_written_once() {
        let (_dir, classroom) = workspace();
        let out = classroom.write_book().unwrap();
        assert!(out.contains("step04: wrote book/src/exercises/step04-full-demo.rs"), "{out}");
        let listing = read(&classroom.book_listing(Step::Step04)).unwrap();
        assert_eq!(
            listing,
            exercise::book_listing("step04-full-demo/src/main.rs", SOLUTION).unwrap()
        );
        // In exercise mode the listing is the same.
        classroom.exercise(Step::Step04, false).unwrap();
        let out = classroom.write_book().unwrap();
        assert!(
            out.contains("step04: book/src/exercises/step04-full-demo.rs is up to date"),
            "{out}"
        );
    }

    #[test]
    fn utc_stamps_sort() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(utc_stamp(leap), "20000229-010101");
        let later = UNIX_EPOCH + Duration::from_secs(1_767_225_599); // 2025-12-31 23:59:59
        assert_eq!(utc_stamp(later), "20251231-235959");
    }
}
