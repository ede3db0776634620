// pgroups: process groups and sessions as shells use them, and waitid:
// a child in a group of its own (set by itself and by its parent), a
// child in a session of its own, a signal to a whole group, waitid's
// siginfo (exited, killed, WNOHANG with none ready). Prints only what is
// the same run to run (and natively).
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

static void nap(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);

    pid_t child = fork();
    if (child == 0) {
        setpgid(0, 0);
        _exit(getpgrp() == getpid() ? 9 : 1);
    }
    setpgid(child, child);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int done = waitid(P_PID, child, &info, WEXITED);
    printf("own group: waitid %d, %s, status %d, pid %s\n", done,
           info.si_code == CLD_EXITED ? "CLD_EXITED" : "other", info.si_status,
           info.si_pid == child ? "the child's" : "another");

    child = fork();
    if (child == 0) {
        pid_t session = setsid();
        _exit(session == getpid() && getsid(0) == getpid() ? 4 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("own session: exited %d\n", WEXITSTATUS(status));

    // A group of two: the leader and its child, signalled together.
    child = fork();
    if (child == 0) {
        setpgid(0, 0);
        if (fork() == 0) {
            pause();
            _exit(0);
        }
        pause();
        _exit(0);
    }
    setpgid(child, child);
    nap(200);
    printf("the group is the child's: %s\n", getpgid(child) == child ? "yes" : "no");
    printf("kill the group: %d\n", kill(-child, SIGTERM));
    memset(&info, 0, sizeof info);
    waitid(P_PID, child, &info, WEXITED);
    printf("leader: %s by signal %d\n", info.si_code == CLD_KILLED ? "killed" : "other",
           info.si_status);

    child = fork();
    if (child == 0) {
        nap(100);
        _exit(0);
    }
    memset(&info, 0, sizeof info);
    done = waitid(P_ALL, 0, &info, WEXITED | WNOHANG);
    printf("WNOHANG with none ready: %d, pid %d\n", done, info.si_pid);
    waitid(P_ALL, 0, &info, WEXITED);
    printf("then: %s\n", info.si_code == CLD_EXITED ? "exited" : "other");
    printf("kill(0, 0): %d\n", kill(0, 0));
    errno = 0;
    done = waitid(P_ALL, 0, &info, WEXITED);
    printf("waitid with none left: %d %s\n", done, errno_name(errno));
    return 0;
}
