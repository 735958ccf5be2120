/* Start-up time of a command: fork + exec + wait, N times; prints the median
 * wall time per run as "ns X" (and "pct" lines for the spread).
 *   spawntime N CMD [ARGS...] */
#include "bench.h"

#include <fcntl.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: spawntime N CMD [ARGS...]\n");
		return 2;
	}
	long n = atol(argv[1]);
	double *t = malloc(sizeof(double) * (size_t)n);
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			int fd = open("/dev/null", O_RDWR);
			dup2(fd, 0);
			dup2(fd, 1);
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		int st;
		waitpid(pid, &st, 0);
		t[i] = (double)(now_ns() - t0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			printf("skip %s exited with status %d\n", argv[2], WEXITSTATUS(st));
			return 0;
		}
	}
	qsort(t, (size_t)n, sizeof *t, cmp_double);
	printf("ns %.0f\n", t[n / 2]);
	return 0;
}
