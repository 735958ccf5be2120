-- `ipcsh top`: rates measured from the objects' counters while a child
-- keeps a known pace, the JSON and plain one-frame outputs, bad arguments,
-- and the interactive mode on a real terminal (tmux): it draws, `q` quits,
-- and the terminal settings are restored.
local H = require 'spec.helper'
local ipc = H.ipc

local function top(args)
  return H.sh(H.quote(H.bin) .. ' top ' .. args)
end

describe('ipcsh top', function()
  -- a child that sends (and receives) PACE messages per second and locks
  -- the mutex PACE times per second at most, on a schedule
  local PACE = 200
  local q, m, child
  before_each(function()
    q = ipc.queue(H.name('Qtop'), { cleanup = true })
    m = ipc.mutex(H.name('Mtop'), { cleanup = true })
    child = H.spawn([[
      local _, qn, mn, pace = ...
      local q, m = ipc.queue(qn), ipc.mutex(mn)
      pace = tonumber(pace)
      ready()
      local due = ipc.clock()
      while true do
        local now = ipc.clock()
        if now < due then ipc.sleep(due - now) end
        q:send('x') q:receive()
        m:lock() m:unlock()
        -- never faster than the pace: when late, no catching up in a burst
        due = math.max(due, now - 1000 / pace) + 1000 / pace
      end
    ]], q.name, m.name, tostring(PACE))
    assert.truthy(child:wait_ready())
    H.sleep(200)
  end)
  after_each(function()
    child:kill(9)
    child:wait()
    q:remove() q:close()
    m:remove() m:close()
  end)

  it('--once --json: rates of a paced sender within generous bounds', function()
    local st, out, err = top('--once --json --interval 1000 ' .. H.quote('?top*'))
    assert.equal(0, st, err)
    -- valid JSON (python3 reads it back), one object per matching name
    local f = H.tmpname('topjson')
    H.write_file(f, out)
    local pst, pout = H.sh('python3 -c ' .. H.quote('import json,sys; d=json.load(open(sys.argv[1])); ' ..
      'print(" ".join(sorted(o["name"] for o in d)))') .. ' ' .. H.quote(f))
    os.remove(f)
    assert.equal(0, pst, out)
    assert.truthy(pout:find(q.name, 1, true), pout)
    local function field(name, key)
      for b in out:gmatch('%b{}') do
        if b:find('"name": "' .. name .. '"', 1, true) then
          return tonumber(b:match('"' .. key .. '": ([%d%.e%+%-]+)'))
        end
      end
    end
    local sent, recv = field(q.name, 'sent_per_s'), field(q.name, 'received_per_s')
    local locks = field(m.name, 'exclusive_per_s')
    assert.is_number(sent, out)
    assert.is_number(locks, out)
    -- paced at 200/s; a loaded machine may fall behind, never get ahead
    assert.is_true(sent > 40 and sent < 260, 'sent_per_s ' .. tostring(sent))
    assert.is_true(recv > 40 and recv < 260, 'received_per_s ' .. tostring(recv))
    assert.is_true(locks > 40 and locks < 260, 'exclusive_per_s ' .. tostring(locks))
  end)

  it('--once: one plain frame with the rates', function()
    local st, out, err = top('--once --interval 700')
    assert.equal(0, st, err)
    assert.matches('^NAME%s+TYPE%s+STATE%s+HOLDERS%s+WAITERS%s+DEPTH%s+RATES\n', out)
    local line = out:match('\n(' .. q.name .. ' [^\n]*)')
    assert.is_truthy(line, out)
    local inr, outr = line:match('in (%d[%d%.]*)/s%s+out (%d[%d%.]*)/s')
    assert.is_true(tonumber(inr) > 40 and tonumber(inr) < 260, line)
    assert.is_true(tonumber(outr) > 40 and tonumber(outr) < 260, line)
    local mline = out:match('\n(' .. m.name .. ' [^\n]*)')
    assert.matches('mutex', mline)
    local l = tonumber(mline:match('lock (%d[%d%.]*)/s'))
    assert.is_true(l > 40 and l < 260, mline)
    -- the depth column of the queue: count/max_count
    assert.matches('%d+/100', line)
  end)

  it('rejects bad arguments with exit 2 and a message', function()
    for _, a in ipairs({ '--bogus', '--interval', '--interval 0', '--interval x', '--once=1', 'a b' }) do
      local st, out, err = top(a)
      assert.equal(2, st, a)
      assert.equal('', out)
      assert.matches('^ipcsh: top: ', err)
    end
  end)

  -- Run top in a tmux terminal; how(ctx) makes it quit.  Returns its exit
  -- status; checks that the terminal settings are restored.
  local function interactive(how)
    if H.sh('command -v tmux') ~= 0 then return pending('tmux not installed') end
    local sock = 'ipcsh-top-' .. ipc.uid()
    local dir = H.tmpname('top')
    assert(os.execute('mkdir -p ' .. H.quote(dir)))
    local function tmux(cmd) return H.sh('tmux -L ' .. sock .. ' ' .. cmd) end
    -- inside the terminal: settings before, top (its pid kept: exec), the
    -- settings after; the shell survives a Ctrl-C like an interactive one
    local script = dir .. '/run.sh'
    H.write_file(script, ('trap "true" INT\nstty -g > %s/before\n' ..
      'sh -c %s\necho $? > %s/status\nstty -g > %s/after\nsleep 30\n'):format(dir,
      H.quote('echo $$ > ' .. dir .. '/pid; exec ' .. H.quote(H.bin) .. ' top --interval 200 ' .. H.quote('?top*')), dir, dir))
    finally(function() tmux('kill-server') end)
    local env = 'IPCSH_DIR=' .. H.quote(os.getenv('IPCSH_DIR') or '/dev/shm')
    assert.equal(0, (tmux(('new-session -d -x 120 -y 20 %s'):format(H.quote('env ' .. env .. ' sh ' .. H.quote(script))))))
    local function screen()
      local _, out = tmux('capture-pane -p')
      return out
    end
    -- it draws the header and our objects, with rates after a refresh
    assert.truthy(H.wait_until(function()
      local s = screen()
      return s:find('ipcsh top', 1, true) and s:find(q.name, 1, true) and s:find('in %d')
    end, 15000), screen())
    -- a resize is followed at the next frame
    tmux('resize-window -x 60 -y 10')
    assert.truthy(H.wait_until(function()
      local longest = 0
      for l in screen():gmatch('[^\n]*') do longest = math.max(longest, #l) end
      return longest <= 60
    end, 10000), screen())
    local t0 = ipc.clock()
    how(tmux, tonumber(H.read_file(dir .. '/pid')))
    -- (a complete line: the shell creates the file before stty writes it)
    assert.truthy(H.wait_until(function() return (H.read_file(dir .. '/after') or ''):find('\n') end, 10000),
      screen())
    assert.is_true(ipc.clock() - t0 < 5000)
    assert.equal(H.read_file(dir .. '/before'), H.read_file(dir .. '/after'))
    return tonumber((H.read_file(dir .. '/status') or ''):match('%d+'))
  end

  it('interactive on a terminal: draws, follows a resize, q quits, terminal restored', function()
    assert.equal(0, interactive(function(tmux) tmux('send-keys q') end))
  end)

  it('interactive: Ctrl-C quits too, terminal restored', function()
    assert.equal(0, interactive(function(tmux) tmux('send-keys C-c') end))
  end)

  it('interactive: a SIGINT from another process ends it with 130, terminal restored', function()
    assert.equal(130, interactive(function(_, pid) os.execute('kill -INT ' .. pid) end))
  end)
end)
