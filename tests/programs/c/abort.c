/* Prints `aborting`, then calls abort(): the process dies of SIGABRT. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
	puts("aborting");
	fflush(stdout);
	abort();
}
