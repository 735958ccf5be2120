/* Handles for named objects: constructor, common methods, ipc.list/remove/type. */
#include "object.h"

#include "../core/names.h"
#include "modules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const ipcl_type *types[IPC_T_MAX + 1];

static const char *const common_options[] = {"name", "file", "assert", "cleanup",
                                             "mode", "dir",  NULL};

const ipcl_type *ipcl_find_type(uint32_t id)
{
	return id <= IPC_T_MAX ? types[id] : NULL;
}

/* Lexically normalise path (absolute, no ".", "..", "//"): the file need
 * not exist. */
static void push_normalised_path(lua_State *L, const char *path)
{
	luaL_Buffer b;
	char cwd[4096];
	const char *parts[1024];
	size_t lens[1024];
	int n = 0;
	luaL_buffinit(L, &b);
	const char *src[2] = {NULL, path};
	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof cwd))
			ipcl_error(L, "cannot get the current directory: %s", strerror(errno));
		src[0] = cwd;
	}
	for (int s = 0; s < 2; s++) {
		const char *p = src[s];
		while (p && *p) {
			while (*p == '/')
				p++;
			const char *e = p;
			while (*e && *e != '/')
				e++;
			size_t len = (size_t)(e - p);
			if (len == 0 || (len == 1 && p[0] == '.')) {
				/* skip */
			} else if (len == 2 && p[0] == '.' && p[1] == '.') {
				if (n > 0)
					n--;
			} else {
				if (n == 1024)
					ipcl_error(L, "opts.file: path too deep");
				parts[n] = p;
				lens[n++] = len;
			}
			p = e;
		}
	}
	if (n == 0)
		luaL_addchar(&b, '/');
	for (int i = 0; i < n; i++) {
		luaL_addchar(&b, '/');
		luaL_addlstring(&b, parts[i], lens[i]);
	}
	luaL_pushresult(&b);
}

static int is_known_option(const ipcl_type *t, const char *key)
{
	for (int i = 0; common_options[i]; i++)
		if (strcmp(key, common_options[i]) == 0)
			return 1;
	for (int i = 0; t->options && t->options[i]; i++)
		if (strcmp(key, t->options[i]) == 0)
			return 1;
	return 0;
}

static void push_type_metatable(lua_State *L, const ipcl_type *t)
{
	lua_pushfstring(L, "ipcsh.%s", t->ops->name);
	lua_rawget(L, LUA_REGISTRYINDEX);
}

/* Build the per-object metatable: the type's metamethods, and __index = a
 * table holding `name` and the type's methods (so a method call is one
 * table look-up, no C call). */
static void set_object_metatable(lua_State *L, int ud, const ipcl_type *t, const char *name)
{
	ud = lua_absindex(L, ud);
	lua_newtable(L); /* mt */
	push_type_metatable(L, t);
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -5);
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 16); /* inst: name + the methods, one look-up away */
	push_type_metatable(L, t);
	lua_getfield(L, -1, "__methods_mt");
	lua_getfield(L, -1, "__index");
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -7);
	}
	lua_pop(L, 1);
	lua_setmetatable(L, -3); /* the type's methods stay reachable behind inst */
	lua_pop(L, 1);
	lua_pushstring(L, name);
	lua_setfield(L, -2, "name");
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, ud);
}

/* Open NAME as type t with the given options and push the handle. */
static int open_handle(lua_State *L, const ipcl_type *t, const char *name, const ipc_open_opts *o,
                       ipc_error *err)
{
	ipcl_handle *h = lua_newuserdatauv(L, sizeof(ipcl_handle) + t->extra, 1);
	memset(h, 0, sizeof(ipcl_handle) + t->extra);
	h->magic = IPCL_HANDLE_MAGIC;
	h->type = t;
	set_object_metatable(L, -1, t, name); /* closed state first: __gc is safe */
	int created;
	ipc_segment *seg;
	if (ipc_seg_open(&seg, name, t->ops, o, &created, err) != IPC_OK) {
		lua_pop(L, 1);
		return IPC_ERR;
	}
	h->seg = seg;
	if (t->on_open)
		t->on_open(L, h);
	return IPC_OK;
}

/* "name" for a message: control bytes escaped, at most 60 shown. */
static const char *push_quoted(lua_State *L, const char *s, size_t len)
{
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	luaL_addchar(&b, '"');
	for (size_t i = 0; i < len && i < 60; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 32 || c == 127 || c == '"' || c == '\\') {
			char esc[8];
			snprintf(esc, sizeof esc, "\\%u", c);
			luaL_addstring(&b, esc);
		} else {
			luaL_addchar(&b, (char)c);
		}
	}
	luaL_addstring(&b, len > 60 ? "...\"" : "\"");
	luaL_pushresult(&b);
	return lua_tostring(L, -1);
}

/* The name at idx (a string), valid or a clear error: as argument #idx,
 * or as opts.name when fname is given. */
static const char *check_name(lua_State *L, int idx, const char *fname)
{
	size_t len;
	const char *name = lua_tolstring(L, idx, &len);
	if (ipc_name_valid(name, len) && strlen(name) == len)
		return name;
	const char *q = push_quoted(L, name, len);
	if (fname)
		luaL_error(L, "bad option 'name' to '%s' (invalid name %s: %s)", fname, q,
		           IPC_NAME_RULE);
	ipcl_argerror(L, idx, lua_pushfstring(L, "invalid name %s: %s", q, IPC_NAME_RULE));
	return NULL;
}

static int l_construct(lua_State *L)
{
	const ipcl_type *t = lua_touserdata(L, lua_upvalueindex(1));
	const char *fname = t->ops->name;
	int opts = 0;
	const char *name = NULL;
	char namebuf[IPC_NAME_MAX + 1];
	ipc_open_opts o;
	memset(&o, 0, sizeof o);
	o.mode = 0600;

	if (lua_type(L, 1) == LUA_TTABLE) {
		opts = 1;
		if (!lua_isnoneornil(L, 2))
			ipcl_argerror(L, 2, "nothing expected after the options table");
	} else {
		if (!lua_isnoneornil(L, 1)) {
			if (lua_type(L, 1) != LUA_TSTRING)
				ipcl_typeerror(L, 1, "string (object name) or options table");
			name = check_name(L, 1, NULL);
		}
		if (!lua_isnoneornil(L, 2)) {
			ipcl_checktype(L, 2, LUA_TTABLE);
			opts = 2;
		}
	}
	if (opts) {
		lua_pushnil(L);
		while (lua_next(L, opts)) {
			if (lua_type(L, -2) != LUA_TSTRING)
				luaL_error(L,
				           "bad argument #%d to '%s' (options are named: a %s key "
				           "is not an option)",
				           opts, fname, luaL_typename(L, -2));
			if (!is_known_option(t, lua_tostring(L, -2)))
				luaL_error(L, "bad argument #%d to '%s' (unknown option '%s')",
				           opts, fname, lua_tostring(L, -2));
			lua_pop(L, 1);
		}
		/* R's named-argument style: ipc.queue{name = "jobs", max_count = 5} */
		if (lua_getfield(L, opts, "name") != LUA_TNIL) {
			if (name)
				luaL_error(L,
				           "bad argument #2 to '%s' (the name is given twice, as "
				           "argument #1 and as opts.name)",
				           fname);
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "bad option 'name' to '%s' (string expected, got %s)",
				           fname, luaL_typename(L, -1));
			name = check_name(L, -1, fname); /* the string stays in opts */
		}
		lua_pop(L, 1);
		if (lua_getfield(L, opts, "file") != LUA_TNIL) {
			if (lua_type(L, -1) != LUA_TSTRING)
				luaL_error(L, "bad option 'file' to '%s' (string expected, got %s)",
				           fname, luaL_typename(L, -1));
			if (name)
				luaL_error(
				    L,
				    "bad argument #%d to '%s' (a name and opts.file together: "
				    "give one or the other)",
				    opts, fname);
			push_normalised_path(L, lua_tostring(L, -1));
			size_t len;
			const char *p = lua_tolstring(L, -1, &len);
			ipc_hash_name(p, len, namebuf);
			name = namebuf;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
		if (lua_getfield(L, opts, "assert") != LUA_TNIL) {
			const char *a = lua_tostring(L, -1);
			if (lua_type(L, -1) == LUA_TSTRING && strcmp(a, "create") == 0)
				o.assert_mode = IPC_OPEN_CREATE;
			else if (lua_type(L, -1) == LUA_TSTRING && strcmp(a, "exists") == 0)
				o.assert_mode = IPC_OPEN_EXISTS;
			else
				luaL_error(
				    L,
				    "bad option 'assert' to '%s' (\"create\", \"exists\" or nil "
				    "expected)",
				    fname);
		}
		lua_pop(L, 1);
		o.cleanup = ipcl_opt_bool_field(L, opts, "cleanup", 0, fname);
		o.mode = (unsigned)ipcl_opt_int_field(L, opts, "mode", 0600, 0, 0777, fname);
		/* a shared namespace for this object; the string stays in opts */
		if (lua_getfield(L, opts, "dir") != LUA_TNIL) {
			size_t len = 0;
			if (lua_type(L, -1) == LUA_TSTRING)
				o.dir = lua_tolstring(L, -1, &len);
			if (!o.dir || len == 0 || strlen(o.dir) != len)
				luaL_error(
				    L, "bad option 'dir' to '%s' (directory path expected, got %s)",
				    fname, luaL_typename(L, -1));
		}
		lua_pop(L, 1);
	}
	if (t->parse_opts)
		t->parse_opts(L, opts, o.params, fname);
	if (!name) {
		ipc_uid(namebuf);
		name = namebuf;
	}
	ipc_error err;
	if (open_handle(L, t, name, &o, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	return 1;
}

static int m_close(lua_State *L)
{
	ipcl_handle *h = ipcl_test(L, 1);
	if (!h)
		return ipcl_selferror(L, "ipc object");
	if (h->seg) {
		if (h->type->on_close)
			h->type->on_close(h);
		ipc_seg_release(h->seg);
		h->seg = NULL;
	}
	return 0;
}

static int m_remove(lua_State *L)
{
	ipcl_handle *h = ipcl_test(L, 1);
	if (!h)
		return ipcl_selferror(L, "ipc object");
	ipcl_check(L, 1, h->type);
	ipc_error err;
	int r = ipc_seg_remove(h->seg, &err);
	if (r == IPC_ERR)
		return ipcl_raise(L, &err);
	lua_pushboolean(L, r);
	return 1;
}

static int type_info(lua_State *L)
{
	ipcl_handle *h = lua_touserdata(L, 1);
	h->type->push_info(L, h); /* fills the table at the top */
	return 0;
}

static void push_common_info(lua_State *L, ipcl_handle *h)
{
	ipc_header *hd = h->seg->hdr;
	lua_createtable(L, 0, 8);
	lua_pushstring(L, h->type->ops->name);
	lua_setfield(L, -2, "type");
	lua_pushstring(L, h->seg->name);
	lua_setfield(L, -2, "name");
	lua_pushinteger(L, (lua_Integer)hd->creator_pid);
	lua_setfield(L, -2, "creator_pid");
	lua_pushnumber(L, (lua_Number)hd->created_ns / 1e9);
	lua_setfield(L, -2, "created");
	lua_pushinteger(L, (lua_Integer)hd->total_size);
	lua_setfield(L, -2, "bytes");
	ipc_error err;
	if (ipc_seg_intact(h->seg, &err) != IPC_OK) {
		lua_pushstring(L, err.msg);
		lua_setfield(L, -2, "error");
		return;
	}
	if (!h->type->push_info)
		return;
	/* A busy or corrupt object fails its type's part: info() and ls still
	 * answer, with the reason in `error` (an interrupt still raises). */
	lua_pushcfunction(L, type_info);
	lua_pushlightuserdata(L, h);
	lua_pushvalue(L, -3);
	int st = lua_pcall(L, 2, 0, 0);
	if (st != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		size_t n = msg ? strlen(msg) : 0;
		if (st != LUA_ERRRUN || !msg || (n >= 11 && !strcmp(msg + n - 11, "interrupted")))
			lua_error(L);
		lua_setfield(L, -2, "error");
	}
}

static int m_info(lua_State *L)
{
	ipcl_handle *h = ipcl_test(L, 1);
	if (!h)
		return ipcl_selferror(L, "ipc object");
	ipcl_check(L, 1, h->type);
	push_common_info(L, h);
	return 1;
}

static int m_tostring(lua_State *L)
{
	ipcl_handle *h = ipcl_test(L, 1);
	if (!h)
		return ipcl_selferror(L, "ipc object");
	lua_getfield(L, 1, "name");
	lua_pushfstring(L, "%s \"%s\"%s", h->type->ops->name, lua_tostring(L, -1),
	                h->seg ? "" : " (closed)");
	return 1;
}

void ipcl_register_type(lua_State *L, const ipcl_type *t)
{
	static const luaL_Reg common[] = {
	    {"close", m_close}, {"remove", m_remove}, {"info", m_info}, {NULL, NULL}};
	types[t->ops->id] = t;
	lua_pushfstring(L, "ipcsh.%s", t->ops->name);
	if (luaL_newmetatable(L, lua_tostring(L, -1))) {
		lua_pushstring(L, t->ops->name);
		lua_setfield(L, -2, "__name");
		lua_pushcfunction(L, m_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, m_close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, m_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	/* methods: rebuilt on every load (luaopen must be idempotent) */
	lua_createtable(L, 0, 16);
	luaL_setfuncs(L, common, 0);
	if (t->methods)
		luaL_setfuncs(L, t->methods, 0);
	lua_createtable(L, 0, 1);
	lua_insert(L, -2);
	lua_setfield(L, -2, "__index");
	lua_setfield(L, -2, "__methods_mt");
	lua_pop(L, 2);
	lua_pushlightuserdata(L, (void *)t);
	lua_pushcclosure(L, l_construct, 1);
	lua_setfield(L, -2, t->ops->name);
}

/* ipc.open(name): open an existing object of whatever type it is. */
static int l_open(lua_State *L)
{
	ipcl_checklstring(L, 1, NULL);
	const char *name = check_name(L, 1, NULL);
	ipc_error err;
	ipc_header hd;
	if (ipc_seg_peek(name, &hd, &err) != IPC_OK) {
		if (err.code == ENOENT)
			return ipcl_error(L, "no object named \"%s\"", name);
		return ipcl_raise(L, &err);
	}
	const ipcl_type *t = ipcl_find_type(hd.type);
	if (!t)
		return ipcl_error(L, "\"%s\": type %s is not supported by this build", name,
		                  ipc_type_name(hd.type));
	ipc_open_opts o;
	memset(&o, 0, sizeof o);
	o.assert_mode = IPC_OPEN_EXISTS;
	if (open_handle(L, t, name, &o, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	return 1;
}

static void collect_name(const char *name, void *ud)
{
	lua_State *L = ud;
	lua_pushstring(L, name);
	lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* ipc.list(): info() of every object this user can open; an object that
 * cannot be read as a valid object is listed with type "invalid" and its
 * error. */
static int l_list(lua_State *L)
{
	ipc_error err;
	lua_newtable(L);
	if (ipc_seg_list(collect_name, L, &err) != IPC_OK)
		return ipcl_raise(L, &err);
	lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
	lua_createtable(L, (int)n, 0);
	int out = lua_gettop(L);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, out - 1, i);
		const char *name = lua_tostring(L, -1);
		ipc_header hd;
		const ipcl_type *t = NULL;
		int r = ipc_seg_peek(name, &hd, &err);
		if (r == IPC_OK && !(t = ipcl_find_type(hd.type)))
			r = ipc_fail(&err, 0, "unsupported type");
		if (r == IPC_OK) {
			ipc_open_opts o;
			memset(&o, 0, sizeof o);
			o.assert_mode = IPC_OPEN_EXISTS;
			r = open_handle(L, t, name, &o, &err);
			if (r == IPC_OK) {
				ipcl_handle *h = lua_touserdata(L, -1);
				push_common_info(L, h);
				lua_rawseti(L, out, (lua_Integer)lua_rawlen(L, out) + 1);
				lua_pushcfunction(L, m_close);
				lua_insert(L, -2);
				lua_call(L, 1, 0);
			}
		}
		if (r != IPC_OK && err.code != ENOENT && err.code != EACCES && err.code != EPERM) {
			lua_createtable(L, 0, 3);
			lua_pushstring(L, "invalid");
			lua_setfield(L, -2, "type");
			lua_pushstring(L, name);
			lua_setfield(L, -2, "name");
			lua_pushstring(L, err.msg);
			lua_setfield(L, -2, "error");
			lua_rawseti(L, out, (lua_Integer)lua_rawlen(L, out) + 1);
		}
		lua_pop(L, 1);
	}
	return 1;
}

static int l_remove(lua_State *L)
{
	ipcl_checklstring(L, 1, NULL);
	const char *name = check_name(L, 1, NULL);
	ipc_error err;
	int r = ipc_seg_unlink(name, &err);
	if (r == IPC_ERR)
		return ipcl_raise(L, &err);
	lua_pushboolean(L, r);
	return 1;
}

static int l_type(lua_State *L)
{
	ipcl_checkany(L, 1);
	ipcl_handle *h = ipcl_test(L, 1);
	if (!h) {
		h = lua_touserdata(L, 1);
		if (h && lua_rawlen(L, 1) >= sizeof(ipcl_handle) && h->magic == IPCL_UDATA_MAGIC) {
			/* pidfile, process...: the udata type holds its name */
			const ipcl_udata_type *ut = (const ipcl_udata_type *)(const void *)h->type;
			lua_pushstring(L, ut->name);
			return 1;
		}
		/* remote objects (tables, lua/interprocess/net*.lua) name
		 * themselves: a function names the object it is given */
		if (lua_getmetatable(L, 1)) {
			lua_getfield(L, -1, "__ipc_type");
			if (lua_type(L, -1) == LUA_TFUNCTION) {
				lua_pushvalue(L, 1);
				lua_call(L, 1, 1);
			}
			if (lua_type(L, -1) == LUA_TSTRING)
				return 1;
		}
		lua_pushnil(L);
		return 1;
	}
	if (h->seg)
		lua_pushstring(L, h->type->ops->name);
	else
		lua_pushfstring(L, "closed %s", h->type->ops->name);
	return 1;
}

static int l_uid(lua_State *L)
{
	char buf[12];
	ipc_uid(buf);
	lua_pushstring(L, buf);
	return 1;
}

static int l_hash(lua_State *L)
{
	size_t len;
	const char *s = ipcl_checklstring(L, 1, &len);
	char buf[12];
	ipc_hash_name(s, len, buf);
	lua_pushstring(L, buf);
	return 1;
}

static int l_valid_name(lua_State *L)
{
	size_t len;
	const char *s = lua_tolstring(L, 1, &len);
	lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && ipc_name_valid(s, len) &&
	                       strlen(s) == len);
	return 1;
}

static int l_dir(lua_State *L)
{
	lua_pushstring(L, ipc_dir());
	return 1;
}

void ipcl_open_object(lua_State *L)
{
	static const luaL_Reg fns[] = {{"list", l_list},
	                               {"remove", l_remove},
	                               {"open", l_open},
	                               {"type", l_type},
	                               {"uid", l_uid},
	                               {"hash", l_hash},
	                               {"valid_name", l_valid_name},
	                               {"dir", l_dir},
	                               {"namespace", l_dir},
	                               {NULL, NULL}};
	luaL_setfuncs(L, fns, 0);
}
