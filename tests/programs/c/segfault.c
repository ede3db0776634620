/* Prints "about to fault", then reads through a NULL pointer. */
#include <stdio.h>

int main(void)
{
	puts("about to fault");
	fflush(stdout);
	/* Both the pointer and the pointee are volatile so the compiler can
	 * neither prove the pointer is NULL nor drop the load. */
	volatile int *volatile p = NULL;
	int value = *p;
	printf("read %d\n", value); /* never reached */
	return 0;
}
