// dlprobe LIBRARY SYMBOL [X]: loads LIBRARY with dlopen, finds SYMBOL, a
// double(double) function, and prints SYMBOL(X); then the same library
// again (the same handle), and a library that doesn't exist (dlerror's
// message names it). Code mapped by the dynamic loader at run time, as
// Python's extension modules are.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dlprobe LIBRARY SYMBOL [X]\n");
        return 2;
    }
    double x = argc > 3 ? atof(argv[3]) : 0.5;
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        printf("dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    double (*function)(double) = (double (*)(double))dlsym(library, argv[2]);
    if (!function) {
        printf("dlsym %s: %s\n", argv[2], dlerror());
        return 1;
    }
    printf("%s(%g) = %.12f\n", argv[2], x, function(x));
    void *again = dlopen(argv[1], RTLD_NOW);
    printf("same handle: %s\n", again == library ? "yes" : "no");
    // A call through code the loader mapped (its syscalls): getpid from
    // libc found by dlsym.
    pid_t (*get_pid)(void) = (pid_t (*)(void))dlsym(RTLD_DEFAULT, "getpid");
    printf("getpid through dlsym: %s\n", get_pid && get_pid() == getpid() ? "same" : "different");
    void *missing = dlopen("libatoll-no-such-library.so.9", RTLD_NOW);
    const char *error = dlerror();
    printf("missing: %s, %s\n", missing ? "loaded" : "not loaded",
           error && strstr(error, "libatoll-no-such-library.so.9") ? "named" : "unnamed");
    dlclose(again);
    dlclose(library);
    return 0;
}
