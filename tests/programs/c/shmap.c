/* MAP_SHARED file mappings, msync, mremap, shm_open and named semaphores.
 * Each mode prints what it saw; the isle tests compare with the host's
 * view of the files and with native runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static void die(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    exit(1);
}

static char *map(int fd, size_t len, int prot) {
    char *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    return p;
}

/* Writes through one mapping, reads through a second, syncs and unmaps:
 * the host then finds the writes in the file. */
static int write_mode(const char *path) {
    int fd = open(path, O_RDWR);
    if (fd < 0) die("open");
    char *a = map(fd, 2 * PAGE, PROT_READ | PROT_WRITE);
    char *b = map(fd, 2 * PAGE, PROT_READ);
    printf("before: %.8s\n", a);
    memcpy(a, "isle wrote page 0", 17);
    memcpy(a + PAGE, "isle wrote page 1", 17);
    printf("second mapping: %.17s / %.17s\n", b, b + PAGE);
    if (msync(a, 2 * PAGE, MS_SYNC) != 0) die("msync");
    char buf[17];
    if (pread(fd, buf, 17, PAGE) != 17) die("pread");
    printf("pread after msync: %.17s\n", buf);
    if (munmap(a, 2 * PAGE) != 0 || munmap(b, 2 * PAGE) != 0) die("munmap");
    /* The range is private memory again: a new anonymous mapping is zero. */
    char *c = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c == MAP_FAILED) die("mmap anonymous");
    printf("anonymous after: %d\n", c[0] | c[PAGE]);
    close(fd);
    return 0;
}

/* Maps the file, then waits (up to 20 s) for another process to change it. */
static int watch_mode(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open");
    volatile char *p = map(fd, PAGE, PROT_READ);
    close(fd);
    printf("mapped: %.7s\n", (char *)p);
    fflush(stdout);
    for (int i = 0; i < 20000; i++) {
        if (memcmp((char *)p, "host", 4) == 0) {
            printf("saw: %.10s\n", (char *)p);
            return 0;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    printf("never saw the host's write\n");
    return 1;
}

/* Linux's refusals: a shared writable mapping needs O_RDWR. */
static int readonly_mode(const char *path) {
    int fd = open(path, O_RDWR);
    printf("open O_RDWR: %s\n", fd < 0 ? strerror(errno) : "ok");
    if (fd >= 0) close(fd);
    fd = open(path, O_RDONLY);
    if (fd < 0) die("open");
    void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("shared writable: %s\n", p == MAP_FAILED ? strerror(errno) : "mapped");
    char *r = map(fd, PAGE, PROT_READ);
    printf("shared read-only: %.7s\n", r);
    printf("mprotect writable: %s\n",
           mprotect(r, PAGE, PROT_READ | PROT_WRITE) ? strerror(errno) : "ok");
    p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private writable: %s\n", p == MAP_FAILED ? strerror(errno) : "mapped");
    int wfd = open("/dev/null", O_WRONLY);
    p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, wfd, 0);
    printf("write-only fd: %s\n", p == MAP_FAILED ? strerror(errno) : "mapped");
    return 0;
}

/* mremap grows a shared mapping (moving it) and still shows the file. */
static int mremap_mode(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) die("open");
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size == 0) {
        if (pwrite(fd, "created", 7, 0) != 7 || ftruncate(fd, 2 * PAGE) != 0) die("grow");
    }
    char *a = map(fd, PAGE, PROT_READ | PROT_WRITE);
    /* Something right after it, so growing must move. */
    char *block = mmap(a + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *b = mremap(a, PAGE, 2 * PAGE, MREMAP_MAYMOVE);
    if (b == MAP_FAILED) die("mremap");
    memcpy(b + PAGE, "grown", 5);
    printf("page 0 after mremap: %.8s\n", b);
    char *c = mremap(b, 2 * PAGE, PAGE, 0);
    printf("shrunk in place: %s\n", c == b ? "yes" : "no");
    if (msync(c, PAGE, MS_SYNC) != 0) die("msync");
    if (block != MAP_FAILED) munmap(block, PAGE);
    printf("msync unaligned: %s\n", msync(c + 1, PAGE, MS_SYNC) ? strerror(errno) : "ok");
    printf("msync bad flags: %s\n",
           msync(c, PAGE, MS_SYNC | MS_ASYNC) ? strerror(errno) : "ok");
    munmap(c, PAGE);
    char buf[5];
    if (pread(fd, buf, 5, PAGE) != 5) die("pread");
    printf("page 1 in the file: %.5s\n", buf);
    return 0;
}

/* shm_open, ftruncate, two mappings, shm_unlink. */
static int shm_mode(const char *host_name) {
    int fd = shm_open("/atoll-shm-test", O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) die("shm_open");
    if (ftruncate(fd, PAGE) != 0) die("ftruncate");
    char *a = map(fd, PAGE, PROT_READ | PROT_WRITE);
    int again = shm_open("/atoll-shm-test", O_RDWR, 0);
    if (again < 0) die("shm_open again");
    char *b = map(again, PAGE, PROT_READ | PROT_WRITE);
    strcpy(a, "written through the first");
    printf("second sees: %s\n", b);
    strcpy(b, "and back through the second");
    printf("first sees: %s\n", a);
    struct stat st;
    printf("in /dev/shm: %s\n", stat("/dev/shm/atoll-shm-test", &st) ? strerror(errno) : "yes");
    if (shm_unlink("/atoll-shm-test") != 0) die("shm_unlink");
    printf("after unlink: %s\n", shm_open("/atoll-shm-test", O_RDWR, 0) < 0 ? strerror(errno) : "still there");
    printf("mapping survives: %.7s\n", a);
    munmap(a, PAGE);
    munmap(b, PAGE);
    if (host_name) {
        int host = shm_open(host_name, O_RDONLY, 0);
        printf("host's /dev/shm: %s\n", host < 0 ? strerror(errno) : "visible");
    }
    return 0;
}

static sem_t *ping, *pong;

static void *ponger(void *arg) {
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        if (sem_wait(ping) != 0) die("sem_wait ping");
        if (sem_post(pong) != 0) die("sem_post pong");
    }
    return NULL;
}

/* Named semaphores: one thread posts, the other waits, 1000 times. */
static int sem_mode(int threads) {
    ping = sem_open("/atoll-ping", O_CREAT | O_EXCL, 0600, 0);
    pong = sem_open("/atoll-pong", O_CREAT | O_EXCL, 0600, 0);
    if (ping == SEM_FAILED || pong == SEM_FAILED) die("sem_open");
    sem_t *same = sem_open("/atoll-ping", 0);
    printf("reopened is the same: %s\n", same == ping ? "yes" : "no");
    sem_post(ping);
    int value = -1;
    sem_getvalue(ping, &value);
    printf("value after post: %d\n", value);
    printf("trywait: %d\n", sem_trywait(ping));
    printf("trywait empty: %s\n", sem_trywait(ping) ? strerror(errno) : "got it");
    if (threads) {
        pthread_t thread;
        pthread_create(&thread, NULL, ponger, NULL);
        for (int i = 0; i < 1000; i++) {
            sem_post(ping);
            if (sem_wait(pong) != 0) die("sem_wait pong");
        }
        pthread_join(thread, NULL);
        printf("1000 round trips\n");
    }
    struct timespec past = {0, 0};
    printf("timedwait: %s\n", sem_timedwait(pong, &past) ? strerror(errno) : "got it");
    sem_close(same);
    sem_close(pong);
    printf("unlink: %d %d\n", sem_unlink("/atoll-ping"), sem_unlink("/atoll-pong"));
    printf("reopen after unlink: %s\n", sem_open("/atoll-ping", 0) == SEM_FAILED ? strerror(errno) : "open");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sem";
    const char *arg = argc > 2 ? argv[2] : NULL;
    if (!strcmp(mode, "write")) return write_mode(arg);
    if (!strcmp(mode, "watch")) return watch_mode(arg);
    if (!strcmp(mode, "readonly")) return readonly_mode(arg);
    if (!strcmp(mode, "mremap")) return mremap_mode(arg);
    if (!strcmp(mode, "shm")) return shm_mode(arg);
    if (!strcmp(mode, "sem")) return sem_mode(0);
    if (!strcmp(mode, "sem-threads")) return sem_mode(1);
    printf("unknown mode %s\n", mode);
    return 2;
}
