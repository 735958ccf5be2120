/* A command-line driver of libipcsh for spec/capi_spec.lua: each command
 * runs one call (or one scripted sequence) and prints the result as a line
 * the spec parses.
 *
 *   capi_test lock NAME TIMEOUT_MS        -> OK|TIMEOUT|ERR CODE MSG, then ms
 *   capi_test hold NAME READYFILE         lock, create READYFILE, sleep
 *   capi_test sem-post NAME N | sem-wait NAME TIMEOUT_MS | sem-value NAME
 *   capi_test send NAME PRIO MSG [TIMEOUT_MS]
 *   capi_test recv NAME CAP TIMEOUT_MS    -> OK PRIO LEN MSG | TIMEOUT | ERR..
 *   capi_test remove NAME
 *   capi_test sigwait NAME FILE           semaphore wait (forever) with a
 *                                         SIGUSR1 handler that appends "s" to
 *                                         FILE; then appends the result
 *   capi_test selftest NAME               in-process checks; "selftest ok"
 * Exit status 0 unless the arguments were bad or a selftest check failed. */
#include <ipcsh.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_result(int r, const ipcsh_error *e)
{
	if (r == IPCSH_OK)
		printf("OK");
	else if (r == IPCSH_TIMEOUT)
		printf("TIMEOUT");
	else
		printf("ERR %d %s", e->code, e->message);
}

static int failures;
static int sigfd = -1;

static void on_usr1(int sig)
{
	(void)sig;
	if (write(sigfd, "s", 1) != 1)
		_exit(3);
}

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAILED line %d: %s (%d: %s)\n", __LINE__, #cond, e.code,           \
			       e.message);                                                         \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

/* Everything that needs no second process. */
static int selftest(const char *base)
{
	ipcsh_error e = {0, ""};
	char name[300];

	/* bad input: clear errors naming the function, never a crash */
	CHECK(ipcsh_mutex_open("9bad", NULL, &e) == NULL && e.code == EINVAL);
	CHECK(strncmp(e.message, "ipcsh_mutex_open: ", 18) == 0);
	CHECK(ipcsh_mutex_open(NULL, NULL, &e) == NULL && e.code == EINVAL);
	CHECK(ipcsh_mutex_lock(NULL, 0, &e) == IPCSH_ERR && e.code == EINVAL);
	CHECK(ipcsh_semaphore_value(NULL) == -1);
	CHECK(ipcsh_remove("no/slash", &e) == IPCSH_ERR && e.code == EINVAL);
	ipcsh_mutex_close(NULL);
	ipcsh_semaphore_close(NULL);
	ipcsh_queue_close(NULL);

	/* mutex: ownership is the process's */
	snprintf(name, sizeof name, "%sM", base);
	ipcsh_mutex_opts mo = {IPCSH_OPEN_EXISTS, 0};
	CHECK(ipcsh_mutex_open(name, &mo, &e) == NULL && e.code == ENOENT);
	mo.assert_mode = IPCSH_OPEN_CREATE;
	ipcsh_mutex *m = ipcsh_mutex_open(name, &mo, &e);
	CHECK(m != NULL);
	if (!m)
		return 1;
	CHECK(ipcsh_mutex_open(name, &mo, &e) == NULL && e.code == EEXIST);
	CHECK(ipcsh_mutex_unlock(m, &e) == IPCSH_ERR && e.code == EPERM);
	CHECK(ipcsh_mutex_lock(m, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_mutex_lock(m, 0, &e) == IPCSH_ERR && e.code == EDEADLK);
	CHECK(ipcsh_mutex_lock_shared(m, -1, &e) == IPCSH_ERR && e.code == EDEADLK);
	/* a forked child does not inherit the lock: it times out */
	pid_t pid = fork();
	if (pid == 0) {
		ipcsh_error ce = {0, ""};
		int cr = ipcsh_mutex_lock(m, 50, &ce);
		if (cr != IPCSH_TIMEOUT)
			printf("child: %d %d %s\n", cr, ce.code, ce.message);
		_exit(cr == IPCSH_TIMEOUT ? 0 : 1);
	}
	int st = -1;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(ipcsh_mutex_unlock(m, &e) == IPCSH_OK);
	CHECK(ipcsh_mutex_lock_shared(m, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_mutex_unlock(m, &e) == IPCSH_OK);
	/* a second handle shares the process's state */
	ipcsh_mutex *m2 = ipcsh_mutex_open(name, NULL, &e);
	CHECK(m2 != NULL);
	CHECK(ipcsh_mutex_lock(m, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_mutex_lock(m2, 0, &e) == IPCSH_ERR && e.code == EDEADLK);
	CHECK(ipcsh_mutex_unlock(m2, &e) == IPCSH_OK);
	ipcsh_mutex_close(m2);
	/* closing the process's last handle releases what it holds */
	CHECK(ipcsh_mutex_lock(m, 0, &e) == IPCSH_OK);
	ipcsh_mutex_close(m);
	m = ipcsh_mutex_open(name, NULL, &e);
	CHECK(m != NULL);
	if (!m)
		return 1;
	CHECK(ipcsh_mutex_lock(m, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_mutex_unlock(m, &e) == IPCSH_OK);
	ipcsh_mutex_close(m);

	/* a name holding another type */
	ipcsh_queue *wrong = ipcsh_queue_open(name, NULL, &e);
	CHECK(wrong == NULL && strstr(e.message, "mutex") && strstr(e.message, "queue"));
	CHECK(ipcsh_remove(name, &e) == IPCSH_OK);
	CHECK(ipcsh_remove(name, &e) == IPCSH_ERR && e.code == ENOENT);

	/* semaphore */
	snprintf(name, sizeof name, "%sS", base);
	ipcsh_semaphore_opts so = {0};
	so.value = 5;
	so.max = 2;
	CHECK(ipcsh_semaphore_open(name, &so, &e) == NULL && e.code == EINVAL);
	so.value = 1;
	so.max = 3;
	ipcsh_semaphore *s = ipcsh_semaphore_open(name, &so, &e);
	CHECK(s != NULL);
	if (!s)
		return 1;
	CHECK(ipcsh_semaphore_value(s) == 1);
	CHECK(ipcsh_semaphore_wait(s, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_semaphore_wait(s, 0, &e) == IPCSH_TIMEOUT);
	CHECK(ipcsh_semaphore_post(s, 0, &e) == IPCSH_ERR && e.code == EINVAL);
	CHECK(ipcsh_semaphore_post(s, 3, &e) == IPCSH_OK);
	CHECK(ipcsh_semaphore_post(s, 1, &e) == IPCSH_ERR && e.code == ERANGE);
	CHECK(ipcsh_semaphore_value(s) == 3);
	ipcsh_semaphore_close(s);
	CHECK(ipcsh_remove(name, &e) == IPCSH_OK);

	/* queue: priorities, sizes, a buffer too small keeps the message */
	snprintf(name, sizeof name, "%sQ", base);
	ipcsh_queue_opts qo = {0};
	qo.max_count = 2;
	qo.max_size = 8;
	ipcsh_queue *q = ipcsh_queue_open(name, &qo, &e);
	CHECK(q != NULL);
	if (!q)
		return 1;
	char buf[16];
	size_t len = 0;
	long long prio = -1;
	CHECK(ipcsh_queue_send(q, "123456789", 9, 0, 0, &e) == IPCSH_ERR && e.code == EMSGSIZE);
	CHECK(ipcsh_queue_send(q, "x", 1, -1, 0, &e) == IPCSH_ERR && e.code == EINVAL);
	CHECK(ipcsh_queue_send(q, "low", 3, 1, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_queue_send(q, "hi\0gh", 5, 7, 0, &e) == IPCSH_OK);
	CHECK(ipcsh_queue_send(q, "full", 4, 0, 0, &e) == IPCSH_TIMEOUT);
	CHECK(ipcsh_queue_receive(q, buf, 2, &len, &prio, 0, &e) == IPCSH_ERR &&
	      e.code == EMSGSIZE && len == 5);
	CHECK(ipcsh_queue_receive(q, buf, 5, &len, &prio, 0, &e) == IPCSH_OK && len == 5 &&
	      prio == 7 && memcmp(buf, "hi\0gh", 5) == 0);
	CHECK(ipcsh_queue_receive(q, buf, sizeof buf, &len, &prio, 0, &e) == IPCSH_OK && len == 3 &&
	      prio == 1 && memcmp(buf, "low", 3) == 0);
	CHECK(ipcsh_queue_receive(q, buf, sizeof buf, &len, &prio, 0, &e) == IPCSH_TIMEOUT);
	ipcsh_queue_close(q);
	CHECK(ipcsh_remove(name, &e) == IPCSH_OK);

	printf(failures ? "selftest FAILED\n" : "selftest ok\n");
	return failures != 0;
}

int main(int argc, char **argv)
{
	ipcsh_error e = {0, ""};
	const char *cmd = argc > 2 ? argv[1] : "";
	const char *name = argc > 2 ? argv[2] : "";
	int r;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (strcmp(cmd, "selftest") == 0)
		return selftest(name);
	if (strcmp(cmd, "lock") == 0 && argc == 4) {
		ipcsh_mutex *m = ipcsh_mutex_open(name, NULL, &e);
		long long t0 = now_ms();
		r = m ? ipcsh_mutex_lock(m, atoll(argv[3]), &e) : IPCSH_ERR;
		long long t1 = now_ms();
		print_result(r, &e);
		printf(" %lld\n", t1 - t0);
		ipcsh_mutex_close(m);
		return 0;
	}
	if (strcmp(cmd, "hold") == 0 && argc == 4) {
		ipcsh_mutex *m = ipcsh_mutex_open(name, NULL, &e);
		if (!m || ipcsh_mutex_lock(m, -1, &e) != IPCSH_OK) {
			printf("ERR %d %s\n", e.code, e.message);
			return 1;
		}
		int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			close(fd);
		for (;;)
			pause(); /* until killed */
	}
	if (strcmp(cmd, "sem-post") == 0 && argc == 4) {
		ipcsh_semaphore *s = ipcsh_semaphore_open(name, NULL, &e);
		r = s ? ipcsh_semaphore_post(s, (unsigned)atoi(argv[3]), &e) : IPCSH_ERR;
		print_result(r, &e);
		printf("\n");
		ipcsh_semaphore_close(s);
		return 0;
	}
	if (strcmp(cmd, "sem-wait") == 0 && argc == 4) {
		ipcsh_semaphore *s = ipcsh_semaphore_open(name, NULL, &e);
		long long t0 = now_ms();
		r = s ? ipcsh_semaphore_wait(s, atoll(argv[3]), &e) : IPCSH_ERR;
		long long t1 = now_ms();
		print_result(r, &e);
		printf(" %lld\n", t1 - t0);
		ipcsh_semaphore_close(s);
		return 0;
	}
	if (strcmp(cmd, "sem-value") == 0 && argc == 3) {
		ipcsh_semaphore *s = ipcsh_semaphore_open(name, NULL, &e);
		printf("%lld\n", ipcsh_semaphore_value(s));
		ipcsh_semaphore_close(s);
		return 0;
	}
	if (strcmp(cmd, "send") == 0 && (argc == 5 || argc == 6)) {
		ipcsh_queue *q = ipcsh_queue_open(name, NULL, &e);
		r = q ? ipcsh_queue_send(q, argv[4], strlen(argv[4]), atoll(argv[3]),
		                         argc == 6 ? atoll(argv[5]) : -1, &e)
		      : IPCSH_ERR;
		print_result(r, &e);
		printf("\n");
		ipcsh_queue_close(q);
		return 0;
	}
	if (strcmp(cmd, "recv") == 0 && argc == 5) {
		ipcsh_queue *q = ipcsh_queue_open(name, NULL, &e);
		size_t cap = (size_t)atoll(argv[3]), len = 0;
		char *buf = malloc(cap ? cap : 1);
		long long prio = 0;
		r = q && buf ? ipcsh_queue_receive(q, buf, cap, &len, &prio, atoll(argv[4]), &e)
		             : IPCSH_ERR;
		print_result(r, &e);
		if (r == IPCSH_OK)
			printf(" %lld %zu %.*s", prio, len, (int)len, buf);
		printf("\n");
		free(buf);
		ipcsh_queue_close(q);
		return 0;
	}
	if (strcmp(cmd, "sigwait") == 0 && argc == 4) {
		ipcsh_semaphore *s = ipcsh_semaphore_open(name, NULL, &e);
		sigfd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND, 0644);
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_usr1; /* no SA_RESTART: the wait sees EINTR */
		sigemptyset(&sa.sa_mask);
		if (!s || sigfd < 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
			return 1;
		r = ipcsh_semaphore_wait(s, -1, &e);
		char line[400];
		int n = snprintf(line, sizeof line, "%s",
		                 r == IPCSH_OK        ? "OK"
		                 : r == IPCSH_TIMEOUT ? "TIMEOUT"
		                                      : e.message);
		if (write(sigfd, line, (size_t)n) != n)
			return 1;
		ipcsh_semaphore_close(s);
		return 0;
	}
	if (strcmp(cmd, "remove") == 0 && argc == 3) {
		print_result(ipcsh_remove(name, &e), &e);
		printf("\n");
		return 0;
	}
	fprintf(stderr, "usage: capi_test selftest|lock|hold|sem-post|sem-wait|sem-value|send|"
	                "recv|remove NAME ...\n");
	return 2;
}
