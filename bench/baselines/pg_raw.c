/* Baseline for bench/pg_bench.lua: the same work in plain C over libpq,
 * with nothing of ours in between.
 *   pg_raw URL SECONDS -> two lines: "lock_pairs_per_s N", "queue_msgs_per_s N"
 * lock: SELECT pg_advisory_lock / pg_advisory_unlock, one round trip each.
 * queue: INSERT one row, then DELETE ... FOR UPDATE SKIP LOCKED RETURNING. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run(PGconn *c, const char *sql, int n, const char *const *vals, ExecStatusType want)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != want) {
		fprintf(stderr, "pg_raw: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pg_raw URL SECONDS\n");
		return 2;
	}
	double secs = atof(argv[2]);
	PGconn *c = PQconnectdb(argv[1]);
	PQsetNoticeProcessor(c, quiet, NULL);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "pg_raw: %s", PQerrorMessage(c));
		return 1;
	}
	const char *key[] = {"4242"};
	long n = 0;
	double t0 = now(), t;
	do {
		for (int i = 0; i < 100; i++, n++) {
			run(c, "SELECT pg_advisory_lock(1, $1::int)", 1, key, PGRES_TUPLES_OK);
			run(c, "SELECT pg_advisory_unlock(1, $1::int)", 1, key, PGRES_TUPLES_OK);
		}
	} while ((t = now() - t0) < secs);
	printf("lock_pairs_per_s %.0f\n", (double)n / t);

	/* a logged table, like ours (a TEMP table would skip the WAL) */
	run(c, "DROP TABLE IF EXISTS pg_raw_q", 0, NULL, PGRES_COMMAND_OK);
	run(c,
	    "CREATE TABLE pg_raw_q (id bigserial PRIMARY KEY, prio int NOT NULL, body bytea NOT "
	    "NULL)",
	    0, NULL, PGRES_COMMAND_OK);
	run(c, "CREATE INDEX ON pg_raw_q (prio DESC, id)", 0, NULL, PGRES_COMMAND_OK);
	const char *msg[] = {"a message of some 32 bytes......"};
	n = 0;
	t0 = now();
	do {
		for (int i = 0; i < 100; i++, n++) {
			run(c, "INSERT INTO pg_raw_q (prio, body) VALUES (0, $1::bytea)", 1, msg,
			    PGRES_COMMAND_OK);
			run(c,
			    "DELETE FROM pg_raw_q WHERE id = (SELECT id FROM pg_raw_q ORDER BY "
			    "prio DESC, id "
			    "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING body",
			    0, NULL, PGRES_TUPLES_OK);
		}
	} while ((t = now() - t0) < secs);
	printf("queue_msgs_per_s %.0f\n", (double)n / t);
	run(c, "DROP TABLE pg_raw_q", 0, NULL, PGRES_COMMAND_OK);
	PQfinish(c);
	return 0;
}
