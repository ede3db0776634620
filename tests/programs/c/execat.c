// execat: the ways into execve(2) besides a path: fexecve (execveat of an
// fd with AT_EMPTY_PATH), execveat relative to a directory fd,
// AT_SYMLINK_NOFOLLOW on a link, flags execveat refuses, and the program
// running itself again through /proc/self/exe.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

extern char **environ;

static long execveat_call(int dirfd, const char *path, char *const argv[], int flags) {
    return syscall(SYS_execveat, dirfd, path, argv, environ, flags);
}

// Runs `attempt` in a child; the child's exit status (the exec'd shell's,
// or 100 + errno's report if the exec failed).
static void in_child(const char *what, int (*attempt)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int failed = attempt();
        printf("%s: exec failed: %s\n", what, errno_name(failed));
        fflush(stdout);
        _exit(100);
    }
    printf("%s: exited %d\n", what, exit_status_of(pid));
}

static int by_fd(void) {
    int fd = open("/bin/sh", O_RDONLY);
    char *argv[] = {"sh", "-c", "echo fexecve ran the shell; exit 3", NULL};
    fexecve(fd, argv, environ);
    return errno;
}

static int relative_to_directory(void) {
    int directory = open("/bin", O_RDONLY | O_DIRECTORY);
    char *argv[] = {"sh", "-c", "echo execveat found sh in /bin; exit 4", NULL};
    execveat_call(directory, "sh", argv, 0);
    return errno;
}

static int not_following_a_link(void) {
    char *argv[] = {"sh", "-c", "echo not reached", NULL};
    execveat_call(AT_FDCWD, "sh-link", argv, AT_SYMLINK_NOFOLLOW);
    return errno;
}

static int following_a_link(void) {
    char *argv[] = {"sh", "-c", "echo through the link; exit 5", NULL};
    execveat_call(AT_FDCWD, "sh-link", argv, 0);
    return errno;
}

static int unknown_flag(void) {
    char *argv[] = {"sh", "-c", "echo not reached", NULL};
    execveat_call(AT_FDCWD, "/bin/sh", argv, 0x8000000);
    return errno;
}

static int empty_path_without_the_flag(void) {
    char *argv[] = {"sh", NULL};
    execveat_call(open("/bin/sh", O_RDONLY), "", argv, 0);
    return errno;
}

static int itself_again(void) {
    char *argv[] = {"execat", "again", NULL};
    execv("/proc/self/exe", argv);
    return errno;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        printf("ran again through /proc/self/exe\n");
        return 6;
    }
    unlink("sh-link");
    report("symlink", symlink("/bin/sh", "sh-link"));
    in_child("fexecve", by_fd);
    in_child("execveat in a directory", relative_to_directory);
    in_child("AT_SYMLINK_NOFOLLOW on a link", not_following_a_link);
    in_child("a link followed", following_a_link);
    in_child("an unknown flag", unknown_flag);
    in_child("an empty path without AT_EMPTY_PATH", empty_path_without_the_flag);
    in_child("/proc/self/exe", itself_again);
    unlink("sh-link");
    return 0;
}
