// forkwait: processes as a shell uses them: fork, a pipe from child to
// parent, wait statuses (an exit code, a signal, WNOHANG), the child's
// own copy of memory, an fd (and its offset) shared across the fork,
// getppid, ECHILD when no child is left, a child's own children, and
// the time a child used (wait4's rusage, getrusage, times).
// Prints only what is the same run to run (and natively).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

static int copied = 1;

static void status_of(const char *what, pid_t child, int status) {
    if (WIFEXITED(status))
        printf("%s: %s, exited %d\n", what, child > 0 ? "waited" : "none", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: %s, killed by signal %d\n", what, child > 0 ? "waited" : "none",
               WTERMSIG(status));
    else
        printf("%s: status %#x\n", what, status);
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t me = getpid();
    int ends[2];
    if (pipe(ends) != 0) {
        printf("pipe: %s\n", errno_name(errno));
        return 1;
    }
    int file = open("forkwait.data", O_RDWR | O_CREAT | O_TRUNC, 0644);

    pid_t child = fork();
    if (child < 0) {
        printf("fork: %s\n", errno_name(errno));
        return 1;
    }
    if (child == 0) {
        close(ends[0]);
        copied = 2;
        char line[128];
        int len = snprintf(line, sizeof line, "child: parent is %s, own pid %s\n",
                           getppid() == me ? "the forker" : "another",
                           getpid() != me ? "new" : "the same");
        write(ends[1], line, len);
        write(file, "written by the child", 20);
        _exit(3);
    }
    close(ends[1]);
    char line[128];
    ssize_t got = read(ends[0], line, sizeof line - 1);
    line[got > 0 ? got : 0] = 0;
    printf("%s", line);
    printf("read to the end: %s\n", read(ends[0], line, 1) == 0 ? "yes" : "no");
    int status = 0;
    pid_t waited = waitpid(child, &status, 0);
    status_of("exit(3)", waited == child ? child : 0, status);
    printf("parent's memory kept: %s\n", copied == 1 ? "yes" : "no");
    printf("the shared fd's offset moved: %s\n", lseek(file, 0, SEEK_CUR) == 20 ? "yes" : "no");

    child = fork();
    if (child == 0) {
        signal(SIGABRT, SIG_DFL);
        raise(SIGTERM);
        _exit(0);
    }
    waited = waitpid(child, &status, 0);
    status_of("raise(SIGTERM)", waited == child ? child : 0, status);

    child = fork();
    if (child == 0) {
        struct timespec nap = {0, 100 * 1000 * 1000};
        nanosleep(&nap, NULL);
        _exit(7);
    }
    waited = waitpid(child, &status, WNOHANG);
    printf("WNOHANG while it runs: %d\n", (int)waited);
    waited = wait(&status);
    status_of("wait() after a nap", waited == child ? child : 0, status);

    // A child that forks its own: the grandchild's status reaches it.
    child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0)
            _exit(5);
        int inner = 0;
        waitpid(grandchild, &inner, 0);
        _exit(WIFEXITED(inner) ? 10 + WEXITSTATUS(inner) : 1);
    }
    waited = waitpid(child, &status, 0);
    status_of("a child that waited for its own", waited == child ? child : 0, status);

    // A child that spins for 30 ms of its own time: its parent sees it.
    child = fork();
    if (child == 0) {
        struct timespec used;
        do
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
        while (used.tv_sec == 0 && used.tv_nsec < 30 * 1000 * 1000);
        _exit(0);
    }
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    waited = wait4(child, &status, 0, &usage);
    long child_us = usage.ru_utime.tv_sec * 1000000L + usage.ru_utime.tv_usec +
                    usage.ru_stime.tv_sec * 1000000L + usage.ru_stime.tv_usec;
    printf("wait4's rusage: %s, the child's time %s\n", waited == child ? "the child's" : "none",
           child_us >= 10000 ? "at least 10 ms" : "too short");
    memset(&usage, 0, sizeof usage);
    int done = getrusage(RUSAGE_CHILDREN, &usage);
    long children_us = usage.ru_utime.tv_sec * 1000000L + usage.ru_utime.tv_usec +
                       usage.ru_stime.tv_sec * 1000000L + usage.ru_stime.tv_usec;
    printf("getrusage(RUSAGE_CHILDREN): %d, %s\n", done,
           children_us >= child_us ? "at least the child's" : "less than the child's");
    memset(&usage, 0, sizeof usage);
    done = getrusage(RUSAGE_SELF, &usage);
    printf("getrusage(RUSAGE_SELF): %d, max RSS %s\n", done, usage.ru_maxrss > 0 ? "> 0" : "0");
    errno = 0;
    done = getrusage(7, &usage);
    printf("getrusage(7): %d %s\n", done, errno_name(errno));
    struct tms ticks;
    memset(&ticks, 0, sizeof ticks);
    clock_t since = times(&ticks);
    printf("times: %s, children's ticks %s\n", since > 0 ? "> 0" : "0",
           ticks.tms_cutime + ticks.tms_cstime > 0 ? "> 0" : "0");

    errno = 0;
    waited = waitpid(-1, &status, 0);
    printf("no child left: %d %s\n", (int)waited, errno_name(errno));
    close(file);
    unlink("forkwait.data");
    return 0;
}
