/* What a probe prints for each call, so a run in an isle can be compared
 * line by line with a native one: the result, or -1 and the errno's name. */
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>

static const char *errno_name(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case ENOTDIR: return "ENOTDIR";
	case EMFILE: return "EMFILE";
	case EROFS: return "EROFS";
	case ECHILD: return "ECHILD";
	case EINTR: return "EINTR";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ELOOP: return "ELOOP";
	default: return "other";
	}
}

static void report(const char *what, long result)
{
	if (result < 0)
		printf("%s: -1 %s\n", what, errno_name(errno));
	else
		printf("%s: %ld\n", what, result);
}

/* How child `pid` ended once waited for, as a shell says it: its exit
 * status, or 128 + the signal that killed it; -1 if it can't be waited for. */
static inline int exit_status_of(pid_t pid)
{
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
