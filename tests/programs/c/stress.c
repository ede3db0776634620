/* Contention stress: `stress [THREADS [OPS]]`.
 *
 * THREADS threads (default 64) hammer one mutex-protected counter with OPS
 * increments in total (default 1000000), then 4 producers move 100000 items
 * through a small condvar-guarded queue to 4 consumers. Prints only counts
 * and sums, so the output is the same on every run. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "stress: %s: %s\n", what, strerror(rc));
		exit(1);
	}
}

/* ---- one contended mutex ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
/* Written under the lock: a lost update or a torn critical section shows. */
static long inside;
static long overlaps;

struct hammer {
	pthread_t thread;
	long ops;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	for (long i = 0; i < h->ops; i++) {
		check(pthread_mutex_lock(&lock), "pthread_mutex_lock");
		if (inside++ != 0)
			overlaps++;
		counter++;
		inside--;
		check(pthread_mutex_unlock(&lock), "pthread_mutex_unlock");
	}
	return NULL;
}

/* ---- producer/consumer ---- */

enum { PRODUCERS = 4, CONSUMERS = 4, ITEMS = 100000, CAP = 16 };

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long ring[CAP];
static int head, len;

static void put(long item)
{
	check(pthread_mutex_lock(&qlock), "lock");
	while (len == CAP)
		check(pthread_cond_wait(&not_full, &qlock), "pthread_cond_wait");
	ring[(head + len) % CAP] = item;
	len++;
	check(pthread_cond_signal(&not_empty), "pthread_cond_signal");
	check(pthread_mutex_unlock(&qlock), "unlock");
}

static long get(void)
{
	check(pthread_mutex_lock(&qlock), "lock");
	while (len == 0)
		check(pthread_cond_wait(&not_empty, &qlock), "pthread_cond_wait");
	long item = ring[head];
	head = (head + 1) % CAP;
	len--;
	check(pthread_cond_signal(&not_full), "pthread_cond_signal");
	check(pthread_mutex_unlock(&qlock), "unlock");
	return item;
}

static void *producer(void *arg)
{
	long id = (long)(intptr_t)arg;
	/* Producer `id` sends id+1, id+1+P, id+1+2P, ...: together 1..ITEMS. */
	for (long item = id + 1; item <= ITEMS; item += PRODUCERS)
		put(item);
	return NULL;
}

struct tally {
	long sum, count, xor;
};

static void *consumer(void *arg)
{
	struct tally *t = arg;
	for (;;) {
		long item = get();
		if (item == 0)
			return NULL;
		t->sum += item;
		t->count++;
		t->xor ^= item;
	}
}

int main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 64;
	long ops = argc > 2 ? atol(argv[2]) : 1000000;
	if (threads < 1 || ops < 0) {
		fprintf(stderr, "usage: stress [THREADS [OPS]]\n");
		return 2;
	}

	struct hammer *hammers = calloc(threads, sizeof *hammers);
	for (long i = 0; i < threads; i++) {
		hammers[i].ops = ops / threads + (i < ops % threads);
		check(pthread_create(&hammers[i].thread, NULL, hammer, &hammers[i]), "pthread_create");
	}
	for (long i = 0; i < threads; i++)
		check(pthread_join(hammers[i].thread, NULL), "pthread_join");
	free(hammers);
	printf("mutex: %ld threads, counter %ld of %ld, overlaps %ld\n", threads, counter, ops,
	       overlaps);

	pthread_t producers[PRODUCERS], consumers[CONSUMERS];
	struct tally tallies[CONSUMERS];
	memset(tallies, 0, sizeof tallies);
	for (int i = 0; i < CONSUMERS; i++)
		check(pthread_create(&consumers[i], NULL, consumer, &tallies[i]), "pthread_create");
	for (int i = 0; i < PRODUCERS; i++)
		check(pthread_create(&producers[i], NULL, producer, (void *)(intptr_t)i),
		      "pthread_create");
	for (int i = 0; i < PRODUCERS; i++)
		check(pthread_join(producers[i], NULL), "pthread_join");
	for (int i = 0; i < CONSUMERS; i++)
		put(0); /* one stop marker each */
	struct tally total = { 0, 0, 0 };
	for (int i = 0; i < CONSUMERS; i++) {
		check(pthread_join(consumers[i], NULL), "pthread_join");
		total.sum += tallies[i].sum;
		total.count += tallies[i].count;
		total.xor ^= tallies[i].xor;
	}
	long expected_xor = 0;
	for (long item = 1; item <= ITEMS; item++)
		expected_xor ^= item;
	printf("queue: %d producers, %d consumers, %ld items, sum %ld (expected %ld), xor %s\n",
	       PRODUCERS, CONSUMERS, total.count, total.sum, (long)ITEMS * (ITEMS + 1) / 2,
	       total.xor == expected_xor ? "ok" : "wrong");
	return 0;
}
