//! The command line, compared with the tools the steps imitate: chroot(1)
//! for steps 01, 03, and 04 on (a usage error is 125), util-linux's unshare(1) for
//! step02 (a usage error is 1). Options come before the command: from the
//! first word that is not an option on, every word is the command's. And the
//! mistakes a learner makes on the command line get a hint.
//!
//! `cargo test step02` runs step02's cases with the rest of step02's tests.

use rstest::rstest;
use rstest_reuse::apply;
use workshop_tests::{ROOTFS, Runner, Step, Transcript, every_step, host, scratch, with_rootfs};

/// The tool a step imitates, and its status for a usage error.
fn model(step: Step) -> (&'static str, i32) {
    match step {
        Step::Step02UnshareCli => (host::util_linux_unshare(), 1),
        _ => (host::coreutils_chroot(), 125),
    }
}

/// An option nobody has: a usage error, with the model's status, and a
/// message that names it. Not a command named `--bogus` (status 127).
#[apply(every_step)]
fn unknown_option_is_a_usage_error(#[case] step: Step) {
    let (tool, code) = model(step);
    let theirs = Runner::program(tool, ["--bogus", "/bin/true"]).run();
    assert_eq!(
        theirs.code(),
        code,
        "`{tool} --bogus` should exit with {code} on this machine; this test compares the \
         steps with it (this is not the step's fault).\n{theirs}"
    );
    let ours = Runner::step(step, ["--bogus", "/bin/true"]).run();
    ours.expect_no_panic();
    let short = step.short();
    assert!(
        ours.code() == code && ours.stderr.contains("'--bogus'"),
        "{short}: `--bogus` is no option of {short}: like `{tool}`, it should say so, naming \
         '--bogus', and exit with {code}, the status {tool} gives a usage error (clap's own is \
         2: parse with `Cli::try_parse()` and choose the status). It must not run a command \
         named --bogus either (status 127): options come before the command, and an unknown \
         one is an error.\n{ours}\n--- `{tool}`, for comparison:\n{theirs}"
    );
}

/// From the first word that is not an option on, every word is the
/// command's, even those that look like options, as with getopt's `+`.
#[rstest]
#[case::step02_unshare_cli(Step::Step02UnshareCli, &["/bin/echo", "--fork", "--bogus", "-x"])]
#[case::step03_pid_ns(Step::Step03PidNs, &["/bin/echo", "--no-fork", "--bogus", "-x"])]
fn words_after_the_command_are_the_commands(#[case] step: Step, #[case] args: &[&str]) {
    let output = Runner::step(step, args).run();
    assert!(
        output.code() == 0 && output.lines() == [args[1..].join(" ")],
        "{}: `{}`: everything after /bin/echo belongs to echo, which should print it and \
         exit with 0.\n{output}",
        step.short(),
        output.label
    );
}

/// A directory where the command should be: a learner who gave a rootfs to
/// a step that takes it another way (step02: `--root DIR`) or not at all
/// (step03). exec fails as it must (127 when execvp finds no such command in
/// $PATH, 126 for a path to a directory), and a hint says what was meant.
#[rstest]
#[case::step02_unshare_cli_relative(Step::Step02UnshareCli, "rootfs", 127, "--root rootfs")]
#[case::step02_unshare_cli_path(Step::Step02UnshareCli, ROOTFS, 126, "--root")]
#[case::step03_pid_ns_relative(Step::Step03PidNs, "rootfs", 127, "step03 takes no rootfs")]
#[case::step03_pid_ns_path(Step::Step03PidNs, ROOTFS, 126, "step03 takes no rootfs")]
fn a_directory_as_the_command_gets_a_hint(
    #[case] step: Step,
    #[case] directory: &str,
    #[case] code: i32,
    #[case] hint: &str,
) {
    // The harness runs steps in its scratch directory, where `rootfs` is a directory.
    let relative = scratch().join("rootfs");
    std::fs::create_dir_all(&relative).expect("create the scratch rootfs directory");
    let args = with_rootfs(&[directory, "/bin/ps"]);
    // execvp(3) fails with EACCES (126) rather than ENOENT if any $PATH
    // directory is closed to us, as /root/.cargo/bin is to another user.
    let path = "/usr/local/bin:/usr/bin:/bin";
    let output = Runner::step(step, &args).env("PATH", path).run();
    output.expect_no_panic();
    let (short, chapter) = (step.short(), step.chapter());
    let what = match step {
        Step::Step02UnshareCli => "step02 takes its new root with `--root DIR`",
        _ => "step03 takes no rootfs at all: it runs COMMAND on the host's files",
    };
    assert!(
        output.code() == code && output.stderr.contains(&format!("hint: {}", args[0])),
        "{short}: `{}` gives a directory, {}, where the command goes: exec fails (status \
         {code}), and the message should add a `hint:` line that starts with the directory \
         and says what was probably meant: {what}. See {chapter}.\n{output}",
        output.label,
        args[0]
    );
    assert!(
        output.stderr.contains(hint),
        "{short}: the hint should say {hint:?}: {what}. See {chapter}.\n{output}"
    );
}

/// Without a command, step02 runs $SHELL as util-linux's unshare does: as a
/// login shell, whose argv[0] is `-sh`.
#[test]
fn step02_runs_shell_as_unshare_does() {
    let step = Step::Step02UnshareCli;
    let args = with_rootfs(&["--root", ROOTFS]);
    let probe = "echo \"argv0: $0\"";
    let unshare = Runner::program(host::util_linux_unshare(), &args).env("SHELL", "/bin/sh");
    let unshare = unshare.stdin(probe).run();
    assert!(
        unshare.code() == 0 && unshare.lines() == ["argv0: -sh"],
        "util-linux's unshare, given no command, should run $SHELL (/bin/sh) as a login \
         shell, `-sh`; it did not on this machine, so step02 cannot be compared with it.\n\
         {unshare}"
    );
    let ours = Runner::step(step, &args).env("SHELL", "/bin/sh").stdin(probe).run();
    assert_eq!(
        (ours.code(), ours.lines()),
        (unshare.code(), unshare.lines()),
        "{}: without a command, step02 should run $SHELL as unshare(1) does: the file $SHELL, \
         with argv[0] `-` and its base name (`-sh`), which makes it a login shell. See {}, \
         \"Run it\".\n{ours}\n--- util-linux's unshare, for comparison:\n{unshare}",
        step.short(),
        step.chapter()
    );
}

/// Without a command, under sudo, $SHELL is often /bin/bash, which Alpine
/// does not have: the exec fails (127), and the hint says to name a command.
#[test]
fn step02_shell_missing_in_the_new_root() {
    let step = Step::Step02UnshareCli;
    assert!(
        !workshop_tests::alpine_rootfs().join("bin/bash").exists(),
        "this test needs a rootfs without /bin/bash, as Alpine's minirootfs is"
    );
    let runner = Runner::step(step, with_rootfs(&["--root", ROOTFS])).env("SHELL", "/bin/bash");
    let (transcript, output) = Transcript::command(runner);
    output.expect_no_panic().expect_code(
        127,
        "$SHELL, /bin/bash, is not in the new root: exec fails with ENOENT (127)",
    );
    assert!(
        ["$SHELL", "/bin/bash", "new root", "/bin/sh"]
            .iter()
            .all(|w| output.messages().contains(w)),
        "{}: without a command, step02 runs $SHELL, here /bin/bash, which Alpine does not \
         have. Besides the failed exec, it should say that it ran $SHELL (/bin/bash), that \
         the new root does not have it, and suggest naming a command, /bin/sh. See {}, \"Run \
         it\".\n{output}",
        step.short(),
        step.chapter()
    );
    transcript.assert_matches("step02_no_shell");
}

/// chroot(2) without CAP_SYS_CHROOT fails with EPERM: step02 says what it
/// needs, as every step does for its first privileged call (`not_root`).
#[test]
fn step02_chroot_not_root() {
    let step = Step::Step02UnshareCli;
    let output =
        Runner::step(step, with_rootfs(&["--root", ROOTFS, "/bin/true"])).unprivileged().run();
    output.expect_no_panic().expect_code(125, "chroot failed: the step itself failed");
    for text in ["CAP_SYS_CHROOT", "sudo", "--map-root-user", "cargo xtask doctor"] {
        assert!(
            output.stderr.contains(text),
            "{}: `{}` as an ordinary user: chroot(2) fails with EPERM, and EPERM alone does \
             not tell a learner what to do. The hint should name the capability \
             (CAP_SYS_CHROOT), and the ways to get it: sudo, --map-root-user, and `cargo \
             xtask doctor`; it lacks {text:?}. See {}, section (5).\n{output}",
            step.short(),
            output.label,
            step.chapter()
        );
    }
}
