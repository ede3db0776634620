/* Bytes 0f 05 that are not syscall instructions: a table of data inside
 * .text, and immediates of longer instructions. Syscall rewriting must
 * leave them alone: the program checksums them and runs the instructions,
 * printing what it finds, so a run in an isle can be compared with a
 * native one. It also makes real syscalls next to them. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Data in the text section, shaped like `mov $39,%eax; syscall`. */
__asm__(".text\n"
	".globl fake_sites\n"
	"fake_sites:\n"
	".byte 0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05\n"
	".byte 0x0f, 0x05, 0x0f, 0x05, 0xc3, 0x90\n"
	".globl fake_sites_end\n"
	"fake_sites_end:\n");
extern const unsigned char fake_sites[], fake_sites_end[];

/* A real syscall no rewriting pattern fits: a jump lands on it and only a
 * `ret` follows, so it keeps trapping (and --syscall-summary lists it). */
__asm__(".text\n"
	".globl unfit_getpid\n"
	".type unfit_getpid, @function\n"
	"unfit_getpid:\n"
	"mov $39, %eax\n"
	"jmp 1f\n"
	"1: syscall\n"
	"ret\n"
	".size unfit_getpid, .-unfit_getpid\n");
long unfit_getpid(void);

/* 0f 05 inside the immediates of real instructions, then a real syscall. */
static long embedded(void)
{
	long out;
	__asm__ volatile("mov $0x050f050f, %%eax\n\t"
			 "movabs $0x050f0000050f, %%rdx\n\t"
			 "add %%rdx, %%rax\n\t"
			 "mov %%rax, %0\n\t"
			 : "=r"(out)
			 :
			 : "rax", "rdx");
	return out;
}

static uint32_t checksum(const unsigned char *from, const unsigned char *to)
{
	uint32_t sum = 0;
	for (const unsigned char *at = from; at < to; at++)
		sum = sum * 31 + *at;
	return sum;
}

int main(void)
{
	size_t len = (size_t)(fake_sites_end - fake_sites);
	printf("data in text: %zu bytes, checksum %08x\n", len, checksum(fake_sites, fake_sites_end));
	printf("first bytes: %02x %02x %02x\n", fake_sites[0], fake_sites[5], fake_sites[6]);
	printf("embedded immediates: %lx\n", embedded());
	long pid = syscall(SYS_getpid);
	printf("a real syscall beside them: %s\n", pid > 0 ? "ok" : "failed");
	printf("a syscall no pattern fits: %s\n", unfit_getpid() == pid ? "ok" : "failed");
	static const unsigned char expected[] = {0xb8, 0x27, 0, 0, 0, 0x0f, 0x05,
						 0x0f, 0x05, 0x0f, 0x05, 0xc3, 0x90};
	printf("table intact: %s\n", memcmp(fake_sites, expected, sizeof expected) ? "no" : "yes");
	return 0;
}
