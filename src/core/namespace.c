#include "namespace.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRIVATE_PREFIX "ipcsh-"

static void user_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &res) == 0 && res)
		snprintf(buf, size, "%s", res->pw_name);
	else
		snprintf(buf, size, "uid %u", (unsigned)uid);
}

static void group_name(gid_t gid, char *buf, size_t size)
{
	struct group gr, *res = NULL;
	char tmp[4096];
	if (getgrgid_r(gid, &gr, tmp, sizeof tmp, &res) == 0 && res)
		snprintf(buf, size, "%s", res->gr_name);
	else
		snprintf(buf, size, "gid %u", (unsigned)gid);
}

static int in_my_groups(gid_t gid)
{
	if (gid == getegid())
		return 1;
	int n = getgroups(0, NULL);
	if (n <= 0)
		return 0;
	gid_t *list = malloc((size_t)n * sizeof *list);
	if (!list)
		return 0; /* refusing is the safe answer */
	n = getgroups(n, list);
	int found = 0;
	for (int i = 0; i < n && !found; i++)
		found = list[i] == gid;
	free(list);
	return found;
}

/* Where the private directory goes: $IPCSH_TMPDIR (as tmux has
 * TMUX_TMPDIR), else /dev/shm (memory), else the session's runtime
 * directory, else /tmp. */
static const char *private_base(void)
{
	struct stat st;
	const char *t = getenv("IPCSH_TMPDIR");
	if (t && *t)
		return t;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode))
		return "/dev/shm";
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode))
		return x;
	return "/tmp";
}

int ipc_ns_path(char *buf, size_t size, const char *dir, int *shared, ipc_error *err)
{
	if (!dir || !*dir)
		dir = getenv("IPCSH_DIR");
	int n;
	if (dir && *dir) {
		*shared = 1;
		if (dir[0] == '/') {
			n = snprintf(buf, size, "%s", dir);
		} else {
			char cwd[IPC_NS_PATH_MAX];
			if (!getcwd(cwd, sizeof cwd))
				return ipc_fail_os(err, errno,
				                   "cannot resolve the directory \"%s\"", dir);
			n = snprintf(buf, size, "%s/%s", strcmp(cwd, "/") ? cwd : "", dir);
		}
	} else {
		*shared = 0;
		const char *base = private_base();
		if (base[0] != '/')
			return ipc_fail(err, EINVAL,
			                "IPCSH_TMPDIR must be an absolute path, not \"%s\"", base);
		n = snprintf(buf, size, "%s/" PRIVATE_PREFIX "%u", strcmp(base, "/") ? base : "",
		             (unsigned)geteuid());
	}
	if (n < 0 || (size_t)n >= size)
		return ipc_fail(err, ENAMETOOLONG, "object directory path too long");
	/* "/x/" and "/x" are one directory */
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return IPC_OK;
}

/* The private directory's parent must not let others swap our directory
 * for theirs between mkdir and open. */
static int check_parent(const ipc_ns *ns, ipc_error *err)
{
	char parent[IPC_NS_PATH_MAX];
	snprintf(parent, sizeof parent, "%s", ns->path);
	char *slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	struct stat st;
	if (stat(parent, &st) != 0)
		return ipc_fail_os(err, errno, "cannot make the private namespace in %s", parent);
	if (!S_ISDIR(st.st_mode))
		return ipc_fail(err, ENOTDIR,
		                "cannot make the private namespace in %s: not a directory", parent);
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		char who[64];
		user_name(st.st_uid, who, sizeof who);
		return ipc_fail(err, EPERM,
		                "cannot make the private namespace in %s: it is owned by %s "
		                "(uid %u), neither root nor you",
		                parent, who, (unsigned)st.st_uid);
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
		return ipc_fail(err, EPERM,
		                "cannot make the private namespace in %s: it is writable by others "
		                "without the sticky bit (mode %04o)",
		                parent, (unsigned)(st.st_mode & 07777));
	return IPC_OK;
}

static int open_dir(const ipc_ns *ns)
{
	return open(ns->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int refuse_owner(const ipc_ns *ns, uid_t owner, ipc_error *err)
{
	char who[64];
	user_name(owner, who, sizeof who);
	return ipc_fail(err, EPERM,
	                "private namespace %s is owned by %s (uid %u), not by you (uid %u): "
	                "refused",
	                ns->path, who, (unsigned)owner, (unsigned)geteuid());
}

/* Say why open_dir failed with errno e: by the rule the entry breaks when
 * it breaks one (a directory we may not even enter is refused by its
 * owner, not by "Permission denied"). */
static int dir_open_error(const ipc_ns *ns, int e, ipc_error *err)
{
	struct stat st;
	if (e != ENOENT && lstat(ns->path, &st) == 0) {
		if (S_ISLNK(st.st_mode))
			return ipc_fail(err, ELOOP, "namespace %s is a symbolic link: refused",
			                ns->path);
		if (!S_ISDIR(st.st_mode))
			return ipc_fail(err, ENOTDIR, "namespace %s is not a directory: refused",
			                ns->path);
		if (!ns->shared && st.st_uid != geteuid())
			return refuse_owner(ns, st.st_uid, err);
	}
	if (e == ENOENT) /* ENOENT only for the private one: made on first use */
		return ipc_fail(err, ns->shared ? ENOTDIR : ENOENT, "namespace %s does not exist",
		                ns->path);
	return ipc_fail_os(err, e, "namespace %s", ns->path);
}

static int verify_dir(const ipc_ns *ns, ipc_error *err)
{
	struct stat st;
	if (fstat(ns->fd, &st) != 0)
		return ipc_fail_os(err, errno, "namespace %s: cannot stat", ns->path);
	unsigned mode = (unsigned)(st.st_mode & 07777);
	if (ns->shared) {
		if ((mode & S_IWOTH) && !(mode & S_ISVTX))
			return ipc_fail(err, EPERM,
			                "namespace %s is writable by others without the sticky bit "
			                "(mode %04o): refused",
			                ns->path, mode);
		return IPC_OK;
	}
	if (st.st_uid != geteuid())
		return refuse_owner(ns, st.st_uid, err);
	if (mode & 077)
		return ipc_fail(err, EPERM,
		                "private namespace %s has mode %04o: others may enter it (it must "
		                "be 0700): refused",
		                ns->path, mode);
	return IPC_OK;
}

int ipc_ns_open(ipc_ns *ns, const char *dir, int create, ipc_error *err)
{
	ns->fd = -1;
	if (ipc_ns_path(ns->path, sizeof ns->path, dir, &ns->shared, err))
		return IPC_ERR;
	ns->fd = open_dir(ns);
	if (ns->fd < 0 && errno == ENOENT && create && !ns->shared) {
		if (check_parent(ns, err))
			return IPC_ERR;
		int made = mkdir(ns->path, 0700) == 0;
		if (!made && errno != EEXIST)
			return ipc_fail_os(err, errno, "cannot make the private namespace %s",
			                   ns->path);
		ns->fd = open_dir(ns);
		/* the umask may have taken bits we need: ours, so set them */
		if (made && ns->fd >= 0)
			(void)fchmod(ns->fd, 0700);
	}
	if (ns->fd < 0)
		return dir_open_error(ns, errno, err);
	if (verify_dir(ns, err)) {
		ipc_ns_close(ns);
		return IPC_ERR;
	}
	return IPC_OK;
}

void ipc_ns_close(ipc_ns *ns)
{
	if (ns->fd >= 0)
		close(ns->fd);
	ns->fd = -1;
}

int ipc_ns_trust(const ipc_ns *ns, const struct stat *st, const char *what, const char *name,
                 ipc_error *err)
{
	uid_t me = geteuid();
	unsigned mode = (unsigned)(st->st_mode & 07777);
	char who[64];
	if (S_ISREG(st->st_mode) && st->st_uid == me)
		return IPC_OK;
	user_name(st->st_uid, who, sizeof who);
	if (S_ISLNK(st->st_mode))
		return ipc_fail(err, 0, "%s \"%s\" is a symbolic link (owner %s, uid %u): refused",
		                what, name, who, (unsigned)st->st_uid);
	if (!S_ISREG(st->st_mode))
		return ipc_fail(err, 0,
		                "%s \"%s\" is not a regular file (owner %s, uid %u): refused", what,
		                name, who, (unsigned)st->st_uid);
	if (!ns->shared)
		return ipc_fail(err, 0,
		                "%s \"%s\" is owned by %s (uid %u), not by you, in your private "
		                "namespace: refused",
		                what, name, who, (unsigned)st->st_uid);
	if (mode & S_IWOTH)
		return ipc_fail(err, 0,
		                "%s \"%s\" is owned by %s (uid %u) and writable by others (mode "
		                "%04o): refused",
		                what, name, who, (unsigned)st->st_uid, mode);
	char grp[64];
	group_name(st->st_gid, grp, sizeof grp);
	if (!in_my_groups(st->st_gid))
		return ipc_fail(
		    err, EACCES,
		    "%s \"%s\" is owned by %s (uid %u) and its group %s (gid %u) is not "
		    "one of yours: refused",
		    what, name, who, (unsigned)st->st_uid, grp, (unsigned)st->st_gid);
	if ((mode & (S_IRGRP | S_IWGRP)) != (S_IRGRP | S_IWGRP))
		return ipc_fail(err, EACCES,
		                "%s \"%s\" is owned by %s (uid %u) and its mode %04o does not let "
		                "its group %s read and write it: refused",
		                what, name, who, (unsigned)st->st_uid, mode, grp);
	return IPC_OK;
}
