/* POSIX threads, one check per line, with output that is the same on every
 * run: create/join with return values, mutexes, condition variables (a
 * bounded queue), semaphores, rwlocks, thread-specific data with
 * destructors, pthread_once, detached threads and barriers. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "threads: %s: %s\n", what, strerror(rc));
		exit(1);
	}
}

static void check_errno(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "threads: %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

/* ---- create / join with return values ---- */

static void *square(void *arg)
{
	uintptr_t n = (uintptr_t)arg;
	return (void *)(n * n);
}

static void create_join(void)
{
	enum { N = 8 };
	pthread_t threads[N];
	for (uintptr_t i = 0; i < N; i++)
		check(pthread_create(&threads[i], NULL, square, (void *)(i + 1)), "pthread_create");
	uintptr_t sum = 0;
	for (int i = 0; i < N; i++) {
		void *result;
		check(pthread_join(threads[i], &result), "pthread_join");
		sum += (uintptr_t)result;
	}
	printf("create_join: %d threads, sum of squares %lu\n", N, (unsigned long)sum);
}

/* ---- mutex ---- */

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *add_many(void *arg)
{
	long times = (long)(intptr_t)arg;
	for (long i = 0; i < times; i++) {
		check(pthread_mutex_lock(&counter_lock), "pthread_mutex_lock");
		counter++;
		check(pthread_mutex_unlock(&counter_lock), "pthread_mutex_unlock");
	}
	return NULL;
}

static void *trylock_body(void *arg)
{
	return (void *)(intptr_t)pthread_mutex_trylock(arg);
}

static void mutex(void)
{
	enum { N = 4, TIMES = 25000 };
	pthread_t threads[N];
	for (int i = 0; i < N; i++)
		check(pthread_create(&threads[i], NULL, add_many, (void *)(intptr_t)TIMES),
		      "pthread_create");
	for (int i = 0; i < N; i++)
		check(pthread_join(threads[i], NULL), "pthread_join");
	int busy = pthread_mutex_trylock(&counter_lock);
	int busy_again = -1;
	if (busy == 0) {
		pthread_t other;
		/* trylock from another thread sees it held. */
		check(pthread_create(&other, NULL, trylock_body, &counter_lock), "pthread_create");
		void *result;
		check(pthread_join(other, &result), "pthread_join");
		busy_again = (int)(intptr_t)result;
		check(pthread_mutex_unlock(&counter_lock), "pthread_mutex_unlock");
	}
	printf("mutex: counter %ld, trylock free %d, trylock held %s\n", counter, busy,
	       busy_again == EBUSY ? "EBUSY" : "??");
}

/* ---- condition variables: a bounded queue ---- */

#define QUEUE_CAP 4
struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	long items[QUEUE_CAP];
	int head, len;
};

static struct queue queue = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.not_empty = PTHREAD_COND_INITIALIZER,
	.not_full = PTHREAD_COND_INITIALIZER,
};
static int queue_max_len;

static void queue_put(struct queue *q, long item)
{
	check(pthread_mutex_lock(&q->lock), "lock");
	while (q->len == QUEUE_CAP)
		check(pthread_cond_wait(&q->not_full, &q->lock), "pthread_cond_wait");
	q->items[(q->head + q->len) % QUEUE_CAP] = item;
	q->len++;
	if (q->len > queue_max_len)
		queue_max_len = q->len;
	check(pthread_cond_signal(&q->not_empty), "pthread_cond_signal");
	check(pthread_mutex_unlock(&q->lock), "unlock");
}

static long queue_get(struct queue *q)
{
	check(pthread_mutex_lock(&q->lock), "lock");
	while (q->len == 0)
		check(pthread_cond_wait(&q->not_empty, &q->lock), "pthread_cond_wait");
	long item = q->items[q->head];
	q->head = (q->head + 1) % QUEUE_CAP;
	q->len--;
	check(pthread_cond_signal(&q->not_full), "pthread_cond_signal");
	check(pthread_mutex_unlock(&q->lock), "unlock");
	return item;
}

enum { PRODUCERS = 3, CONSUMERS = 2, PER_PRODUCER = 2000 };

static void *producer(void *arg)
{
	long base = (long)(intptr_t)arg * PER_PRODUCER;
	for (long i = 1; i <= PER_PRODUCER; i++)
		queue_put(&queue, base + i);
	return NULL;
}

static void *consumer(void *arg)
{
	(void)arg;
	long sum = 0, count = 0;
	for (;;) {
		long item = queue_get(&queue);
		if (item < 0)
			break;
		sum += item;
		count++;
	}
	long *result = malloc(2 * sizeof *result);
	result[0] = sum;
	result[1] = count;
	return result;
}

static void condvar_queue(void)
{
	pthread_t producers[PRODUCERS], consumers[CONSUMERS];
	for (int i = 0; i < CONSUMERS; i++)
		check(pthread_create(&consumers[i], NULL, consumer, NULL), "pthread_create");
	for (int i = 0; i < PRODUCERS; i++)
		check(pthread_create(&producers[i], NULL, producer, (void *)(intptr_t)i),
		      "pthread_create");
	for (int i = 0; i < PRODUCERS; i++)
		check(pthread_join(producers[i], NULL), "pthread_join");
	for (int i = 0; i < CONSUMERS; i++)
		queue_put(&queue, -1);
	long sum = 0, count = 0;
	for (int i = 0; i < CONSUMERS; i++) {
		long *result;
		check(pthread_join(consumers[i], (void **)&result), "pthread_join");
		sum += result[0];
		count += result[1];
		free(result);
	}
	long n = (long)PRODUCERS * PER_PRODUCER;
	printf("condvar_queue: %ld items, sum %ld (expected %ld), max depth within %d: %s\n",
	       count, sum, n * (n + 1) / 2, QUEUE_CAP,
	       queue_max_len >= 1 && queue_max_len <= QUEUE_CAP ? "yes" : "no");
}

/* ---- semaphores: ping-pong ---- */

static sem_t ping, pong;
static int rally[20];
static int rally_len;

static void *ponger(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10; i++) {
		check_errno(sem_wait(&ping), "sem_wait");
		rally[rally_len++] = 2;
		check_errno(sem_post(&pong), "sem_post");
	}
	return NULL;
}

static void semaphores(void)
{
	check_errno(sem_init(&ping, 0, 0), "sem_init");
	check_errno(sem_init(&pong, 0, 0), "sem_init");
	pthread_t thread;
	check(pthread_create(&thread, NULL, ponger, NULL), "pthread_create");
	for (int i = 0; i < 10; i++) {
		rally[rally_len++] = 1;
		check_errno(sem_post(&ping), "sem_post");
		check_errno(sem_wait(&pong), "sem_wait");
	}
	check(pthread_join(thread, NULL), "pthread_join");
	char order[21];
	for (int i = 0; i < rally_len; i++)
		order[i] = '0' + rally[i];
	order[rally_len] = 0;
	int trywait = sem_trywait(&ping);
	int value = -1;
	sem_getvalue(&pong, &value);
	printf("semaphores: order %s, trywait on empty %d errno %s, value %d\n", order, trywait,
	       trywait < 0 && errno == EAGAIN ? "EAGAIN" : "??", value);
	sem_destroy(&ping);
	sem_destroy(&pong);
}

/* ---- rwlocks ---- */

static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static long table[16];
static long reads_consistent, reads_done;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;

static void *writer(void *arg)
{
	long id = (long)(intptr_t)arg;
	for (int round = 0; round < 500; round++) {
		check(pthread_rwlock_wrlock(&table_lock), "wrlock");
		/* Every entry moves together: readers must never see a torn table. */
		for (int i = 0; i < 16; i++)
			table[i] += id;
		check(pthread_rwlock_unlock(&table_lock), "unlock");
	}
	return NULL;
}

static void *reader(void *arg)
{
	(void)arg;
	long consistent = 0, done = 0;
	for (int round = 0; round < 1000; round++) {
		check(pthread_rwlock_rdlock(&table_lock), "rdlock");
		int same = 1;
		for (int i = 1; i < 16; i++)
			same &= table[i] == table[0];
		check(pthread_rwlock_unlock(&table_lock), "unlock");
		consistent += same;
		done++;
	}
	pthread_mutex_lock(&stats_lock);
	reads_consistent += consistent;
	reads_done += done;
	pthread_mutex_unlock(&stats_lock);
	return NULL;
}

static void rwlocks(void)
{
	pthread_t threads[6];
	for (int i = 0; i < 2; i++)
		check(pthread_create(&threads[i], NULL, writer, (void *)(intptr_t)(i + 1)),
		      "pthread_create");
	for (int i = 2; i < 6; i++)
		check(pthread_create(&threads[i], NULL, reader, NULL), "pthread_create");
	for (int i = 0; i < 6; i++)
		check(pthread_join(threads[i], NULL), "pthread_join");
	/* Two readers may hold it at once; a writer may not join them. */
	check(pthread_rwlock_rdlock(&table_lock), "rdlock");
	int second_reader = pthread_rwlock_tryrdlock(&table_lock);
	if (second_reader == 0)
		pthread_rwlock_unlock(&table_lock);
	int writer_busy = pthread_rwlock_trywrlock(&table_lock);
	pthread_rwlock_unlock(&table_lock);
	printf("rwlocks: table[0] %ld table[15] %ld, consistent reads %ld of %ld, "
	       "tryrdlock %d, trywrlock %s\n",
	       table[0], table[15], reads_consistent, reads_done, second_reader,
	       writer_busy == EBUSY ? "EBUSY" : "??");
}

/* ---- thread-specific data with destructors ---- */

static pthread_key_t key;
static pthread_mutex_t dtor_lock = PTHREAD_MUTEX_INITIALIZER;
static long dtor_calls, dtor_sum;

static void dtor(void *value)
{
	pthread_mutex_lock(&dtor_lock);
	dtor_calls++;
	dtor_sum += *(long *)value;
	pthread_mutex_unlock(&dtor_lock);
	free(value);
}

static void *tsd_thread(void *arg)
{
	long id = (long)(intptr_t)arg;
	if (pthread_getspecific(key) != NULL)
		return (void *)1;
	long *mine = malloc(sizeof *mine);
	*mine = id;
	check(pthread_setspecific(key, mine), "pthread_setspecific");
	/* Let the others set theirs before checking ours is still ours. */
	for (int i = 0; i < 1000; i++)
		sched_yield();
	return (void *)(intptr_t)(*(long *)pthread_getspecific(key) != id);
}

static void thread_specific(void)
{
	check(pthread_key_create(&key, dtor), "pthread_key_create");
	enum { N = 6 };
	pthread_t threads[N];
	for (int i = 0; i < N; i++)
		check(pthread_create(&threads[i], NULL, tsd_thread, (void *)(intptr_t)(i + 10)),
		      "pthread_create");
	long mismatches = 0;
	for (int i = 0; i < N; i++) {
		void *result;
		check(pthread_join(threads[i], &result), "pthread_join");
		mismatches += (long)(intptr_t)result;
	}
	/* A thread that never sets a value gets no destructor call. */
	pthread_t idle;
	check(pthread_create(&idle, NULL, square, (void *)3), "pthread_create");
	check(pthread_join(idle, NULL), "pthread_join");
	printf("thread_specific: mismatches %ld, destructor calls %ld, destructor sum %ld, "
	       "main value %s\n",
	       mismatches, dtor_calls, dtor_sum, pthread_getspecific(key) ? "set" : "null");
	check(pthread_key_delete(key), "pthread_key_delete");
}

/* ---- pthread_once ---- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int once_runs;
static pthread_barrier_t once_start;

static void once_body(void)
{
	once_runs++;
}

static void *call_once(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&once_start);
	check(pthread_once(&once, once_body), "pthread_once");
	return (void *)(intptr_t)once_runs;
}

static void once_check(void)
{
	enum { N = 8 };
	check(pthread_barrier_init(&once_start, NULL, N), "pthread_barrier_init");
	pthread_t threads[N];
	for (int i = 0; i < N; i++)
		check(pthread_create(&threads[i], NULL, call_once, NULL), "pthread_create");
	long seen = 0;
	for (int i = 0; i < N; i++) {
		void *result;
		check(pthread_join(threads[i], &result), "pthread_join");
		seen += (long)(intptr_t)result;
	}
	pthread_barrier_destroy(&once_start);
	printf("once: ran %d time(s), every caller saw %ld run(s) in total\n", once_runs, seen);
}

/* ---- detached threads ---- */

static sem_t detached_done;
static long detached_sum;
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;

static void *detached_body(void *arg)
{
	pthread_mutex_lock(&detached_lock);
	detached_sum += (long)(intptr_t)arg;
	pthread_mutex_unlock(&detached_lock);
	sem_post(&detached_done);
	return NULL;
}

static void detached(void)
{
	enum { N = 10 };
	check_errno(sem_init(&detached_done, 0, 0), "sem_init");
	pthread_attr_t attr;
	check(pthread_attr_init(&attr), "pthread_attr_init");
	check(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED), "setdetachstate");
	for (int i = 1; i <= N; i++) {
		pthread_t thread;
		check(pthread_create(&thread, &attr, detached_body, (void *)(intptr_t)i),
		      "pthread_create");
	}
	/* And one detached after starting. */
	pthread_t late;
	check(pthread_create(&late, NULL, detached_body, (void *)(intptr_t)100), "pthread_create");
	check(pthread_detach(late), "pthread_detach");
	pthread_attr_destroy(&attr);
	for (int i = 0; i < N + 1; i++)
		check_errno(sem_wait(&detached_done), "sem_wait");
	pthread_mutex_lock(&detached_lock);
	printf("detached: %d threads finished, sum %ld\n", N + 1, detached_sum);
	pthread_mutex_unlock(&detached_lock);
}

/* ---- barriers ---- */

enum { BARRIER_THREADS = 5, PHASES = 20 };
static pthread_barrier_t barrier;
static long phase_slots[PHASES][BARRIER_THREADS];
static long barrier_errors;
static long serial_count;
static pthread_mutex_t barrier_lock = PTHREAD_MUTEX_INITIALIZER;

static void *barrier_body(void *arg)
{
	long id = (long)(intptr_t)arg;
	long errors = 0, serial = 0;
	for (int phase = 0; phase < PHASES; phase++) {
		phase_slots[phase][id] = phase * 100 + id;
		int rc = pthread_barrier_wait(&barrier);
		if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
			serial++;
		else if (rc != 0)
			errors++;
		/* After the barrier, everyone's write of this phase is visible. */
		for (int other = 0; other < BARRIER_THREADS; other++)
			errors += phase_slots[phase][other] != phase * 100 + other;
		/* Second barrier: nobody races into the next phase's checks. */
		rc = pthread_barrier_wait(&barrier);
		if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
			serial++;
		else if (rc != 0)
			errors++;
	}
	pthread_mutex_lock(&barrier_lock);
	barrier_errors += errors;
	serial_count += serial;
	pthread_mutex_unlock(&barrier_lock);
	return NULL;
}

static void barriers(void)
{
	check(pthread_barrier_init(&barrier, NULL, BARRIER_THREADS), "pthread_barrier_init");
	pthread_t threads[BARRIER_THREADS];
	for (int i = 0; i < BARRIER_THREADS; i++)
		check(pthread_create(&threads[i], NULL, barrier_body, (void *)(intptr_t)i),
		      "pthread_create");
	for (int i = 0; i < BARRIER_THREADS; i++)
		check(pthread_join(threads[i], NULL), "pthread_join");
	pthread_barrier_destroy(&barrier);
	printf("barrier: %d threads, %d phases, errors %ld, serial threads %ld\n", BARRIER_THREADS,
	       PHASES, barrier_errors, serial_count);
}

/* ---- pthread_self / pthread_equal and thread ids ---- */

static void *self_body(void *arg)
{
	pthread_t *main_thread = arg;
	return (void *)(intptr_t)(pthread_equal(pthread_self(), *main_thread) ? 1 : 2);
}

static void identity(void)
{
	pthread_t main_thread = pthread_self(), thread;
	check(pthread_create(&thread, NULL, self_body, &main_thread), "pthread_create");
	void *result;
	check(pthread_join(thread, &result), "pthread_join");
	printf("identity: other thread differs from main: %s\n",
	       (intptr_t)result == 2 ? "yes" : "no");
}

int main(void)
{
	create_join();
	mutex();
	condvar_queue();
	semaphores();
	rwlocks();
	thread_specific();
	once_check();
	detached();
	barriers();
	identity();
	return 0;
}
