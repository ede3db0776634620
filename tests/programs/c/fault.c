/* Dies of the CPU fault named by argv[1]: null, write, exec, ud2, div0,
 * noncanonical or int3. Prints `faulting` first. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *kind = argc > 1 ? argv[1] : "null";
	puts("faulting");
	fflush(stdout);
	volatile uintptr_t low = 0x10;
	if (strcmp(kind, "null") == 0)
		return *(volatile int *)(low - 0x10);
	if (strcmp(kind, "write") == 0)
		*(volatile int *)low = 1;
	if (strcmp(kind, "exec") == 0)
		((void (*)(void))0x20)();
	if (strcmp(kind, "ud2") == 0)
		__asm__ volatile("ud2");
	if (strcmp(kind, "div0") == 0) {
		uint32_t quotient = 1, divisor = 0;
		__asm__ volatile("xor %%edx, %%edx; divl %1" : "+a"(quotient) : "r"(divisor) : "rdx");
		return (int)quotient;
	}
	if (strcmp(kind, "noncanonical") == 0)
		return *(volatile int *)0x8000000000000000ULL;
	if (strcmp(kind, "int3") == 0)
		__asm__ volatile("int3");
	return 0;
}
