//! Step07's claims about its overlay: the rootfs is an image that no
//! container changes; each container sees only its own writes; a kept layer
//! holds exactly the container's changes, whiteouts included; and nothing is
//! left mounted or on disk afterwards, even when the runtime was killed.
//!
//! Each test gives its runs a containers' directory of its own
//! (`--containers-dir`), so that it can check that the directory ends up
//! empty, and so that no other run cleans up what it looks at.

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use rstest::rstest;
use workshop_tests::{
    Output, Privilege, RootfsCopy, Runner, Step, Transcript, alpine_rootfs, host, manifest,
    manifest_changes, privilege,
};

const STEP: Step = Step::Step07Overlay;

/// A containers' directory for one test, under the scratch directory,
/// removed when the test is done with it.
struct Containers(PathBuf);

/// Removes `path` and all in it. overlayfs makes `work/work` in its work
/// directory with mode 000: rootless, our own directory, which we may not
/// read to empty it until we open it up (root may anyway).
fn remove_all(path: &Path) {
    fn open_up(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir());
        if is_dir && std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).is_ok()
        {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                open_up(&entry.path());
            }
        }
    }
    open_up(path);
    let _ = std::fs::remove_dir_all(path);
}

impl Containers {
    fn new(test: &str) -> Containers {
        let path = workshop_tests::scratch().join(format!("containers-{test}"));
        remove_all(&path);
        std::fs::create_dir_all(&path).expect("make the containers' directory");
        Containers(path)
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }

    /// What is in it now.
    fn entries(&self) -> Vec<String> {
        host::list_dir(&self.0)
    }

    /// Fails unless the runs left nothing in it.
    fn expect_empty(&self, what: &str) {
        let left = self.entries();
        assert!(
            left.is_empty(),
            "step07: {what}, {} should be empty: a container's directory is removed when the \
             container ends (like `docker run --rm`). Left: {left:?}. See {}, section (3).",
            self.0.display(),
            STEP.chapter()
        );
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        remove_all(&self.0);
    }
}

/// A file only the rootfs copy of a test has: a command that deletes
/// things checks first that it runs in that copy, never on the host's `/`
/// (say, if a student's root change went wrong).
const IN_THE_COPY: &str = "/.workshop-test-copy";

/// `rm -rf /bin` and more inside: step04 destroys its rootfs, step07's
/// image stays byte for byte as it was, and step08's, which is step07's.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo)]
#[case::step07_overlay(Step::Step07Overlay)]
#[case::step08_cgroups(Step::Step08Cgroups)]
fn rm_rf_bin(#[case] step: Step) {
    let copy = RootfsCopy::new(&format!("rm-rf-bin-{}", step.short()));
    std::fs::write(copy.path().join(&IN_THE_COPY[1..]), "").expect("mark the copy");
    let before = manifest(copy.path());
    let containers = Containers::new(&format!("rm-rf-bin-{}", step.short()));
    let script = format!(
        "[ -e {IN_THE_COPY} ] || {{ echo 'not in the rootfs copy: nothing removed'; exit 99; }}\n\
         rm -rf /bin /etc/motd /home && echo new > /new.txt && [ ! -e /bin ] && echo 'bin is gone'"
    );
    let mut args = vec!["--containers-dir".to_string(), containers.arg()];
    if step == Step::Step04FullDemo {
        args.clear(); // no overlay, no containers' directory
    }
    args.extend([copy.path().display().to_string(), "/bin/sh".into(), "-c".into(), script]);
    let output = Runner::step(step, args).run();
    output.expect_success();
    assert_eq!(output.lines(), ["bin is gone"], "inside, /bin should be gone\n{output}");
    let after = manifest(copy.path());
    if step == Step::Step04FullDemo {
        assert!(
            !copy.path().join("bin").exists() && after != before,
            "step04 has no overlay: what its container deletes is deleted from the rootfs\n{output}"
        );
        return;
    }
    assert!(
        after == before,
        "{}: the container ran `rm -rf /bin /etc/motd /home` and wrote /new.txt, and the \
         rootfs changed: it should be a read-only image, the lower layer of an overlay whose \
         upper layer, in the container's directory, takes every change. Is the overlay mounted \
         over ROOTFS before the root changes? See {}, section (2). Changed files:\n{}\n{output}",
        step.short(),
        STEP.chapter(),
        manifest_changes(&before, &after, 10)
    );
    containers.expect_empty("after the container ended");
}

/// The script of one of two containers running at once: it writes a file of
/// its own, says it is ready, and lists `/` when the test sends it SIGUSR1
/// (between two short sleeps). It ends by itself after some 30 s, should
/// the test fail before it sends the signal. (Not `sleep 30 & wait`: a job
/// in the background needs /dev/null, and before step05 there is no /dev.)
fn writer(me: &str) -> String {
    format!(
        "echo {me} > /written-by-{me}; trap 'ls /; exit 0' USR1; echo ready; \
         i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done"
    )
}

/// Two containers on one rootfs at the same time, each writing a file:
/// each sees its own, not the other's, and the rootfs gets neither.
#[test]
fn step07_two_containers_see_only_their_own_writes() {
    let copy = RootfsCopy::new("step07-two-containers");
    let containers = Containers::new("step07-two-containers");
    let start = |me: &str| {
        let args = [&containers.arg(), &copy.path().display().to_string(), "/bin/sh", "-c"];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.insert(0, "--containers-dir".into());
        args.push(writer(me));
        let mut running = Runner::step(STEP, args).spawn();
        running.wait_for_line("ready");
        running
    };
    // Both are running, and each has written its file, before either looks.
    let (a, b) = (start("a"), start("b"));
    let entries = containers.entries();
    if entries.len() != 2 {
        host::kill_all(&[b.pid()]);
        a.abort(&format!(
            "step07: two containers are running, and their containers' directory should hold a \
             directory for each; it holds {entries:?}. Did one runtime take the other's for a \
             leftover and remove it? A runtime holds an flock(2) lock on its directory while it \
             lives. See {}, section (1).",
            STEP.chapter()
        ));
    }
    let (a, a_init) = a.container_init(STEP);
    let (b, b_init) = b.container_init(STEP);
    host::kill(a_init, Signal::SIGUSR1);
    host::kill(b_init, Signal::SIGUSR1);
    let (a, b) = (a.wait(), b.wait());
    for (output, mine, theirs) in
        [(&a, "written-by-a", "written-by-b"), (&b, "written-by-b", "written-by-a")]
    {
        output.expect_success();
        let names = output.lines();
        assert!(
            names.contains(&mine) && !names.contains(&theirs),
            "step07: two containers ran at once on one rootfs, and each wrote a file. Each \
             should see its own file in `/` and not the other's: each writes to an upper layer \
             of its own. See {}, sections (1) and (2).\n{output}",
            STEP.chapter()
        );
    }
    for name in ["written-by-a", "written-by-b"] {
        assert!(!copy.path().join(name).exists(), "{name} reached the rootfs itself");
    }
    containers.expect_empty("after both containers ended");
}

/// A file's type and device numbers, as stat(2) gives them.
fn kind_of(path: &Path) -> String {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path).expect("stat");
    let kind = meta.file_type();
    if kind.is_char_device() {
        let rdev = meta.rdev();
        format!("char device {}/{}", libc::major(rdev), libc::minor(rdev))
    } else if kind.is_dir() {
        "directory".into()
    } else if kind.is_file() {
        format!("file {:?}", std::fs::read_to_string(path).unwrap_or_default())
    } else {
        format!("{kind:?}")
    }
}

/// Every path under `dir`, with [`kind_of`], sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for name in host::list_dir(&at) {
            let path = at.join(&name);
            found.push(format!("{} {}", path.strip_prefix(dir).unwrap().display(), kind_of(&path)));
            if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                todo.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The directory the runtime of `output` made in `containers`.
fn container_dir(containers: &Containers, output: &Output) -> PathBuf {
    containers.0.join(format!("container-{}", output.pid))
}

/// `--keep-layer`: the container's directory stays, and its upper layer holds
/// exactly what the container did: the file it wrote, the directory it had
/// to copy up, and a whiteout, a character device 0/0, for the file it deleted.
#[test]
fn step07_keep_layer_holds_exactly_the_changes() {
    let copy = RootfsCopy::new("step07-keep-layer");
    let containers = Containers::new("step07-keep-layer");
    let script = "echo hello > /hello.txt && rm /etc/motd";
    let args = ["--keep-layer", "--containers-dir", &containers.arg()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend([copy.path().display().to_string(), "/bin/sh".into(), "-c".into(), script.into()]);
    let output = Runner::step(STEP, args).run();
    output.expect_success();
    let dir = container_dir(&containers, &output);
    assert_eq!(
        containers.entries(),
        [dir.file_name().unwrap().to_string_lossy()],
        "step07 --keep-layer: the container's directory, named after the runtime's PID, should \
         stay. See {}, section (4).\n{output}",
        STEP.chapter()
    );
    assert_eq!(host::list_dir(&dir), ["keep", "upper"], "the layer and its mark; work/ is gone");
    assert_eq!(
        tree(&dir.join("upper")),
        ["etc directory", "etc/motd char device 0/0", "hello.txt file \"hello\\n\""],
        "step07: the kept upper layer should hold exactly the container's changes: the file it \
         wrote, the directory of the file it deleted, and in it a whiteout (a character device \
         0/0) that hides the image's file. See {}, section (4).\n{output}",
        STEP.chapter()
    );
    let upper = dir.join("upper");
    let expected = format!(
        "step07-overlay: the container's layer is kept in {}\n\
         step07-overlay: what the container changed in the image, as `docker diff` shows it:\n\
         C /etc\nD /etc/motd\nA /hello.txt\n",
        upper.display()
    );
    assert_eq!(output.stderr, expected, "what step07 says about the kept layer\n{output}");
}

/// What step07 says after the container ended (the kept layer, a leftover
/// it removed) is lost with a closed stderr, not the container's status: as
/// in step04 (`bad_input::stderr_closed_keeps_the_status`), the runtime
/// writes it with step04's `report`, which ignores a failed write.
#[test]
fn step07_keep_layer_with_stderr_closed_keeps_the_status() {
    let containers = Containers::new("step07-keep-layer-stderr-closed");
    let rootfs = alpine_rootfs().display().to_string();
    let args = ["--keep-layer", "--containers-dir", &containers.arg(), &rootfs];
    let args = args.into_iter().chain(["/bin/sh", "-c", "echo hello > /hello.txt; exit 3"]);
    let output = Runner::step(STEP, args).stderr_closed().run();
    output.expect_no_panic().expect_code(
        3,
        &format!(
            "the container's status, 3: with stderr a pipe nobody reads, what step07 says about \
             the kept layer is lost, and must not change the status (write it with step04's \
             `report`, not eprintln!, which panics). See {}, section (4)",
            STEP.chapter()
        ),
    );
}

/// A runtime killed with SIGKILL cannot remove its container's directory:
/// nothing stays mounted (the overlay lived in the container's mount
/// namespace, gone with it), and the directory is removed by the next run,
/// or by `cargo xtask doctor`, which say so.
#[rstest]
#[case::step07_next_run("next run")]
#[case::step07_doctor("doctor")]
fn killed_runtime(#[case] cleaner: &str) {
    let containers = Containers::new(&format!("killed-{}", cleaner.replace(' ', "-")));
    let rootfs = alpine_rootfs().display().to_string();
    let args = [
        "--containers-dir",
        &containers.arg(),
        &rootfs,
        "/bin/sh",
        "-c",
        "echo up; exec sleep 1000",
    ];
    let mut running = Runner::step(STEP, args).spawn();
    running.wait_for_line("up");
    let runtime = running.pid();
    running.signal(Signal::SIGKILL);
    // The harness checks that no mount and no process of the run are left.
    let killed = running.wait();
    assert_eq!(killed.code(), 128 + 9, "{killed}");
    let left = format!("container-{runtime}");
    assert_eq!(
        containers.entries(),
        std::slice::from_ref(&left),
        "a killed runtime cannot clean up"
    );
    match cleaner {
        "next run" => {
            let next =
                Runner::step(STEP, ["--containers-dir", &containers.arg(), &rootfs, "/bin/true"]);
            let (transcript, next) = Transcript::command(next);
            next.expect_success();
            let said = format!(
                "step07-overlay: removed {}, left behind by a runtime that did not finish \
                 (killed?)",
                containers.0.join(&left).display()
            );
            assert!(
                next.stdout.contains(&said), // stdout and stderr in one, as on a terminal
                "step07: the next run should remove the directory a killed runtime left, and say \
                 so: {said:?}. See {}, section (1).\n{next}",
                STEP.chapter()
            );
            let text = transcript.0.replace(&left, "container-<pid>");
            Transcript(text).assert_matches("step07_leftover");
        }
        _ => {
            let found = xtask::doctor::clean_containers(&containers.0);
            assert_eq!(found.removed, std::slice::from_ref(&left), "{found:?}");
            let lines = xtask::doctor::containers(&found);
            assert!(
                lines[0].text.starts_with("removed 1 leftover container directory in "),
                "{}",
                lines[0]
            );
        }
    }
    containers.expect_empty(&format!("after the {cleaner} cleaned up"));
}

/// Rootless, as an ordinary user (when the tests are root: the one who ran
/// sudo, or `nobody`): the overlay works in a user namespace, with its marks
/// in `user.overlay.*` extended attributes, on Linux 5.11 and later. The
/// image, owned by that user as if they had unpacked it, is unchanged.
#[test]
fn step07_rootless_as_an_ordinary_user() {
    let release = nix::sys::utsname::uname().unwrap().release().to_string_lossy().into_owned();
    assert!(
        kit::overlay::kernel_allows_rootless_overlay(&release),
        "this kernel, Linux {release}, cannot mount an overlay rootless (Linux 5.11 or later \
         can): step07's rootless test needs a newer kernel, or run the other tests as root"
    );
    let copy = RootfsCopy::new("step07-rootless");
    let containers = Containers::new("step07-rootless");
    if *privilege() == Privilege::Root {
        let (uid, gid) = workshop_tests::run::rootless_user(); // whom `rootless()` becomes
        copy.give_to(uid, gid);
        std::os::unix::fs::chown(&containers.0, Some(uid), Some(gid)).expect("chown");
    }
    let before = manifest(copy.path());
    let script = "echo hello > /hello.txt && rm /etc/motd && rm -r /media && mkdir /media && id -u";
    let args = ["--keep-layer", "--containers-dir", &containers.arg()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend([copy.path().display().to_string(), "/bin/sh".into(), "-c".into(), script.into()]);
    let output = Runner::step(STEP, args).rootless().run();
    output.expect_success();
    assert_eq!(output.lines(), ["0"], "root inside its user namespace\n{output}");
    assert!(
        output.stderr.ends_with(
            "C /etc\nD /etc/motd\nA /hello.txt\nC /media   (opaque: the image's /media is hidden)\n"
        ),
        "step07, rootless: the layer should hold the new file, the whiteout, and /media made \
         opaque (its `user.overlay.opaque` attribute), as a rootless overlay (`userxattr`) marks \
         it. See {}, section (2).\n{output}",
        STEP.chapter()
    );
    assert!(manifest(copy.path()) == before, "the image changed\n{output}");
    let dir = container_dir(&containers, &output);
    assert_eq!(
        tree(&dir.join("upper")).len(),
        4,
        "etc, etc/motd, hello.txt, media: {:?}",
        tree(&dir.join("upper"))
    );
}

/// The book's transcripts: `rm -rf /bin` under step04, then under step07,
/// with what the host's rootfs holds afterwards. The first command is the
/// test's safety catch: the shell stops unless it runs in the test's copy.
#[rstest]
#[case::step04_full_demo(Step::Step04FullDemo, "step04_rm_rf_bin")]
#[case::step07_overlay(Step::Step07Overlay, "step07_rm_rf_bin")]
fn rm_rf_bin_transcript(#[case] step: Step, #[case] name: &str) {
    let copy = RootfsCopy::new(name);
    std::fs::write(copy.path().join(&IN_THE_COPY[1..]), "").expect("mark the copy");
    let runner = Runner::step(step, [copy.path().display().to_string()]);
    let guard = format!("[ -e {IN_THE_COPY} ] || exit 99");
    let commands = [guard.as_str(), "rm -rf /bin", "ls /", "echo /*"];
    let (shell, output) = Transcript::shell(runner, "/ # ", &commands);
    output.expect_success();
    let ls = Runner::program("ls", [copy.path().join("bin/sh")]).env("LC_ALL", "C");
    let (host, _) = Transcript::command(ls.unprivileged());
    Transcript(shell.0 + &host.0).assert_matches(name);
}

/// The book's transcript of a kept layer: what step07 says about it, and a
/// whiteout as the host sees it. The run's containers' directory, which the
/// harness gives it, is shown as root's default, /run/workshop-containers.
#[test]
fn step07_keep_layer_transcript() {
    let copy = RootfsCopy::new("step07_keep_layer");
    let script = "echo hello > /hello.txt; rm /etc/motd; rm -r /media; mkdir /media";
    let rootfs = copy.path().display().to_string();
    let runner = Runner::step(STEP, ["--keep-layer", &rootfs, "/bin/sh", "-c", script]);
    let containers = runner.containers_dir().to_path_buf();
    let (run, output) = Transcript::command(runner);
    output.expect_success();
    let dir = containers.join(format!("container-{}", output.pid));
    let whiteout = dir.join("upper/etc/motd").display().to_string();
    let stat = Runner::program("stat", ["-c", "%A %t,%T %n", &whiteout]).env("LC_ALL", "C");
    let (stat, _) = Transcript::command(stat);
    let _ = std::fs::remove_dir_all(&containers);
    assert!(
        stat.0.contains(&format!("\nc--------- 0,0 {whiteout}\n")),
        "a whiteout is a character device 0/0:\n{}",
        stat.0
    );
    // What varies: the run's containers' directory, and the runtime's PID.
    let text = (run.0 + &stat.0)
        .replace(&containers.display().to_string(), kit::overlay::ROOT_CONTAINERS_DIR)
        .replace(&format!("container-{}", output.pid), "container-<pid>");
    Transcript(text).assert_matches("step07_keep_layer");
}

/// A containers' directory that cannot work is refused with a message that
/// says why, before anything is made: a file, or a directory inside the image.
#[rstest]
#[case::step07_a_file("a-file", "is not a directory")]
#[case::step07_inside_the_image("inside", "is inside the rootfs")]
fn bad_containers_dir(#[case] what: &str, #[case] message: &str) {
    let copy = RootfsCopy::new(&format!("step07-bad-{what}"));
    let containers = Containers::new(&format!("bad-{what}"));
    let dir = match what {
        "a-file" => {
            let file = containers.0.join("a-file");
            std::fs::write(&file, "").expect("make a file");
            file
        }
        _ => copy.path().join("tmp/containers"),
    };
    let before = manifest(copy.path());
    let args = [
        "--containers-dir".to_string(),
        dir.display().to_string(),
        copy.path().display().to_string(),
        "/bin/true".into(),
    ];
    let output = Runner::step(STEP, args).run();
    output.expect_no_panic().expect_code(125, "the runtime refused to start");
    assert!(output.stderr.contains(message), "step07 should say {message:?}\n{output}");
    assert!(manifest(copy.path()) == before, "the image changed\n{output}");
    assert!(!dir.is_dir(), "{} was made", dir.display());
}

/// overlayfs cannot put an upper directory on an overlay (as when the
/// runtime itself runs in a container whose `/` is one): step07 says so
/// before it makes anything there.
#[test]
fn step07_containers_dir_on_an_overlay() {
    let scratch = Containers::new("on-an-overlay");
    let dirs = ["lower", "upper", "work", "merged"].map(|d| scratch.0.join(d));
    for dir in &dirs {
        std::fs::create_dir(dir).expect("make a directory");
    }
    let [lower, upper, work, merged] = dirs.map(|d| d.display().to_string());
    let script = format!(
        "mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {merged} \
         && exec {} --containers-dir {merged}/containers {} /bin/true",
        workshop_tests::binary(STEP).display(),
        alpine_rootfs().display()
    );
    let output = Runner::program("/bin/sh", ["-c", &script]).in_private_mount_namespace().run();
    output.expect_no_panic().expect_code(125, "the runtime refused to start");
    assert!(
        output.stderr.contains("is on an overlay filesystem")
            && output.stderr.contains("hint: choose a directory on tmpfs or ext4"),
        "step07 should say that the containers' directory is on an overlay, and what to do\n{output}"
    );
    assert!(!upper.is_empty() && host::list_dir(&scratch.0.join("upper")).is_empty(), "{output}");
}
