-- `ipcsh --db URL setup [--apply] ROLE...`: print (or, with --apply, run)
-- the GRANTs each role needs to use the remote objects.  Connecting as
-- URL already created schema ipcsh when it was missing (that role needs
-- CREATE on the database: run setup as the database owner).
local net = require 'interprocess.net'

return function(ns, args)
  if type(ns) ~= 'table' or not ns._ns then
    error('needs a database: ipcsh --db URL setup [--apply] ROLE...', 0)
  end
  local apply, roles = false, {}
  for _, a in ipairs(args) do
    if a == '--apply' then
      apply = true
    elseif a:sub(1, 1) == '-' then
      error(("unknown option '%s' (usage: ipcsh --db URL setup [--apply] ROLE...)"):format(a), 0)
    else
      roles[#roles + 1] = a
    end
  end
  if #roles == 0 then error('no role given (usage: ipcsh --db URL setup [--apply] ROLE...)', 0) end
  for _, r in ipairs(roles) do
    local sql = net.grants(r)
    if apply then
      local ok, err = pcall(ns._ns._conn.script, ns._ns._conn, sql)
      if not ok then error(('role "%s": %s'):format(r, tostring(err)), 0) end
      io.write(('-- granted to "%s"\n'):format(r))
    end
    io.write(sql)
  end
  return 0
end
