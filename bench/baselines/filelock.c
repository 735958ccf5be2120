/* Baseline: kernel file locks, which the kernel releases when the holder
 * dies (the classic crash-safe lock).
 *   filelock flock|fcntl|ofd pair|shared_pair FILE DUR_MS
 *   filelock flock|fcntl|ofd contend FILE N DUR_MS
 * flock = flock(2); fcntl = F_SETLKW process-associated record lock;
 * ofd = F_OFD_SETLKW open-file-description lock. */
#include "bench.h"

#include <fcntl.h>
#include <sys/file.h>

static int kind; /* 0 flock, 1 fcntl, 2 ofd */

static void lk(int fd, int shared)
{
	if (kind == 0) {
		while (flock(fd, shared ? LOCK_SH : LOCK_EX) != 0)
			if (errno != EINTR)
				die("flock");
		return;
	}
	struct flock fl = {.l_type = (short)(shared ? F_RDLCK : F_WRLCK), .l_whence = SEEK_SET};
	while (fcntl(fd, kind == 1 ? F_SETLKW : F_OFD_SETLKW, &fl) != 0)
		if (errno != EINTR)
			die("fcntl");
}

static void ulk(int fd)
{
	if (kind == 0) {
		flock(fd, LOCK_UN);
		return;
	}
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, kind == 1 ? F_SETLK : F_OFD_SETLK, &fl) != 0)
		die("fcntl unlock");
}

static const char *path;
static double dur;

static void worker(team *t, int i, void *arg)
{
	(void)arg;
	int fd = open(path, O_RDWR | O_CREAT, 0600); /* own open file description */
	if (fd < 0)
		die("open");
	double end = team_arrive(t) + dur;
	long long n = 0;
	do {
		for (int k = 0; k < 16; k++) {
			lk(fd, 0);
			ulk(fd);
		}
		n += 16;
	} while (now_ms() < end);
	t->count[i] = n;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: filelock KIND MODE FILE ...\n");
		return 2;
	}
	kind = !strcmp(argv[1], "flock") ? 0 : !strcmp(argv[1], "fcntl") ? 1 : 2;
	path = argv[3];
	if (!strcmp(argv[2], "contend") && argc > 5) {
		int n = atoi(argv[4]);
		dur = atof(argv[5]);
		team *t = team_new();
		if (team_run(t, n, worker, NULL))
			return 1;
		printf("rate %.0f\n", (double)team_total(t, n) / (dur / 1e3));
	} else {
		int shared = !strcmp(argv[2], "shared_pair");
		dur = atof(argv[4]);
		int fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0)
			die("open");
		TIMED_NS(dur, 200, lk(fd, shared); ulk(fd));
	}
	unlink(path);
	return 0;
}
