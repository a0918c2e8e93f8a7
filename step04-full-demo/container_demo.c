// ANCHOR: all
// container_demo.c: the article's container, written anew for this workshop.
// Run it from the directory that holds rootfs/, as root:
//     cc -o container_demo container_demo.c && sudo ./container_demo
// ANCHOR: includes
#define _GNU_SOURCE
#include <sched.h>     // unshare
#include <stdio.h>     // perror
#include <stdlib.h>    // exit
#include <sys/mount.h> // mount
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // chroot, chdir, fork, execl

// Says which call failed and why (errno), then exits with status 1.
static void fail_if(int failed, const char *call) {
    if (failed) {
        perror(call);
        exit(1);
    }
}
// ANCHOR_END: includes

// ANCHOR: container
// The child, PID 1 of the new PID namespace.
static void container(void) {
    // ANCHOR: mount_proc
    // (5) proc shows the PID namespace of whoever mounts it: mount it from inside.
    fail_if(mount("proc", "/proc", "proc", 0, NULL) == -1, "mount proc");
    // ANCHOR_END: mount_proc
    // ANCHOR: exec
    // (6) Become the shell. execl returns only when it failed.
    execl("/bin/sh", "/bin/sh", (char *)NULL);
    fail_if(1, "execl /bin/sh");
    // ANCHOR_END: exec
}
// ANCHOR_END: container

int main(void) {
    // ANCHOR: unshare
    // (1) New mount and PID namespaces.
    fail_if(unshare(CLONE_NEWNS | CLONE_NEWPID) == -1, "unshare");
    // ANCHOR_END: unshare
    // ANCHOR: private
    // (2) Make every mount private, so that no mount made here reaches the host.
    fail_if(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1, "mount /");
    // ANCHOR_END: private
    // ANCHOR: chroot
    // (3) ./rootfs becomes "/", and the working directory moves into it.
    fail_if(chroot("./rootfs") == -1, "chroot");
    fail_if(chdir("/") == -1, "chdir");
    // ANCHOR_END: chroot
    // ANCHOR: fork
    // (4) Fork: the first child created after (1) is PID 1 of the new PID namespace.
    pid_t child = fork();
    fail_if(child == -1, "fork");
    if (child == 0) {
        container();
    }
    // ANCHOR_END: fork
    // ANCHOR: wait
    // The parent waits, so that the terminal stays with the shell until it exits.
    waitpid(child, NULL, 0);
    return 0;
    // ANCHOR_END: wait
}
// ANCHOR_END: all
