/* Deliberately kills the guest kernel: finds the IDT with `sidt`, zeroes its
 * first 4096 bytes, then faults. Inside the isle the next exception cannot be
 * delivered and the vCPU triple-faults. Only meant to run in the isle (on
 * native Linux, UMIP either blocks sidt or reports an unmapped address). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct __attribute__((packed)) dtr {
	uint16_t limit;
	uint64_t base;
};

int main(void)
{
	struct dtr idtr = { 0, 0 };
	__asm__ volatile("sidt %0" : "=m"(idtr) : : "memory");
	printf("idt at 0x%llx\n", (unsigned long long)idtr.base);
	fflush(stdout);

	memset((void *)(uintptr_t)idtr.base, 0, 4096);

	volatile int *volatile p = NULL;
	int value = *p;
	printf("still alive (%d)\n", value); /* never reached */
	return 0;
}
