// A program to debug in an isle: a breakpoint in report() finds answer == 42.
#include <stdio.h>

int answer;

__attribute__((noinline)) void report(void) {
    printf("answer %d\n", answer);
}

int main(int argc, char **argv) {
    (void)argv;
    answer = 40 + argc + 1;
    report();
    return 0;
}
