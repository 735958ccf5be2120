/* A C producer feeding a queue that a Lua consumer drains (consumer.lua).
 *
 *   cc -o producer producer.c $(pkg-config --cflags --libs ipcsh)
 *   ./producer jobs 10 & ipcsh consumer.lua jobs
 *
 * Sends COUNT messages "job 1".."job COUNT" (priority 0), then "stop". */
#include <ipcsh.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "jobs";
	int count = argc > 2 ? atoi(argv[2]) : 10;
	ipcsh_error err;
	ipcsh_queue *q = ipcsh_queue_open(name, NULL, &err); /* Lua's defaults */
	if (!q) {
		fprintf(stderr, "producer: %s\n", err.message);
		return 1;
	}
	for (int i = 1; i <= count + 1; i++) {
		char msg[32];
		if (i <= count)
			snprintf(msg, sizeof msg, "job %d", i);
		else
			snprintf(msg, sizeof msg, "stop");
		/* waits while the queue is full: the consumer sets the pace */
		if (ipcsh_queue_send(q, msg, strlen(msg), 0, -1, &err) != IPCSH_OK) {
			fprintf(stderr, "producer: %s\n", err.message);
			ipcsh_queue_close(q);
			return 1;
		}
	}
	ipcsh_queue_close(q);
	return 0;
}
