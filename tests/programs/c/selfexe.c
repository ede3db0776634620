/* Prints where /proc/self/exe points and what uname says. */
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void)
{
	char path[4096];
	ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (len < 0) {
		perror("readlink");
		return 1;
	}
	path[len] = 0;
	struct utsname name;
	if (uname(&name) != 0) {
		perror("uname");
		return 1;
	}
	printf("exe=%s\nsysname=%s\nrelease=%s\nmachine=%s\n", path, name.sysname, name.release, name.machine);
	return 0;
}
