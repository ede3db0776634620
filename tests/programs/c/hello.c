/* Prints "Hello, ARGS" (argv[1..] joined by spaces, or "world"), then for
 * every name in the comma-separated $SHOW_ENV prints "NAME=value" or
 * "NAME unset". */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	fputs("Hello, ", stdout);
	if (argc < 2) {
		fputs("world", stdout);
	} else {
		for (int i = 1; i < argc; i++) {
			if (i > 1)
				fputc(' ', stdout);
			fputs(argv[i], stdout);
		}
	}
	fputc('\n', stdout);

	const char *show = getenv("SHOW_ENV");
	if (show) {
		const char *p = show;
		while (*p) {
			size_t len = strcspn(p, ",");
			if (len > 0) {
				char *name = strndup(p, len);
				if (!name)
					return 1;
				const char *value = getenv(name);
				if (value)
					printf("%s=%s\n", name, value);
				else
					printf("%s unset\n", name);
				free(name);
			}
			p += len;
			if (*p == ',')
				p++;
		}
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
