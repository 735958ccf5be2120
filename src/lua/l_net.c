/* ipc.connect: the remote objects on PostgreSQL.  This file binds one
 * connection (src/core/pg.c) as a small userdata; the objects themselves
 * are written in Lua on top of it (lua/interprocess/net.lua). */
#include "../core/pg.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef IPCSH_WITH_PG

typedef struct lconn {
	ipc_pg *pg; /* NULL once closed */
	int nprep;  /* prepared statements so far (uservalue 1: sql -> name) */
} lconn;

static const ipcl_udata_type conn_type;

static ipc_pg *check_conn(lua_State *L)
{
	lconn *c = ipcl_check_udata(L, 1, &conn_type);
	if (!c->pg)
		luaL_error(L, "attempt to use a closed PostgreSQL connection");
	return c->pg;
}

/* Parameter type letters -> oids (all sent in binary format). */
static unsigned type_oid(char t)
{
	switch (t) {
	case 'i':
		return 20; /* int8 */
	case 't':
		return 25; /* text */
	case 'b':
		return 17; /* bytea */
	case 'B':
		return 16; /* bool */
	case 'f':
		return 701; /* float8 */
	default:
		return 0;
	}
}

static void be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t rd_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static void push_value(lua_State *L, PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col)) {
		lua_pushnil(L);
		return;
	}
	const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	switch (PQftype(r, col)) {
	case 20:
		if (len == 8) {
			lua_pushinteger(L, (lua_Integer)rd_be(v, 8));
			return;
		}
		break;
	case 23:
	case 26:
		if (len == 4) {
			lua_pushinteger(L, (lua_Integer)(int32_t)(uint32_t)rd_be(v, 4));
			return;
		}
		break;
	case 21:
		if (len == 2) {
			lua_pushinteger(L, (lua_Integer)(int16_t)(uint16_t)rd_be(v, 2));
			return;
		}
		break;
	case 16:
		if (len == 1) {
			lua_pushboolean(L, v[0] != 0);
			return;
		}
		break;
	case 701:
		if (len == 8) {
			uint64_t u = rd_be(v, 8);
			double d;
			memcpy(&d, &u, sizeof d);
			lua_pushnumber(L, d);
			return;
		}
		break;
	default:
		break;
	}
	lua_pushlstring(L, (const char *)v, (size_t)len);
}

/* exec(timeout_ms|nil, sql, types, ...) -> rows (array of arrays),
 * affected count; or false on timeout. */
static int c_exec(lua_State *L)
{
	ipc_pg *pg = check_conn(L);
	ipc_deadline dl = ipcl_opt_timeout(L, 2);
	const char *sql = luaL_checkstring(L, 3);
	size_t nt;
	const char *types = luaL_optlstring(L, 4, "", &nt);
	if (nt > 32)
		return luaL_error(L, "too many query parameters");
	unsigned oids[32];
	const char *vals[32];
	int lens[32];
	unsigned char nums[32][8];
	for (size_t i = 0; i < nt; i++) {
		int idx = 5 + (int)i;
		oids[i] = type_oid(types[i]);
		if (lua_isnoneornil(L, idx)) {
			vals[i] = NULL;
			lens[i] = 0;
			continue;
		}
		switch (types[i]) {
		case 'i':
			be64(nums[i], (uint64_t)luaL_checkinteger(L, idx));
			break;
		case 'f': {
			double d = luaL_checknumber(L, idx);
			uint64_t u;
			memcpy(&u, &d, sizeof u);
			be64(nums[i], u);
			break;
		}
		case 'B':
			nums[i][0] = (unsigned char)lua_toboolean(L, idx);
			break;
		case 't':
		case 'b': {
			size_t l;
			vals[i] = luaL_checklstring(L, idx, &l);
			if (l > 0x7fffffff)
				return luaL_error(L, "query parameter too long");
			lens[i] = (int)l;
			continue;
		}
		default:
			return luaL_error(L, "bad query parameter type '%c'", types[i]);
		}
		vals[i] = (const char *)nums[i];
		lens[i] = types[i] == 'B' ? 1 : 8;
	}
	/* Every statement text is prepared once per connection (planning costs
	 * more than running most of ours). */
	lconn *lc = ipcl_test_udata(L, 1, &conn_type); /* checked above */
	unsigned snap = ipc_signal_count();
	ipc_error err = {0};
	lua_getiuservalue(L, 1, 1);
	lua_pushvalue(L, 3);
	if (lua_rawget(L, -2) != LUA_TSTRING) {
		lua_pop(L, 1);
		lua_pushfstring(L, "ipcsh_%d", lc->nprep + 1);
		int r = ipc_pg_prepare(pg, lua_tostring(L, -1), sql, (int)nt, oids, snap, &err);
		if (r == IPC_INTERRUPTED)
			return luaL_error(L, "interrupted");
		if (r != IPC_OK)
			return luaL_error(L, "%s", err.msg);
		lc->nprep++;
		lua_pushvalue(L, 3);
		lua_pushvalue(L, -2);
		lua_rawset(L, -4);
	}
	const char *stmt = lua_tostring(L, -1);
	PGresult *res = NULL;
	int r = ipc_pg_exec(pg, sql, stmt, (int)nt, oids, vals, lens, &res, dl, snap, &err);
	if (r == IPC_INTERRUPTED)
		return luaL_error(L, "interrupted");
	if (r == IPC_TIMEOUT) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (r != IPC_OK)
		return luaL_error(L, "%s", err.msg);
	int nrows = res ? PQntuples(res) : 0, ncols = res ? PQnfields(res) : 0;
	lua_createtable(L, nrows, 0);
	for (int i = 0; i < nrows; i++) {
		lua_createtable(L, ncols, 0);
		for (int j = 0; j < ncols; j++) {
			push_value(L, res, i, j);
			lua_rawseti(L, -2, j + 1);
		}
		lua_rawseti(L, -2, i + 1);
	}
	const char *aff = res ? PQcmdTuples(res) : "";
	lua_pushinteger(L, aff && *aff ? strtoll(aff, NULL, 10) : 0);
	if (res)
		PQclear(res);
	return 2;
}

/* script(sql): constant SQL only (several statements allowed). */
static int c_script(lua_State *L)
{
	ipc_pg *pg = check_conn(L);
	ipc_error err = {0};
	if (ipc_pg_script(pg, luaL_checkstring(L, 2), &err) != IPC_OK)
		return luaL_error(L, "%s", err.msg);
	return 0;
}

/* wait_notify(timeout_ms|nil) -> channel, payload; nil on timeout. */
static int c_wait_notify(lua_State *L)
{
	ipc_pg *pg = check_conn(L);
	ipc_deadline dl = ipcl_opt_timeout(L, 2);
	PGnotify *n = NULL;
	ipc_error err = {0};
	int r = ipc_pg_wait_notify(pg, &n, dl, ipc_signal_count(), &err);
	if (r == IPC_INTERRUPTED)
		return luaL_error(L, "interrupted");
	if (r == IPC_TIMEOUT) {
		lua_pushnil(L);
		return 1;
	}
	if (r != IPC_OK)
		return luaL_error(L, "%s", err.msg);
	lua_pushstring(L, n->relname);
	lua_pushstring(L, n->extra);
	PQfreemem(n);
	return 2;
}

/* alive() -> true, or false once the connection is known to be lost. */
static int c_alive(lua_State *L)
{
	lconn *c = ipcl_check_udata(L, 1, &conn_type);
	lua_pushboolean(L, c->pg && ipc_pg_alive(c->pg));
	return 1;
}

/* backend_pid(), for tests and info. */
static int c_backend_pid(lua_State *L)
{
	ipc_pg *pg = check_conn(L);
	lua_pushinteger(L, PQbackendPID(pg->conn));
	return 1;
}

static int c_close(lua_State *L)
{
	lconn *c = ipcl_check_udata(L, 1, &conn_type);
	if (c->pg) {
		ipc_pg_close(c->pg);
		c->pg = NULL;
	}
	return 0;
}

static const luaL_Reg conn_methods[] = {
    {"exec", c_exec},   {"script", c_script},           {"wait_notify", c_wait_notify},
    {"alive", c_alive}, {"backend_pid", c_backend_pid}, {"close", c_close},
    {NULL, NULL}};

/* raw_connect(conninfo, bound_s) -> connection (net.lua's factory: it is
 * also what net.reconnect() calls). */
static int raw_connect(lua_State *L)
{
	const char *url = luaL_checkstring(L, 1);
	lua_Integer bound = luaL_checkinteger(L, 2);
	lconn *c = ipcl_new_udata(L, &conn_type, 1); /* closed (pg NULL) before connecting */
	lua_newtable(L);
	lua_setiuservalue(L, -2, 1);
	char app[64];
	snprintf(app, sizeof app, "ipcsh:%ld", (long)getpid());
	ipc_error err = {0};
	c->pg = ipc_pg_connect(url, app, (int)bound, &err);
	if (!c->pg) {
		lua_pushnil(L);
		lua_pushstring(L, err.msg);
		return 2;
	}
	return 1;
}

/* ipc.connect([conninfo] [, opts]) -> namespace (lua/interprocess/net.lua) */
static int net_connect(lua_State *L)
{
	int top = lua_gettop(L);
	const char *url = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
	if ((!url || !*url) && lua_isnoneornil(L, 1))
		url = getenv("IPCSH_DATABASE_URL");
	if (lua_type(L, 1) == LUA_TTABLE && top == 1) /* ipc.connect(opts) */
		url = getenv("IPCSH_DATABASE_URL");
	if (!url || !*url)
		return luaL_argerror(L, 1,
		                     "a PostgreSQL URL or keyword string (or set "
		                     "IPCSH_DATABASE_URL)");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "interprocess.net");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "connect");
	lua_pushcfunction(L, raw_connect);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushstring(L, url);
	if (lua_type(L, 1) == LUA_TTABLE && top == 1)
		lua_pushvalue(L, 1);
	else if (top >= 2)
		lua_pushvalue(L, 2);
	else
		lua_pushnil(L);
	lua_call(L, 4, 1);
	return 1;
}

static const luaL_Reg conn_meta[] = {{"__gc", c_close}, {"__close", c_close}, {NULL, NULL}};
static const ipcl_udata_type conn_type = {
    {NULL, conn_methods, NULL, NULL, NULL, sizeof(lconn), NULL, NULL},
    "connection",
    conn_meta,
    NULL};

void ipcl_open_net(lua_State *L)
{
	ipcl_register_udata(L, &conn_type);
	lua_pushvalue(L, -1);
	lua_pushcclosure(L, net_connect, 1);
	lua_setfield(L, -2, "connect");
}

#else

static int net_connect(lua_State *L)
{
	return luaL_error(L, "ipc.connect: ipcsh was built without PostgreSQL support");
}

void ipcl_open_net(lua_State *L)
{
	lua_pushcfunction(L, net_connect);
	lua_setfield(L, -2, "connect");
}

#endif
