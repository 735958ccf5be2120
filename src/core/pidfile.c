#include "pidfile.h"

#include "procid.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Every handle, so that a forked child can drop what its parent owns: an
 * OFD lock belongs to the open file description, which a child shares
 * through the inherited fd. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static ipc_pidfile *registry;
/* fds of handles collected while owning: kept open until exit. */
static int *abandoned;
static size_t nabandoned, cap_abandoned;

/* At exit or when the module is unloaded.  The abandoned fds stay open (and
 * locked) until the process ends; only the list of them goes. */
__attribute__((destructor)) static void abandoned_free(void)
{
	free(abandoned);
	abandoned = NULL;
	nabandoned = cap_abandoned = 0;
}

/* In the child after fork (single-threaded there): no lock taken. */
static void pidfile_atfork_child(void)
{
	for (ipc_pidfile *p = registry; p; p = p->next) {
		if (p->fd >= 0)
			close(p->fd);
		p->fd = -1;
	}
	for (size_t i = 0; i < nabandoned; i++)
		close(abandoned[i]);
	nabandoned = 0;
}

static void reg_add(ipc_pidfile *p)
{
	pthread_mutex_lock(&reg_lock);
	p->prev = NULL;
	p->next = registry;
	if (registry)
		registry->prev = p;
	registry = p;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(ipc_pidfile *p)
{
	pthread_mutex_lock(&reg_lock);
	if (p->prev)
		p->prev->next = p->next;
	else if (registry == p)
		registry = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	pthread_mutex_unlock(&reg_lock);
}

int ipc_pidfile_init(ipc_pidfile *p, const char *path, ipc_error *err)
{
	memset(p, 0, sizeof *p);
	p->fd = -1;
	if (!*path)
		return ipc_fail(err, EINVAL, "empty path");
	/* Absolute, so that a later chdir does not change which file we mean. */
	if (path[0] == '/') {
		p->path = strdup(path);
	} else {
		char cwd[4096];
		if (!getcwd(cwd, sizeof cwd))
			return ipc_fail_os(err, errno,
			                   "pidfile '%s': cannot get the current directory", path);
		size_t n = strlen(cwd) + strlen(path) + 2;
		p->path = malloc(n);
		if (p->path)
			snprintf(p->path, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", path);
	}
	if (!p->path)
		return ipc_fail(err, ENOMEM, "out of memory");
	ipc_atfork_child(pidfile_atfork_child);
	reg_add(p);
	return IPC_OK;
}

static void release(ipc_pidfile *p)
{
	if (p->fd >= 0)
		close(p->fd); /* drops both locks */
	p->fd = -1;
}

void ipc_pidfile_fini(ipc_pidfile *p)
{
	if (!p->path)
		return;
	reg_del(p);
	if (p->pid == ipc_self_pid())
		release(p);
	free(p->path);
	p->path = NULL;
	p->fd = -1;
}

static int lock_range(int fd, int cmd, short type, off_t start, off_t len, struct flock *out)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	int r = fcntl(fd, cmd, &fl);
	if (out)
		*out = fl;
	return r;
}

/* Who holds range [start, start+1)?  0: unlocked, 1: locked (*lpid = the
 * holder's pid for a classic POSIX lock, -1 for an OFD lock), -1: error. */
static int probe(int fd, off_t start, pid_t *lpid)
{
	struct flock fl;
	if (lock_range(fd, F_OFD_GETLK, F_WRLCK, start, 1, &fl) != 0)
		return -1;
	if (lpid)
		*lpid = fl.l_pid;
	return fl.l_type != F_UNLCK;
}

static int32_t parse_pid(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	long v = 0;
	int digits = 0;
	while (*s >= '0' && *s <= '9' && digits < 10) {
		v = v * 10 + (*s++ - '0');
		digits++;
	}
	if (!digits || v <= 0 || v > 0x3fffff)
		return 0;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return *s ? 0 : (int32_t)v;
}

static void nap_us(long us)
{
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
}

/* The owner of the file open on fd: if someone holds the lock, wait (up to
 * ~2 s) until its pid is published, then read it.  Returns the pid, 0 if
 * nobody holds the lock (any more), -1 if the holder is not one of us and
 * gives no pid, -2 if the lock cannot be tested (errno). */
static int32_t locked_owner(int fd)
{
	int64_t until = ipc_now_ns() + 2000000000LL;
	long pause = 50;
	for (;;) {
		pid_t lpid = 0;
		int own = probe(fd, 0, &lpid);
		if (own <= 0)
			return own < 0 ? -2 : 0;
		int pub = probe(fd, 1, NULL);
		if (pub > 0 || ipc_now_ns() > until) {
			char buf[64];
			ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
			int32_t pid = 0;
			if (n > 0) {
				buf[n] = 0;
				pid = parse_pid(buf);
			}
			if (pid > 0)
				return pid;
			if (lpid > 0) /* a classic whole-file lock from another tool */
				return (int32_t)lpid;
			if (pub > 0 || ipc_now_ns() > until)
				return -1;
		}
		nap_us(pause);
		if (pause < 5000)
			pause *= 2;
	}
}

/* Open path for a lock; refuses symlinks and non-regular files. */
static int open_file(const ipc_pidfile *p, int flags, ipc_error *err)
{
	int fd = open(p->path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			return ipc_fail(err, e, "pidfile '%s': is a symbolic link", p->path), -1;
		return ipc_fail_os(err, e, "pidfile '%s'", p->path), -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ipc_fail(err, EINVAL, "pidfile '%s': not a regular file", p->path), -1;
	}
	return fd;
}

/* Does the path still name the file open on fd? */
static int same_file(const char *path, int fd, struct stat *out)
{
	struct stat a, b;
	if (fstat(fd, &a) != 0 || lstat(path, &b) != 0)
		return 0;
	if (out)
		*out = a;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int ipc_pidfile_is_owner(ipc_pidfile *p)
{
	if (p->fd < 0 || p->pid != ipc_self_pid())
		return 0;
	if (!same_file(p->path, p->fd, NULL)) {
		release(p);
		return 0;
	}
	return 1;
}

int ipc_pidfile_create(ipc_pidfile *p, int32_t *owner, ipc_error *err)
{
	*owner = 0;
	if (ipc_pidfile_is_owner(p))
		return IPC_OK;
	if (p->fd >= 0 && p->pid != ipc_self_pid())
		p->fd = -1; /* inherited and already closed by the fork hook */
	for (int attempt = 0; attempt < 1000; attempt++) {
		int fd = open_file(p, O_RDWR | O_CREAT, err);
		if (fd < 0)
			return IPC_ERR;
		if (lock_range(fd, F_OFD_SETLK, F_WRLCK, 0, 1, NULL) != 0) {
			int e = errno;
			if (e != EAGAIN && e != EACCES) {
				close(fd);
				return ipc_fail_os(err, e, "pidfile '%s': cannot lock", p->path);
			}
			int32_t pid = locked_owner(fd);
			close(fd);
			if (pid == 0)
				continue; /* released meanwhile: try again */
			*owner = pid > 0 ? pid : 0;
			return 1;
		}
		/* Locked.  The previous owner may have unlinked the file between
		 * our open and our lock: then we locked a dead inode. */
		struct stat st;
		if (!same_file(p->path, fd, &st)) {
			close(fd);
			continue;
		}
		char buf[32];
		int32_t self = ipc_self_pid();
		int n = snprintf(buf, sizeof buf, "%d\n", (int)self);
		if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
			int e = errno ? errno : EIO;
			close(fd);
			return ipc_fail_os(err, e, "pidfile '%s': cannot write", p->path);
		}
		if (lock_range(fd, F_OFD_SETLK, F_WRLCK, 1, 0, NULL) != 0) {
			int e = errno;
			close(fd);
			return ipc_fail_os(err, e, "pidfile '%s': cannot lock", p->path);
		}
		p->fd = fd;
		p->pid = self;
		p->dev = st.st_dev;
		p->ino = st.st_ino;
		/* SIGTERM/SIGINT/SIGHUP (default action) or exit removes the
		 * file of a live owner too; SIGKILL leaves it to the takeover */
		ipc_cleanup_add(p->path, (unsigned long)p->dev, (unsigned long)p->ino);
		return IPC_OK;
	}
	return ipc_fail(err, EAGAIN, "pidfile '%s': the file keeps changing", p->path);
}

int ipc_pidfile_read(ipc_pidfile *p, int32_t *owner, ipc_error *err)
{
	*owner = 0;
	if (ipc_pidfile_is_owner(p)) {
		*owner = ipc_self_pid();
		return IPC_OK;
	}
	int fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return IPC_OK;
		return ipc_fail_os(err, errno, "pidfile '%s'", p->path);
	}
	/* 0: nobody holds the lock (stale or never owned) */
	int32_t pid = locked_owner(fd);
	int e = errno;
	close(fd);
	if (pid == -2)
		return ipc_fail_os(err, e, "pidfile '%s': cannot test the lock", p->path);
	*owner = pid > 0 ? pid : 0;
	return IPC_OK;
}

int ipc_pidfile_remove(ipc_pidfile *p)
{
	if (p->fd < 0 || p->pid != ipc_self_pid())
		return 0;
	/* Unlink while still holding the lock, so nobody can lock the old file
	 * and believe it owns the path. */
	struct stat st;
	if (lstat(p->path, &st) == 0 && st.st_dev == p->dev && st.st_ino == p->ino)
		unlink(p->path);
	ipc_cleanup_forget(p->path);
	release(p);
	return 1;
}

void ipc_pidfile_abandon(ipc_pidfile *p)
{
	if (p->fd >= 0 && p->pid == ipc_self_pid()) {
		pthread_mutex_lock(&reg_lock);
		if (nabandoned == cap_abandoned) {
			size_t cap = cap_abandoned ? cap_abandoned * 2 : 8;
			int *a = realloc(abandoned, cap * sizeof *a);
			if (a) {
				abandoned = a;
				cap_abandoned = cap;
			}
		}
		int kept = nabandoned < cap_abandoned;
		if (kept)
			abandoned[nabandoned++] = p->fd;
		pthread_mutex_unlock(&reg_lock);
		if (kept) {
			ipc_cleanup_add(p->path, (unsigned long)p->dev, (unsigned long)p->ino);
			p->fd = -1;
		}
	}
	ipc_pidfile_fini(p);
}
