/* Single-threaded futex semantics, as Linux gives them, plus pthread_once
 * (glibc's pthread_once always calls futex wake). Prints one line per check. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* From <linux/futex.h>, which musl-gcc doesn't see. */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129
#define FUTEX_CMP_REQUEUE_PRIVATE 132
#define FUTEX_WAKE_OP_PRIVATE 133
#define FUTEX_OP_ADD 1
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	(((op & 0xf) << 28) | ((cmp & 0xf) << 24) | ((oparg & 0xfff) << 12) | (cmparg & 0xfff))

static long futex(uint32_t *uaddr, int op, uint32_t val, const struct timespec *timeout,
		  uint32_t *uaddr2, uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static int once_runs;
static void once_body(void) { once_runs++; }

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uint32_t word = 7, other = 5;

	long r = futex(&word, FUTEX_WAIT_PRIVATE, 8, NULL, NULL, 0);
	printf("wait on changed value: %ld errno=%d\n", r, r < 0 ? errno : 0);

	struct timespec timeout = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	long long before = monotonic_ms();
	r = futex(&word, FUTEX_WAIT_PRIVATE, 7, &timeout, NULL, 0);
	long long waited = monotonic_ms() - before;
	/* Early is wrong; late is only a loaded machine. */
	printf("wait with timeout: %ld errno=%d waited_50ms=%d\n", r, r < 0 ? errno : 0,
	       waited >= 50);

	r = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	printf("wake: %ld\n", r);

	/* oparg 3, op ADD, cmp EQ 5: *other += 3 */
	r = futex(&word, FUTEX_WAKE_OP_PRIVATE, 1, (const struct timespec *)1, &other,
		  FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 5));
	printf("wake_op: %ld other=%u\n", r, other);

	r = futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, (const struct timespec *)1, &other, 6);
	printf("cmp_requeue on changed value: %ld errno=%d\n", r, r < 0 ? errno : 0);

	r = futex((uint32_t *)((char *)&word + 1), FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	printf("misaligned: %ld errno=%d\n", r, r < 0 ? errno : 0);

	pthread_once(&once, once_body);
	pthread_once(&once, once_body);
	printf("pthread_once ran %d time(s)\n", once_runs);
	return 0;
}
