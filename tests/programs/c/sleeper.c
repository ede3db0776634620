/* sleeper [SECONDS] [TEXT]: prints "started TEXT", sleeps, prints "done TEXT".
 * An isle that stays up a while, for the resource-manager tests. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.0;
	const char *text = argc > 2 ? argv[2] : "";
	printf("started %s\n", text);
	fflush(stdout);
	struct timespec pause = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&pause, NULL);
	printf("done %s\n", text);
	return 0;
}
