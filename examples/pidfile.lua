-- A single-instance daemon.  Run it twice: the second copy reports the
-- first one's pid and exits with status 1.  Kill the first with `kill -9`
-- and the next start takes over at once: ownership is an OFD lock that the
-- kernel drops with its owner, whatever the file still says.  The file is
-- removed when the daemon ends: done, a Lua error, SIGINT, SIGTERM or
-- SIGHUP (only SIGKILL leaves it, for the next start to take over).
--
--   ipcsh examples/pidfile.lua [PIDFILE] [SECONDS]     (default: 3 seconds)
local ipc = require 'interprocess'

local path = arg[1] or '/tmp/ipcsh-example-daemon.pid'
local seconds = tonumber(arg[2]) or 3

-- <close>: the file is removed when the script ends, by error or SIGINT;
-- SIGTERM and SIGHUP remove it too (ipc.pidfile registers it for cleanup).
local pf <close> = ipc.pidfile(path)
local ok, owner = pf:create()
if not ok then
  io.stderr:write(('already running as pid %s (%s)\n'):format(tostring(owner), path))
  os.exit(1)
end

print(('daemon %d owns %s for %d s'):format(ipc.pid(), path, seconds))
io.stdout:flush()
local deadline = ipc.clock() + seconds * 1000
while ipc.clock() < deadline do
  -- the daemon's work goes here
  ipc.sleep(200)
end
print('daemon done')
