// waitmask: ppoll, pselect and epoll_pwait with a signal mask for the
// call, as a server or make's jobserver uses them: the signal, blocked
// otherwise, comes from a child while the call waits on a pipe nothing
// writes to; the call ends with EINTR, the handler runs, and the mask
// from before holds again. Prints only what is the same run to run.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

static volatile sig_atomic_t handled;

static void on_usr1(int signal) {
    (void)signal;
    handled++;
}

/// A child that sends SIGUSR1 to this process after 50 ms.
static pid_t signal_soon(void) {
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    return child;
}

static void after(const char *what, int result, int error, pid_t child) {
    waitpid(child, NULL, 0);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("%s: %d %s, handled %d, SIGUSR1 blocked again %d\n", what, result, errno_name(error),
           (int)handled, sigismember(&now, SIGUSR1));
    handled = 0;
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_usr1;
    sigaction(SIGUSR1, &action, NULL);
    sigset_t blocked, during;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    sigprocmask(SIG_BLOCK, &blocked, NULL);
    sigemptyset(&during);
    int quiet[2];
    if (pipe(quiet) != 0)
        return 1;
    struct timespec five = {5, 0};

    pid_t child = signal_soon();
    struct pollfd wait_for = {quiet[0], POLLIN, 0};
    errno = 0;
    int result = ppoll(&wait_for, 1, &five, &during);
    after("ppoll", result, errno, child);

    child = signal_soon();
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(quiet[0], &readable);
    errno = 0;
    result = pselect(quiet[0] + 1, &readable, NULL, NULL, &five, &during);
    after("pselect", result, errno, child);

    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = quiet[0]};
    epoll_ctl(epoll, EPOLL_CTL_ADD, quiet[0], &event);
    child = signal_soon();
    errno = 0;
    result = epoll_pwait(epoll, &event, 1, 5000, &during);
    after("epoll_pwait", result, errno, child);

    // Without the mask the signal stays pending: the wait times out.
    child = signal_soon();
    errno = 0;
    result = epoll_wait(epoll, &event, 1, 300);
    after("epoll_wait with SIGUSR1 blocked", result, errno, child);
    return 0;
}
