-- A job queue with priorities: the parent queues jobs, two forked workers
-- take them, most urgent first.  Each job goes to exactly one worker; a
-- worker that crashes inside q:with() gives its job back to the others.
--
--   ipcsh examples/queue.lua
local ipc = require 'interprocess'

local jobs <close> = ipc.queue({ max_count = 16, max_size = 64, cleanup = true })
local done <close> = ipc.queue({ max_count = 16, max_size = 64, cleanup = true })

local function worker(id)
  while true do
    -- with(): the job stays in the queue, in flight, until the function
    -- returns; if this process died meanwhile, another worker would get it
    local ok, stop = jobs:with(function(job, prio)
      if job == 'stop' then return true end
      done:send(('worker %d did %-14s (priority %d)'):format(id, job, prio))
    end)
    if stop then return end
  end
end

-- Queue the jobs before starting the workers, so that the order shows.
for i, job in ipairs({ 'sweep floor', 'reply to mail', 'fix the server', 'water plants' }) do
  local prio = ({ 1, 5, 9, 1 })[i]
  jobs:send(job, prio)
end
for _ = 1, 2 do jobs:send('stop', 0) end -- priority 0: after every real job

local kids = { ipc.fork(worker, 1), ipc.fork(worker, 2) }
for _ = 1, 4 do print((done:receive())) end
for _, k in ipairs(kids) do assert(k:wait() == 0) end
print(('left in the queue: %d'):format(jobs:count()))
