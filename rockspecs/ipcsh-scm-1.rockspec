-- LuaRocks: builds interprocess.so (the Lua parts are embedded in it) and
-- the ipcsh runner with the project's Makefile.
--   luarocks --lua-version=5.4 make --tree=DIR rockspecs/ipcsh-scm-1.rockspec
rockspec_format = "3.0"
package = "ipcsh"
version = "scm-1"
source = {
   url = "git+file:///dev/null", -- `luarocks make` builds the checked-out tree
}
description = {
   summary = "Crash-safe inter-process objects for Lua 5.4",
   detailed = [[
Shared/exclusive mutexes, semaphores, priority message queues, condition
variables, events, barriers, shared memory, a shared key-value table and pid
files, robust to processes killed at any instant; require "interprocess".
Also installs the ipcsh runner (a lua-compatible interpreter with the module
built in, and a small command line).]],
   license = "unspecified",
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
build = {
   type = "make",
   build_target = "all",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUA_INCDIR = "$(LUA_INCDIR)",
   },
   install_target = "install-lua",
   install_variables = {
      PREFIX = "$(PREFIX)",
      BINDIR = "$(BINDIR)",
      LUA_CMODDIR = "$(LIBDIR)",
   },
}
