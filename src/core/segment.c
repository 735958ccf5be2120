#include "segment.h"

#include "names.h"
#include "namespace.h"
#include "procid.h"
#include "signals.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "ipcs."
#define TMP_PREFIX ".ipcsh-new."

static const char *const type_names[IPC_T_MAX + 1] = {
    NULL, "shm", "mutex", "semaphore", "queue", "condition", "event", "barrier", "kv"};

static ipc_segment *mapped; /* this process's mappings */

const char *ipc_type_name(uint32_t id)
{
	return id <= IPC_T_MAX ? type_names[id] : NULL;
}

const char *ipc_dir(void)
{
	static _Thread_local char buf[IPC_NS_PATH_MAX];
	ipc_error err;
	int shared;
	if (ipc_ns_path(buf, sizeof buf, NULL, &shared, &err))
		snprintf(buf, sizeof buf, "%s", getenv("IPCSH_DIR") ? getenv("IPCSH_DIR") : "");
	return buf;
}

/* The entry of NAME in a directory: "ipcs.NAME" (names are short enough). */
static void entry_name(char buf[IPC_NAME_MAX + 8], const char *name)
{
	snprintf(buf, IPC_NAME_MAX + 8, PREFIX "%s", name);
}

/* "an event", "a queue": messages read as English. */
static const char *article(const char *noun)
{
	return noun && strchr("aeiou", noun[0]) ? "an" : "a";
}

static uint64_t header_checksum(const ipc_header *h)
{
	return ipc_hash64(h, offsetof(ipc_header, checksum));
}

int ipc_header_check(const ipc_header *h, uint64_t file_size, uint32_t want_type, const char *name,
                     ipc_error *err)
{
	if (file_size < sizeof(ipc_header))
		return ipc_fail(err, 0, "\"%s\" is truncated (%llu bytes): not a valid object",
		                name, (unsigned long long)file_size);
	if (memcmp(h->magic, IPC_MAGIC, 8) != 0)
		return ipc_fail(err, 0, "\"%s\" is not an ipcsh object (bad magic)", name);
	if (h->version != IPC_LAYOUT_VERSION)
		return ipc_fail(err, 0,
		                "\"%s\" has unsupported layout version %u (this build reads %d)",
		                name, h->version, IPC_LAYOUT_VERSION);
	if (h->checksum != header_checksum(h))
		return ipc_fail(err, 0, "\"%s\" is corrupt (header checksum mismatch)", name);
	if (!ipc_type_name(h->type))
		return ipc_fail(err, 0, "\"%s\" is corrupt (unknown type %u)", name, h->type);
	if (h->header_size != IPC_HEADER_SIZE || h->total_size != file_size ||
	    h->total_size < h->header_size || h->total_size - h->header_size > IPC_BODY_MAX)
		return ipc_fail(
		    err, 0, "\"%s\" is corrupt (header says %llu bytes, segment has %llu)", name,
		    (unsigned long long)h->total_size, (unsigned long long)file_size);
	if (h->name_len > IPC_NAME_MAX || h->name_len >= sizeof h->name)
		return ipc_fail(err, 0, "\"%s\" is corrupt (bad name length)", name);
	if (want_type && h->type != want_type)
		return ipc_fail(err, 0, "\"%s\" is %s %s, not %s %s", name,
		                article(type_names[h->type]), type_names[h->type],
		                article(type_names[want_type]), type_names[want_type]);
	return IPC_OK;
}

static ipc_segment *find_mapped(dev_t dev, ino_t ino)
{
	for (ipc_segment *s = mapped; s; s = s->next)
		if (s->dev == dev && s->ino == ino)
			return s;
	return NULL;
}

static int truncated(ipc_error *err, const char *name, uint64_t now, size_t was)
{
	return ipc_fail(err, EPROTO,
	                "\"%s\" is corrupt (truncated to %llu bytes while mapped with %llu)", name,
	                (unsigned long long)now, (unsigned long long)was);
}

/* Open NAME's file in ns.  The trust rules are applied to the entry before
 * opening it (so a file we may not use is refused by its rule, whatever
 * open(2) would say, and open never blocks on a planted FIFO) and again to
 * what was opened.  Returns the descriptor (its stat in *st) or IPC_ERR. */
static int open_entry(const ipc_ns *ns, const char *what, const char *name, int flags,
                      struct stat *st, ipc_error *err)
{
	char entry[IPC_NAME_MAX + 8];
	entry_name(entry, name);
	struct stat lst;
	if (fstatat(ns->fd, entry, &lst, AT_SYMLINK_NOFOLLOW) != 0)
		return ipc_fail_os(err, errno, "%s \"%s\"", what, name);
	if (ipc_ns_trust(ns, &lst, what, name, err))
		return IPC_ERR;
	int fd = openat(ns->fd, entry, flags | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			return ipc_fail(err, 0, "%s \"%s\" is a symbolic link: refused", what,
			                name);
		return ipc_fail_os(err, errno, "%s \"%s\"", what, name);
	}
	if (fstat(fd, st) != 0) {
		int e = errno;
		close(fd);
		return ipc_fail_os(err, e, "%s \"%s\": cannot stat", what, name);
	}
	if (ipc_ns_trust(ns, st, what, name, err)) {
		close(fd);
		return IPC_ERR;
	}
	return fd;
}

/* Map an open object file (st: its fstat), validating it as type ops. */
static int map_fd(ipc_segment **out, int fd, const struct stat *st, const ipc_ns *ns,
                  const char *name, const ipc_type_ops *ops, ipc_error *err)
{
	ipc_segment *seg = find_mapped(st->st_dev, st->st_ino);
	if (seg) {
		if (seg->ops != ops)
			return ipc_fail(err, 0, "\"%s\" is %s %s, not %s %s", name,
			                article(seg->ops->name), seg->ops->name, article(ops->name),
			                ops->name);
		if ((uint64_t)st->st_size < seg->size) /* touching the lost pages: SIGBUS */
			return truncated(err, name, (uint64_t)st->st_size, seg->size);
		seg->refs++;
		*out = seg;
		return IPC_OK;
	}
	ipc_header h;
	memset(&h, 0, sizeof h);
	if ((uint64_t)st->st_size >= sizeof h && pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
		return ipc_fail_os(err, errno, "%s \"%s\": cannot read", ops->name, name);
	if (ipc_header_check(&h, (uint64_t)st->st_size, ops->id, name, err))
		return IPC_ERR;
	uint64_t body_size;
	if (ops->layout(h.params, &body_size, err))
		return ipc_fail(err, 0, "\"%s\" is corrupt (%s)", name, err->msg);
	if (body_size != h.total_size - h.header_size)
		return ipc_fail(err, 0, "\"%s\" is corrupt (sizes do not match its parameters)",
		                name);
	seg = calloc(1, sizeof *seg);
	void *local = ops->local_size ? calloc(1, ops->local_size) : NULL;
	if (!seg || (ops->local_size && !local)) {
		free(seg);
		free(local);
		return ipc_fail(err, ENOMEM, "out of memory");
	}
	void *base = mmap(NULL, (size_t)st->st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		int e = errno;
		free(seg);
		free(local);
		return ipc_fail_os(err, e, "%s \"%s\": cannot map", ops->name, name);
	}
	seg->refs = 1;
	seg->dev = st->st_dev;
	seg->ino = st->st_ino;
	seg->base = base;
	seg->size = (size_t)st->st_size;
	seg->hdr = base;
	seg->body = (char *)base + IPC_HEADER_SIZE;
	seg->body_size = body_size;
	seg->ops = ops;
	seg->local = local;
	snprintf(seg->path, sizeof seg->path, "%s/" PREFIX "%s", ns->path, name);
	snprintf(seg->name, sizeof seg->name, "%s", name);
	seg->next = mapped;
	mapped = seg;
	*out = seg;
	return IPC_OK;
}

static int open_existing(ipc_segment **out, const ipc_ns *ns, const char *name,
                         const ipc_type_ops *ops, ipc_error *err)
{
	struct stat st;
	int fd = open_entry(ns, ops->name, name, O_RDWR, &st, err);
	if (fd < 0)
		return IPC_ERR;
	int r = map_fd(out, fd, &st, ns, name, ops, err);
	close(fd);
	return r;
}

/* Build a complete object under a temporary name, then link it into place.
 * Returns IPC_OK (created), IPC_TIMEOUT when the name already exists, or
 * IPC_ERR. */
static int create_new(ipc_segment **out, const ipc_ns *ns, const char *name,
                      const ipc_type_ops *ops, const ipc_open_opts *o, ipc_error *err)
{
	uint64_t body_size;
	if (ops->layout(o->params, &body_size, err))
		return IPC_ERR;
	uint64_t total = IPC_HEADER_SIZE + body_size;
	char tmp[64], entry[IPC_NAME_MAX + 8];
	char uid[12];
	ipc_uid(uid);
	snprintf(tmp, sizeof tmp, TMP_PREFIX "%llu.%s", (unsigned long long)ipc_self_token(), uid);
	entry_name(entry, name);
	int fd = openat(ns->fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                o->mode & 07777);
	if (fd < 0)
		return ipc_fail_os(err, errno, "%s \"%s\": cannot create in %s", ops->name, name,
		                   ns->path);
	int r = IPC_ERR, e;
	void *base = MAP_FAILED;
	if (fchmod(fd, o->mode & 07777) != 0) {
		ipc_fail_os(err, errno, "%s \"%s\": cannot set mode", ops->name, name);
		goto fail;
	}
	/* Reserve the memory now: a full tmpfs must fail here, cleanly, not
	 * with SIGBUS on first touch. */
	if ((e = posix_fallocate(fd, 0, (off_t)total)) != 0) {
		ipc_fail_os(err, e, "%s \"%s\": cannot allocate %llu bytes", ops->name, name,
		            (unsigned long long)total);
		goto fail;
	}
	base = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		ipc_fail_os(err, errno, "%s \"%s\": cannot map", ops->name, name);
		goto fail;
	}
	ipc_header *h = base;
	memcpy(h->magic, IPC_MAGIC, 8);
	h->version = IPC_LAYOUT_VERSION;
	h->type = ops->id;
	h->header_size = IPC_HEADER_SIZE;
	h->total_size = total;
	memcpy(h->params, o->params, sizeof h->params);
	h->creator_pid = ipc_self_pid();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	h->name_len = (uint32_t)strlen(name);
	memcpy(h->name, name, h->name_len);
	h->checksum = header_checksum(h);
	if (ops->init((char *)base + IPC_HEADER_SIZE, o->params, err))
		goto fail;
	munmap(base, (size_t)total);
	base = MAP_FAILED;
	if (linkat(ns->fd, tmp, ns->fd, entry, 0) != 0) {
		e = errno;
		if (e == EEXIST)
			r = IPC_TIMEOUT;
		else
			ipc_fail_os(err, e, "%s \"%s\": cannot publish", ops->name, name);
		goto fail;
	}
	unlinkat(ns->fd, tmp, 0);
	struct stat st;
	if (fstat(fd, &st) != 0)
		r = ipc_fail_os(err, errno, "%s \"%s\": cannot stat", ops->name, name);
	else
		r = map_fd(out, fd, &st, ns, name, ops, err);
	close(fd);
	return r;
fail:
	if (base != MAP_FAILED)
		munmap(base, (size_t)total);
	unlinkat(ns->fd, tmp, 0);
	close(fd);
	return r;
}

static int open_in(ipc_segment **out, const ipc_ns *ns, const char *name, const ipc_type_ops *ops,
                   const ipc_open_opts *o, int *created, ipc_error *err)
{
	for (int attempt = 0; attempt < 100; attempt++) {
		if (o->assert_mode != IPC_OPEN_CREATE) {
			if (open_existing(out, ns, name, ops, err) == IPC_OK)
				return IPC_OK;
			if (err->code != ENOENT)
				return IPC_ERR;
			if (o->assert_mode == IPC_OPEN_EXISTS)
				return ipc_fail(err, ENOENT, "%s \"%s\" does not exist", ops->name,
				                name);
		}
		int r = create_new(out, ns, name, ops, o, err);
		if (r == IPC_OK) {
			*created = 1;
			return IPC_OK;
		}
		if (r == IPC_ERR)
			return IPC_ERR;
		if (o->assert_mode == IPC_OPEN_CREATE)
			return ipc_fail(err, EEXIST, "%s \"%s\" already exists", ops->name, name);
		/* lost a creation race (or it was removed again): retry the open */
	}
	return ipc_fail(err, EAGAIN, "%s \"%s\": keeps disappearing while opened", ops->name, name);
}

int ipc_seg_open(ipc_segment **out, const char *name, const ipc_type_ops *ops,
                 const ipc_open_opts *o, int *created, ipc_error *err)
{
	*created = 0;
	if (!ipc_name_valid(name, strlen(name)))
		return ipc_fail(err, 0, "invalid object name \"%s\"", name);
	ipc_ns ns;
	if (ipc_ns_open(&ns, o->dir, o->assert_mode != IPC_OPEN_EXISTS, err)) {
		if (err->code == ENOENT && o->assert_mode == IPC_OPEN_EXISTS)
			return ipc_fail(err, ENOENT, "%s \"%s\" does not exist", ops->name, name);
		return IPC_ERR;
	}
	int r = open_in(out, &ns, name, ops, o, created, err);
	ipc_ns_close(&ns);
	if (r == IPC_OK && o->cleanup)
		ipc_cleanup_add((*out)->path, (unsigned long)(*out)->dev,
		                (unsigned long)(*out)->ino);
	return r;
}

void ipc_seg_release(ipc_segment *seg)
{
	if (--seg->refs > 0)
		return;
	if (seg->ops->release)
		seg->ops->release(seg);
	for (ipc_segment **p = &mapped; *p; p = &(*p)->next)
		if (*p == seg) {
			*p = seg->next;
			break;
		}
	munmap(seg->base, seg->size);
	free(seg->local);
	free(seg);
}

int ipc_seg_intact(ipc_segment *seg, ipc_error *err)
{
	struct stat st;
	if (stat(seg->path, &st) == 0 && st.st_dev == seg->dev && st.st_ino == seg->ino &&
	    (uint64_t)st.st_size < seg->size)
		return truncated(err, seg->name, (uint64_t)st.st_size, seg->size);
	return IPC_OK;
}

int ipc_seg_peek(const char *name, ipc_header *hdr, ipc_error *err)
{
	memset(hdr, 0, sizeof *hdr);
	if (!ipc_name_valid(name, strlen(name)))
		return ipc_fail(err, 0, "invalid object name \"%s\"", name);
	ipc_ns ns;
	if (ipc_ns_open(&ns, NULL, 0, err))
		return IPC_ERR; /* ENOENT: no private namespace yet, so no object */
	struct stat st;
	int fd = open_entry(&ns, "object", name, O_RDONLY, &st, err);
	ipc_ns_close(&ns);
	if (fd < 0)
		return IPC_ERR;
	int r = IPC_OK;
	if ((uint64_t)st.st_size >= sizeof *hdr &&
	    pread(fd, hdr, sizeof *hdr, 0) != (ssize_t)sizeof *hdr)
		r = ipc_fail_os(err, errno, "\"%s\": cannot read", name);
	else
		r = ipc_header_check(hdr, (uint64_t)st.st_size, 0, name, err);
	close(fd);
	return r;
}

/* Your own entries go whatever they are (a link is removed, not followed);
 * another user's only when the trust rules would let you use it. */
static int unlink_in(const ipc_ns *ns, const char *name, ipc_error *err)
{
	char entry[IPC_NAME_MAX + 8], path[sizeof((ipc_segment *)0)->path];
	entry_name(entry, name);
	struct stat st;
	if (fstatat(ns->fd, entry, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : ipc_fail_os(err, errno, "cannot remove \"%s\"", name);
	if (st.st_uid != geteuid() && ipc_ns_trust(ns, &st, "object", name, err))
		return IPC_ERR;
	if (unlinkat(ns->fd, entry, 0) != 0)
		return errno == ENOENT ? 0 : ipc_fail_os(err, errno, "cannot remove \"%s\"", name);
	snprintf(path, sizeof path, "%s/%s", ns->path, entry);
	ipc_cleanup_forget(path);
	return 1;
}

int ipc_seg_unlink(const char *name, ipc_error *err)
{
	if (!ipc_name_valid(name, strlen(name)))
		return ipc_fail(err, 0, "invalid object name \"%s\"", name);
	ipc_ns ns;
	if (ipc_ns_open(&ns, NULL, 0, err))
		return err->code == ENOENT ? 0 : IPC_ERR;
	int r = unlink_in(&ns, name, err);
	ipc_ns_close(&ns);
	return r;
}

int ipc_seg_remove(ipc_segment *seg, ipc_error *err)
{
	struct stat st;
	if (lstat(seg->path, &st) != 0 || st.st_dev != seg->dev || st.st_ino != seg->ino)
		return 0; /* already gone, or the name now holds another object */
	if (unlink(seg->path) == 0) {
		ipc_cleanup_forget(seg->path);
		return 1;
	}
	if (errno == ENOENT)
		return 0;
	return ipc_fail_os(err, errno, "%s \"%s\": cannot remove", seg->ops->name, seg->name);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A temporary file whose creator is dead is the remains of an interrupted
 * creation: nobody can ever see it, so remove it (only our own: other
 * users' files are theirs to clean). */
static void reap_tmp(const ipc_ns *ns, const char *entry)
{
	ipc_token t = strtoull(entry + strlen(TMP_PREFIX), NULL, 10);
	struct stat st;
	if (t && !ipc_token_alive(t) && fstatat(ns->fd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_uid == geteuid())
		unlinkat(ns->fd, entry, 0);
}

int ipc_seg_list(void (*fn)(const char *name, void *ud), void *ud, ipc_error *err)
{
	ipc_ns ns;
	if (ipc_ns_open(&ns, NULL, 0, err))
		return err->code == ENOENT ? IPC_OK : IPC_ERR; /* no private namespace yet */
	int dfd = dup(ns.fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		ipc_ns_close(&ns);
		return ipc_fail_os(err, e, "cannot read %s", ns.path);
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int r = IPC_OK;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
			reap_tmp(&ns, de->d_name);
			continue;
		}
		if (strncmp(de->d_name, PREFIX, strlen(PREFIX)) != 0)
			continue;
		const char *name = de->d_name + strlen(PREFIX);
		if (!ipc_name_valid(name, strlen(name)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **grown = realloc(names, cap * sizeof *names);
			if (!grown) {
				r = ipc_fail(err, ENOMEM, "out of memory");
				break;
			}
			names = grown;
		}
		if (!(names[n] = strdup(name))) {
			r = ipc_fail(err, ENOMEM, "out of memory");
			break;
		}
		n++;
	}
	closedir(d);
	ipc_ns_close(&ns);
	if (r == IPC_OK) {
		if (n > 1) /* qsort(NULL, 0, ...) is undefined: an empty directory */
			qsort(names, n, sizeof *names, cmp_str);
		for (size_t i = 0; i < n; i++)
			fn(names[i], ud);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}
