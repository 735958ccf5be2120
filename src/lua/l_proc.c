/* Processes and time: ipc.pid, ipc.sleep, ipc.clock.
 * (fork/spawn/wait/kill are added by the process-helpers work.) */
#include "../core/common.h"
#include "../core/procid.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <errno.h>
#include <math.h>

static int l_pid(lua_State *L)
{
	lua_pushinteger(L, ipc_self_pid());
	return 1;
}

static int l_clock(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)ipc_now_ns() / 1e6);
	return 1;
}

/* ipc.sleep(ms): returns true; raises "interrupted" on SIGINT/TERM/HUP. */
static int l_sleep(lua_State *L)
{
	lua_Number ms = luaL_checknumber(L, 1);
	if (isnan(ms) || ms < 0)
		return luaL_argerror(L, 1, "sleep time must be a non-negative number of milliseconds");
	unsigned snap = ipc_signal_count();
	ipc_signals_install();
	ipc_deadline dl = ipc_deadline_in(ms);
	for (;;) {
		int64_t left = ipc_deadline_left(&dl);
		if (left <= 0)
			break;
		if (ipc_signal_count() != snap)
			return luaL_error(L, "interrupted");
		struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
		ipc_wait_enter();
		nanosleep(&ts, NULL);
		ipc_wait_leave();
	}
	lua_pushboolean(L, 1);
	return 1;
}

void ipcl_open_proc(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"pid", l_pid}, {"clock", l_clock}, {"sleep", l_sleep}, {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
}
