// mapsprobe: what a program reads of itself in /proc/self/maps and
// /proc/self/fd/: its stack, its code, its libc, its heap, a file it maps
// and reprotects, anonymous memory, pthread_getattr_np's answer (which
// glibc takes from the maps), and code copied from its own file and made
// executable by mprotect, which must still run. Prints only what is the
// same run to run (and natively): protections, offsets, base names.
// Works in the current directory (it writes mapsprobe.data there).
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "report.h"

struct line {
    unsigned long start, end, offset;
    char perms[8];
    char name[512];
};

static struct line lines[4096];
static int count;

static void read_maps(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps) {
        printf("open /proc/self/maps: %s\n", errno_name(errno));
        exit(1);
    }
    char text[1024];
    count = 0;
    while (fgets(text, sizeof text, maps) && count < 4096) {
        struct line *line = &lines[count];
        unsigned major, minor;
        unsigned long inode;
        int used = 0;
        if (sscanf(text, "%lx-%lx %7s %lx %x:%x %lu %n", &line->start, &line->end, line->perms,
                   &line->offset, &major, &minor, &inode, &used) < 7) {
            printf("unparsed line: %s", text);
            exit(1);
        }
        char *name = text + used;
        name[strcspn(name, "\n")] = 0;
        while (*name == ' ')
            name++;
        snprintf(line->name, sizeof line->name, "%s", name);
        count++;
    }
    fclose(maps);
}

static struct line *holding(const void *pointer) {
    unsigned long address = (unsigned long)pointer;
    for (int i = 0; i < count; i++)
        if (lines[i].start <= address && address < lines[i].end)
            return &lines[i];
    return NULL;
}

static const char *base(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void show(const char *what, const void *pointer) {
    struct line *line = holding(pointer);
    if (!line) {
        printf("%s: not in the maps\n", what);
        return;
    }
    printf("%s: %s %s\n", what, line->perms, line->name[0] ? base(line->name) : "(anonymous)");
}

__attribute__((noinline)) static long raw_getpid(void) {
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"((long)SYS_getpid) : "rcx", "r11", "memory");
    return result;
}

static int stack_holds(pthread_t thread, const void *local) {
    pthread_attr_t attributes;
    void *address;
    size_t size;
    if (pthread_getattr_np(thread, &attributes) != 0)
        return 0;
    pthread_attr_getstack(&attributes, &address, &size);
    pthread_attr_destroy(&attributes);
    return (const char *)address <= (const char *)local &&
           (const char *)local < (const char *)address + size;
}

static void *thread_main(void *unused) {
    int local = 0;
    (void)unused;
    printf("a thread's stack holds its locals: %s\n",
           stack_holds(pthread_self(), &local) ? "yes" : "no");
    return NULL;
}

static int lists(const char *directory, const char *name) {
    DIR *listing = opendir(directory);
    if (!listing)
        return 0;
    int found = 0;
    struct dirent *entry;
    while ((entry = readdir(listing)))
        found |= strcmp(entry->d_name, name) == 0;
    closedir(listing);
    return found;
}

int main(void) {
    (void)report;
    int local = 0;
    long page = sysconf(_SC_PAGESIZE);
    read_maps();
    int sorted = 1;
    for (int i = 1; i < count; i++)
        sorted &= lines[i - 1].end <= lines[i].start;
    printf("sorted and disjoint: %s\n", sorted ? "yes" : "no");
    show("stack", &local);
    show("libc's getpid", (void *)getpid);
    struct line *own = holding((void *)raw_getpid);
    char exe[512] = {0};
    if (readlink("/proc/self/exe", exe, sizeof exe - 1) < 0)
        printf("readlink /proc/self/exe: %s\n", errno_name(errno));
    printf("own code: %s, named as /proc/self/exe: %s\n", own ? own->perms : "none",
           own && strcmp(own->name, exe) == 0 ? "yes" : "no");

    long heap = syscall(SYS_brk, 0);
    syscall(SYS_brk, heap + 2 * page);
    read_maps();
    show("brk's memory", (void *)heap);

    void *anonymous = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    read_maps();
    show("anonymous memory", anonymous);
    printf("main thread's stack holds its locals: %s\n",
           stack_holds(pthread_self(), &local) ? "yes" : "no");
    pthread_t thread;
    pthread_create(&thread, NULL, thread_main, NULL);
    pthread_join(thread, NULL);

    // A file: mapped read-only, its middle page then PROT_NONE.
    int data = open("mapsprobe.data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char *bytes = calloc(3, page);
    if (data < 0 || write(data, bytes, 3 * page) != 3 * page) {
        printf("mapsprobe.data: %s\n", errno_name(errno));
        return 1;
    }
    char *file = mmap(NULL, 3 * page, PROT_READ, MAP_PRIVATE, data, 0);
    mprotect(file + page, page, PROT_NONE);
    char *shared = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, data, page);
    read_maps();
    for (int i = 0; i < 3; i++) {
        struct line *line = holding(file + i * page);
        printf("file page %d: %s offset %lx %s\n", i, line ? line->perms : "none",
               line ? line->offset + (unsigned long)(file + i * page) - line->start : 0,
               line ? base(line->name) : "");
    }
    show("shared file page", shared);
    munmap(file, 3 * page);
    read_maps();
    printf("after munmap: %s\n", holding(file + page) ? "still shown" : "gone");

    // The fds, as /proc/self/fd/ lists them and its links name them.
    char link[512] = {0}, where[512], real[512];
    snprintf(where, sizeof where, "/proc/self/fd/%d", data);
    readlink(where, link, sizeof link - 1);
    printf("fd link names the file: %s\n",
           realpath("mapsprobe.data", real) && strcmp(link, real) == 0 ? "yes" : "no");
    char fd_name[16];
    snprintf(fd_name, sizeof fd_name, "%d", data);
    printf("/proc/self/fd lists 0, 1, 2 and the file: %s\n",
           lists("/proc/self/fd", "0") && lists("/proc/self/fd", "2") &&
                   lists("/proc/self/fd", fd_name) ? "yes" : "no");
    printf("/proc/self lists maps, status, fd and exe: %s\n",
           lists("/proc/self", "maps") && lists("/proc/self", "status") &&
                   lists("/proc/self", "fd") && lists("/proc/self", "exe") ? "yes" : "no");

    // Code copied from the program's own file, made executable afterwards.
    read_maps();
    own = holding((void *)raw_getpid);
    int program = own ? open(own->name, O_RDONLY) : -1;
    if (program < 0) {
        printf("open own file: %s\n", errno_name(errno));
        return 1;
    }
    unsigned long offset = (unsigned long)raw_getpid - own->start + own->offset;
    unsigned long start = offset & ~(unsigned long)(page - 1);
    char *copy = mmap(NULL, 2 * page, PROT_READ, MAP_PRIVATE, program, start);
    if (copy == MAP_FAILED || mprotect(copy, 2 * page, PROT_READ | PROT_EXEC) != 0) {
        printf("copy own code: %s\n", errno_name(errno));
        return 1;
    }
    long (*copied)(void) = (long (*)(void))(copy + (offset - start));
    printf("copied code's getpid: %s\n", copied() == getpid() ? "same" : "different");
    read_maps();
    show("copied code", copy);
    unlink("mapsprobe.data");
    return 0;
}
