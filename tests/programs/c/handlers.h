/* Installing a signal handler, for the probes that test signals. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `action` for `signo`, with SA_SIGINFO and `flags`; the probe ends if
 * sigaction fails. */
static inline void install(int signo, void (*action)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = action;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

/* Starts `body`, which stores its tid in `*tid` first; returns once it has. */
static inline pthread_t start_thread_with_tid(void *(*body)(void *), volatile int *tid) {
    *tid = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, body, NULL);
    while (*tid == 0)
        sched_yield();
    return thread;
}

/* In main, with `const char *only` the case asked for ("" for all): runs
 * case `name` if it is asked for. */
#define CASE(name)                                                                                 \
    if (!*only || strcmp(only, #name) == 0)                                                        \
    name()
