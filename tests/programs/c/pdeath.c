// pdeath: prctl(PR_SET_PDEATHSIG) as Linux gives it: the setting reads
// back, a fork's child starts without one, a bad signal is EINVAL, and
// a child that asked for one gets it when its parent ends (its handler
// reports through a pipe to its grandparent). Prints only what is the
// same run to run (and natively).
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

static int report_fd = -1;

static void on_term(int signal) {
    char line[64];
    int len = snprintf(line, sizeof line, "the orphan got signal %d\n", signal);
    write(report_fd, line, len);
    _exit(0);
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);
    int reports[2];
    if (pipe(reports) != 0)
        return 1;
    int value = -1;
    prctl(PR_SET_PDEATHSIG, SIGUSR2);
    prctl(PR_GET_PDEATHSIG, &value);
    printf("own setting: %d\n", value);
    errno = 0;
    int bad = prctl(PR_SET_PDEATHSIG, 65);
    printf("signal 65: %d %s\n", bad, errno_name(errno));

    pid_t middle = fork();
    if (middle == 0) {
        int ready[2];
        if (pipe(ready) != 0)
            _exit(1);
        pid_t child = fork();
        if (child == 0) {
            int inherited = -1;
            prctl(PR_GET_PDEATHSIG, &inherited);
            char line[64];
            int len = snprintf(line, sizeof line, "after fork: %d\n", inherited);
            write(reports[1], line, len);
            report_fd = reports[1];
            signal(SIGTERM, on_term);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            write(ready[1], "r", 1);
            for (;;)
                pause();
        }
        char byte;
        read(ready[0], &byte, 1);
        _exit(4);
    }
    close(reports[1]);
    int status = 0;
    waitpid(middle, &status, 0);
    printf("the middle process: exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    // The orphan's lines, until it closes its end (it exits) or 10 s.
    char text[256];
    size_t got = 0;
    struct pollfd wait_for = {reports[0], POLLIN, 0};
    while (got < sizeof text - 1 && poll(&wait_for, 1, 10000) == 1) {
        ssize_t more = read(reports[0], text + got, sizeof text - 1 - got);
        if (more <= 0)
            break;
        got += more;
    }
    text[got] = 0;
    printf("%s", text);
    return 0;
}
