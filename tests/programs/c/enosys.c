/* Calls a syscall the isle does not implement (442 = mount_setattr) and prints
 * the result. In the isle: "result=-1 errno=38" (ENOSYS). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	errno = 0;
	long r = syscall(442 /* mount_setattr */, 0, 0, 0, 0, 0, 0);
	int e = errno;
	printf("result=%ld errno=%d\n", r, r == -1 ? e : 0);
	return 0;
}
