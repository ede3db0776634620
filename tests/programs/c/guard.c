/* Writes just below a thread's stack, into the guard page that glibc and
 * musl map PROT_NONE there for a thread created with default attributes.
 * Natively that is SIGSEGV. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *toucher(void *arg)
{
	(void)arg;
	pthread_attr_t attr;
	void *stack;
	size_t size, guard;
	int rc = pthread_getattr_np(pthread_self(), &attr);
	if (rc == 0)
		rc = pthread_attr_getstack(&attr, &stack, &size);
	if (rc == 0)
		rc = pthread_attr_getguardsize(&attr, &guard);
	if (rc != 0) {
		fprintf(stderr, "guard: thread attributes: %s\n", strerror(rc));
		exit(1);
	}
	pthread_attr_destroy(&attr);
	printf("guard size nonzero: %s\n", guard > 0 ? "yes" : "no");
	puts("touching guard");
	fflush(stdout);
	volatile char *below = (volatile char *)stack - 1;
	*below = 42;
	puts("wrote to the guard page"); /* never reached */
	fflush(stdout);
	return NULL;
}

int main(void)
{
	pthread_t thread;
	int rc = pthread_create(&thread, NULL, toucher, NULL);
	if (rc != 0) {
		fprintf(stderr, "guard: pthread_create: %s\n", strerror(rc));
		return 1;
	}
	pthread_join(thread, NULL);
	puts("thread finished"); /* never reached */
	return 0;
}
