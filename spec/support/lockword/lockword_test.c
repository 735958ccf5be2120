/* Driver of spec/lockword_spec.lua: the lock word's robust-list linking
 * seen from a C program of libipcsh.
 *
 *   lockword_test exec NAME READYFILE   lock the mutex, then exec
 *                                       sh -c 'touch READYFILE; sleep 60':
 *                                       the kernel must release it at exec
 *   lockword_test mixed NAME            a child interleaves glibc robust
 *                                       mutexes with ours (glibc links and
 *                                       unlinks its own entries next to
 *                                       ours), then dies by SIGKILL; prints
 *                                       what the parent finds: every lock
 *                                       the child held is released
 *   lockword_test threadfork NAME       the main thread locks and unlocks;
 *                                       a second thread that never locked
 *                                       forks, and the child locks: prints
 *                                       the child's result
 * Exit status 0 unless the arguments were bad or a step failed. */
#include <ipcsh.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void robust_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
}

static int mixed(const char *name)
{
	char name2[200];
	snprintf(name2, sizeof name2, "%s2", name);
	pthread_mutex_t *g =
	    mmap(NULL, 4 * sizeof *g, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED)
		return 1;
	for (int i = 0; i < 4; i++)
		robust_init(&g[i]);
	ipcsh_error e;
	pid_t pid = fork();
	if (pid == 0) {
		ipcsh_mutex *a = ipcsh_mutex_open(name, NULL, &e);
		ipcsh_mutex *b = ipcsh_mutex_open(name2, NULL, &e);
		if (!a || !b)
			_exit(3);
		/* list (newest first) after each step: g0; a g0; g1 a g0; b g1 a g0 */
		pthread_mutex_lock(&g[0]);
		if (ipcsh_mutex_lock(a, -1, &e) != IPCSH_OK)
			_exit(4);
		pthread_mutex_lock(&g[1]);
		if (ipcsh_mutex_lock(b, -1, &e) != IPCSH_OK)
			_exit(5);
		pthread_mutex_unlock(&g[0]); /* glibc unlinks from the tail, past ours */
		ipcsh_mutex_unlock(b, &e);   /* ours from the head */
		pthread_mutex_lock(&g[2]);
		if (ipcsh_mutex_lock(b, -1, &e) != IPCSH_OK)
			_exit(6);
		pthread_mutex_unlock(&g[1]); /* glibc from the middle */
		pthread_mutex_lock(&g[3]);
		raise(SIGKILL); /* held: b g2 a + g3 */
		_exit(7);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
		printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return 1;
	}
	ipcsh_mutex *a = ipcsh_mutex_open(name, NULL, &e);
	ipcsh_mutex *b = ipcsh_mutex_open(name2, NULL, &e);
	int ra = a ? ipcsh_mutex_lock(a, 1000, &e) : IPCSH_ERR;
	int rb = b ? ipcsh_mutex_lock(b, 1000, &e) : IPCSH_ERR;
	printf("ours %s %s glibc", ra == IPCSH_OK ? "released" : "HELD",
	       rb == IPCSH_OK ? "released" : "HELD");
	for (int i = 0; i < 4; i++) {
		int r = pthread_mutex_trylock(&g[i]);
		printf(" %s", r == EOWNERDEAD ? "ownerdead" : r == 0 ? "free" : strerror(r));
	}
	printf("\n");
	ipcsh_mutex_unlock(a, &e);
	ipcsh_mutex_unlock(b, &e);
	ipcsh_mutex_close(a);
	ipcsh_mutex_close(b);
	return 0;
}

static const char *fork_name;

static void *fork_thread(void *arg)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0) {
		ipcsh_error e;
		ipcsh_mutex *m = ipcsh_mutex_open(fork_name, NULL, &e);
		int r = m ? ipcsh_mutex_lock(m, 1000, &e) : IPCSH_ERR;
		if (r == IPCSH_OK)
			r = ipcsh_mutex_unlock(m, &e);
		_exit(r == IPCSH_OK ? 0 : 3);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (WIFEXITED(st))
		printf("child exit %d\n", WEXITSTATUS(st));
	else
		printf("child signal %d\n", WTERMSIG(st));
	return NULL;
}

static int threadfork(const char *name)
{
	ipcsh_error e;
	ipcsh_mutex *m = ipcsh_mutex_open(name, NULL, &e);
	if (!m || ipcsh_mutex_lock(m, -1, &e) != IPCSH_OK || ipcsh_mutex_unlock(m, &e) != IPCSH_OK)
		return 1;
	fork_name = name;
	pthread_t t;
	if (pthread_create(&t, NULL, fork_thread, NULL))
		return 1;
	pthread_join(t, NULL);
	ipcsh_mutex_close(m);
	return 0;
}

int main(int argc, char **argv)
{
	ipcsh_error e = {0, ""};
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 4 && strcmp(argv[1], "exec") == 0) {
		ipcsh_mutex *m = ipcsh_mutex_open(argv[2], NULL, &e);
		if (!m || ipcsh_mutex_lock(m, -1, &e) != IPCSH_OK) {
			printf("ERR %d %s\n", e.code, e.message);
			return 1;
		}
		char script[4200];
		snprintf(script, sizeof script, "touch '%s'; exec sleep 60", argv[3]);
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		return 1;
	}
	if (argc == 3 && strcmp(argv[1], "mixed") == 0)
		return mixed(argv[2]);
	if (argc == 3 && strcmp(argv[1], "threadfork") == 0)
		return threadfork(argv[2]);
	fprintf(stderr,
	        "usage: lockword_test exec NAME READYFILE | mixed NAME | threadfork NAME\n");
	return 2;
}
