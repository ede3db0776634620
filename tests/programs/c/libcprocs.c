// libcprocs: the process calls of libc that libc-test's functional tests
// try (popen, posix_spawn, vfork, execle's environment, daemon, stdio
// flushed at exit, a thread's key destructors at pthread_exit), each
// checked as those tests check it. Prints only what is the same run to
// run (and natively).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report.h"

extern char **environ;

static pthread_key_t key;
static int destructed;

static void destructor(void *value) {
    destructed = value == (void *)&key;
}

static void *set_and_exit(void *unused) {
    (void)unused;
    pthread_setspecific(key, &key);
    pthread_exit(NULL);
}

int main(void) {
    (void)report;
    setvbuf(stdout, NULL, _IONBF, 0);
    FILE *stream = popen("echo through popen; exit 3", "r");
    char line[128] = "";
    if (!stream || !fgets(line, sizeof line, stream)) {
        printf("popen: %s\n", errno_name(errno));
        return 1;
    }
    int closed = pclose(stream);
    printf("popen read: %s", line);
    printf("pclose: exited %d\n", WIFEXITED(closed) ? WEXITSTATUS(closed) : -1);

    stream = popen("cat > libcprocs.out", "w");
    fputs("written through popen\n", stream);
    printf("pclose of a writer: %d\n", pclose(stream));
    int file = open("libcprocs.out", O_RDONLY);
    ssize_t got = read(file, line, sizeof line - 1);
    line[got > 0 ? got : 0] = 0;
    close(file);
    unlink("libcprocs.out");
    printf("the writer's output: %s", line);

    pid_t pid;
    char *echo_argv[] = {"sh", "-c", "echo spawned; exit 4", NULL};
    int spawned = posix_spawnp(&pid, "sh", NULL, NULL, echo_argv, environ);
    printf("posix_spawnp: %d, exited %d\n", spawned, spawned == 0 ? exit_status_of(pid) : -1);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    spawned = posix_spawnp(&pid, "sh", &actions, NULL, echo_argv, environ);
    printf("posix_spawnp with stdout on /dev/null: %d, exited %d\n", spawned,
           spawned == 0 ? exit_status_of(pid) : -1);
    posix_spawn_file_actions_destroy(&actions);

    int shared = 1;
    pid = vfork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 5", (char *)NULL);
        _exit(127);
    }
    printf("vfork then exec: exited %d, parent's memory %d\n", exit_status_of(pid), shared);

    // Written before the child's lines, whichever process runs first.
    printf("execle's environment:\n");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execle("/bin/sh", "sh", "-c", "env | sort", (char *)NULL,
               (char *[]){"ONLY=this", "AND=that", NULL});
        _exit(127);
    }
    printf("execle: exited %d\n", exit_status_of(pid));

    pid = fork();
    if (pid == 0) {
        // exit flushes what stdio holds.
        setvbuf(stdout, NULL, _IOFBF, 4096);
        printf("  written before exit, flushed by it");
        exit(0);
    }
    int flushed = exit_status_of(pid);
    printf("\nexit flushed stdio: exited %d\n", flushed);

    // daemon(0, 0) in a child: it forks again, and the child of that goes
    // on in a session of its own, in /, with stdio on /dev/null.
    int reports[2];
    if (pipe(reports) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        close(reports[0]);
        if (daemon(0, 0) != 0)
            _exit(1);
        char cwd[64] = "";
        struct stat in;
        int null_in = fstat(0, &in) == 0 && S_ISCHR(in.st_mode) && in.st_rdev == makedev(1, 3);
        char text[160];
        int len = snprintf(text, sizeof text,
                           "the daemon: leads its session %d, cwd %s, stdin /dev/null %d\n",
                           getsid(0) == getpid(), getcwd(cwd, sizeof cwd) ? cwd : "?", null_in);
        write(reports[1], text, len);
        _exit(0);
    }
    close(reports[1]);
    printf("daemon's caller: exited %d\n", exit_status_of(pid));
    got = read(reports[0], line, sizeof line - 1);
    line[got > 0 ? got : 0] = 0;
    printf("%s", line);

    pthread_key_create(&key, destructor);
    pthread_t thread;
    pthread_create(&thread, NULL, set_and_exit, NULL);
    pthread_join(thread, NULL);
    printf("pthread_exit ran the key's destructor: %d\n", destructed);
    return 0;
}
