#include "failpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

unsigned char ipc_failpoint_off;

/* The slow path: until the environment has been read, and in a process
 * where a point is armed. */
void ipc_failpoint_check(const char *name)
{
	const char *armed = getenv("IPCSH_FAILPOINT");
	if (!armed || !*armed) {
		__atomic_store_n(&ipc_failpoint_off, 1, __ATOMIC_RELAXED);
		return;
	}
	if (strcmp(armed, name) == 0)
		raise(SIGKILL);
}
