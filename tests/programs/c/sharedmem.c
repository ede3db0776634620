// sharedmem: memory and futexes shared between processes, as Linux gives
// them to a fork: MAP_SHARED anonymous memory (and MAP_PRIVATE's own
// copy), a process-shared semaphore ping-pong, a process-shared mutex
// both sides take, shm_open memory, a named semaphore, a semaphore wait
// that times out. Prints only what is the same run to run (and natively).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

#define ROUNDS 200
#define ADDS 20000

struct shared {
    sem_t ping, pong;
    pthread_mutex_t lock;
    long counter;
    char note[64];
};

static int waited_status(pid_t child) {
    int status = 0;
    if (waitpid(child, &status, 0) != child)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);

    struct shared *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *own = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || own == MAP_FAILED) {
        printf("mmap: %s\n", errno_name(errno));
        return 1;
    }
    strcpy(own, "parent's");
    pid_t child = fork();
    if (child == 0) {
        strcpy(shared->note, "written by the child");
        strcpy(own, "child's");
        _exit(0);
    }
    int status = waited_status(child);
    printf("MAP_SHARED anonymous: %s (status %d); MAP_PRIVATE: %s\n", shared->note, status, own);

    // Ping-pong: each side waits for the other's post.
    sem_init(&shared->ping, 1, 0);
    sem_init(&shared->pong, 1, 0);
    child = fork();
    if (child == 0) {
        for (int round = 0; round < ROUNDS; round++) {
            while (sem_wait(&shared->ping) != 0 && errno == EINTR) {
            }
            sem_post(&shared->pong);
        }
        _exit(7);
    }
    int rounds = 0;
    for (int round = 0; round < ROUNDS; round++) {
        sem_post(&shared->ping);
        while (sem_wait(&shared->pong) != 0 && errno == EINTR) {
        }
        rounds++;
    }
    status = waited_status(child);
    printf("semaphore ping-pong: %d rounds, child status %d\n", rounds, status);

    // A process-shared mutex: both add under it, none is lost.
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&shared->lock, &attributes);
    shared->counter = 0;
    child = fork();
    for (int add = 0; add < ADDS; add++) {
        pthread_mutex_lock(&shared->lock);
        long seen = shared->counter;
        if (add % 1000 == 0)
            sched_yield();
        shared->counter = seen + 1;
        pthread_mutex_unlock(&shared->lock);
    }
    if (child == 0)
        _exit(0);
    status = waited_status(child);
    printf("process-shared mutex: counter %ld of %d, child status %d\n", shared->counter,
           2 * ADDS, status);

    // shm_open: a named object the child maps on its own.
    char name[64];
    snprintf(name, sizeof name, "/atoll-sharedmem-%d", (int)getpid());
    int object = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (object < 0 || ftruncate(object, 4096) != 0) {
        printf("shm_open: %s\n", errno_name(errno));
        return 1;
    }
    char *named = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, object, 0);
    child = fork();
    if (child == 0) {
        int again = shm_open(name, O_RDWR, 0);
        char *mine = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0);
        strcpy(mine, "through shm_open");
        _exit(mine == MAP_FAILED ? 1 : 0);
    }
    status = waited_status(child);
    printf("shm_open: %s (status %d)\n", named, status);
    shm_unlink(name);

    // A named semaphore, opened again by name in the child.
    snprintf(name, sizeof name, "/atoll-sharedmem-sem-%d", (int)getpid());
    sem_t *named_sem = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    child = fork();
    if (child == 0) {
        sem_t *again = sem_open(name, 0);
        struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
        _exit(again == SEM_FAILED || sem_post(again) != 0 ? 1 : 0);
    }
    int got = sem_wait(named_sem);
    status = waited_status(child);
    printf("named semaphore: sem_wait %d, child status %d\n", got, status);
    sem_unlink(name);

    // A wait nobody ends: it times out.
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 30 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    errno = 0;
    got = sem_timedwait(&shared->ping, &deadline);
    printf("sem_timedwait with no post: %d %s\n", got, errno_name(errno));
    return 0;
}
