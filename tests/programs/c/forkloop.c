// forkloop MODE COUNT: times COUNT processes made and waited for, and
// prints per_op_us=N. MODE: fork (the child exits at once), forkexec (the
// child execs busybox's static true), spawn (posix_spawn of it).
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: forkloop fork|forkexec|spawn COUNT\n");
        return 2;
    }
    const char *mode = argv[1];
    int count = atoi(argv[2]);
    char *true_argv[] = {"true", NULL};
    double started = now_us();
    for (int i = 0; i < count; i++) {
        pid_t child;
        if (strcmp(mode, "spawn") == 0) {
            if (posix_spawn(&child, "/bin/busybox", NULL, NULL, true_argv, environ) != 0)
                return 1;
        } else {
            child = fork();
            if (child < 0)
                return 1;
            if (child == 0) {
                if (strcmp(mode, "forkexec") == 0)
                    execve("/bin/busybox", true_argv, environ);
                _exit(0);
            }
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 1;
    }
    printf("per_op_us=%f\n", (now_us() - started) / count);
    return 0;
}
