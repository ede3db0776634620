// signalfd: blocked signals read from an fd, and its readiness seen by
// poll and epoll, each case printing what it saw, to compare with a
// native run.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

static pthread_t main_thread;
static void *kill_process_later(void *signo) {
    struct timespec pause_time = {0, 20 * 1000 * 1000};
    nanosleep(&pause_time, NULL);
    kill(getpid(), (int)(intptr_t)signo);
    return NULL;
}

static void later(int signo) {
    pthread_t sender;
    pthread_create(&sender, NULL, kill_process_later, (void *)(intptr_t)signo);
    pthread_detach(sender);
}

static void show(const char *what, ssize_t got, const struct signalfd_siginfo *info) {
    if (got < 0)
        printf("%s: -1 %s\n", what, strerror(errno));
    else
        printf("%s: %zd bytes, signo %u code %d pid_is_ours %d int %d\n", what, got,
               info->ssi_signo, info->ssi_code, info->ssi_pid == (uint32_t)getpid(),
               info->ssi_int);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    main_thread = pthread_self();
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        perror("signalfd");
        return 1;
    }
    struct signalfd_siginfo info;
    memset(&info, 0, sizeof info);
    show("read with nothing pending", read(fd, &info, sizeof info), &info);
    struct pollfd look = {.fd = fd, .events = POLLIN};
    printf("poll with nothing pending: %d\n", poll(&look, 1, 0));

    raise(SIGUSR1);
    look.revents = 0;
    int ready = poll(&look, 1, 0);
    printf("poll with SIGUSR1 pending: %d revents POLLIN=%d\n", ready, !!(look.revents & POLLIN));
    show("read", read(fd, &info, sizeof info), &info);
    printf("poll after the read: %d\n", poll(&look, 1, 0));

    union sigval value = {.sival_int = 77};
    sigqueue(getpid(), SIGRTMIN, value);
    sigqueue(getpid(), SIGRTMIN, value);
    struct signalfd_siginfo two[3];
    ssize_t got = read(fd, two, sizeof two);
    printf("read of two queued: %zd bytes, ints %d %d, code_is_queue %d\n", got, two[0].ssi_int,
           two[1].ssi_int, two[0].ssi_code == SI_QUEUE);

    char small[64];
    got = read(fd, small, sizeof small);
    printf("read into 64 bytes: %zd %s\n", got, strerror(errno));

    // Blocking read: a signal sent later by another thread ends it.
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    later(SIGUSR1);
    show("blocking read", read(fd, &info, sizeof info), &info);

    // epoll sees it become readable.
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.u32 = 5};
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
    later(SIGRTMIN);
    struct epoll_event out;
    int events = epoll_wait(epoll, &out, 1, 5000);
    printf("epoll_wait: %d data %u\n", events, out.data.u32);
    show("read after epoll", read(fd, &info, sizeof info), &info);
    close(epoll);

    // A dup reads the same signals; a new mask takes effect.
    int copy = dup(fd);
    sigset_t only_rt;
    sigemptyset(&only_rt);
    sigaddset(&only_rt, SIGRTMIN);
    printf("signalfd on the fd again: same fd=%d\n", signalfd(fd, &only_rt, 0) == fd);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    raise(SIGUSR1);
    show("SIGUSR1 out of the new mask", read(fd, &info, sizeof info), &info);
    sigset_t pending;
    sigpending(&pending);
    printf("SIGUSR1 still pending=%d\n", sigismember(&pending, SIGUSR1));
    struct timespec none = {0, 0};
    sigtimedwait(&mask, NULL, &none);
    raise(SIGRTMIN);
    show("read through the dup", read(copy, &info, sizeof info), &info);
    close(copy);

    int result = signalfd(-1, &mask, 0x1);
    printf("signalfd with bad flags: %d %s\n", result, strerror(errno));
    result = signalfd(0, &mask, 0);
    printf("signalfd on a non-signalfd: %d %s\n", result, strerror(errno));
    close(fd);
    return 0;
}
