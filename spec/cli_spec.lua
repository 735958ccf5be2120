-- The ipcsh command line (ipcsh ls/info/rm/lock/send/recv/post/wait), run as
-- real processes of $IPCSH_BIN whichever interpreter runs the suite.
local H = require 'spec.helper'
local ipc = H.ipc

local function ipcsh(args, stdin_redirect)
  return H.sh(H.quote(H.bin) .. ' ' .. args .. ' ' .. (stdin_redirect or '</dev/null'))
end

-- Validate JSON with python3 and return what the given python expression
-- (over the decoded document `d`) prints.
local function json_query(doc, expr)
  local f = H.tmpname('json')
  H.write_file(f, doc)
  local code, out, err = H.sh(('python3 -c %s <%s'):format(
    H.quote('import json,sys\nd = json.load(sys.stdin)\nprint(' .. expr .. ')'), H.quote(f)))
  os.remove(f)
  assert(code == 0, 'invalid JSON: ' .. err .. '\n' .. doc)
  return (out:gsub('\n$', ''))
end

local function elapsed_ms(fn)
  local t0 = H.clock()
  local a, b, c = fn()
  return H.clock() - t0, a, b, c
end

local function wait_file(path, ms)
  return H.wait_until(function() return H.read_file(path) end, ms or 15000)
end

-- Run an ipcsh command in the background; its exit status lands in
-- the returned path.
local function background(args)
  local status = H.tmpname('bgstatus')
  assert(os.execute(('(%s %s </dev/null >/dev/null 2>&1; echo $? >%s.tmp; mv %s.tmp %s) &'):format(
    H.quote(H.bin), args, H.quote(status), H.quote(status), H.quote(status))))
  return status
end

local function status_of(path, ms)
  local s = wait_file(path, ms)
  return s and tonumber(s:match('%d+'))
end

describe('ipcsh ls / info / rm', function()
  local a, b
  local na, nb

  before_each(function()
    na, nb = H.name('Ls'), H.name('Ls')
    a = ipc.shm(na, { size = 100, cleanup = true })
    b = ipc.shm(nb, { size = 5000, cleanup = true })
  end)

  after_each(function()
    a:remove() a:close()
    b:remove() b:close()
  end)

  it('ls prints a header and aligned columns with each object\'s state', function()
    local code, out, err = ipcsh('ls')
    assert.equal(0, code, err)
    local lines = {}
    for l in out:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.matches('^NAME +TYPE +BYTES +CREATOR +STATE$', lines[1])
    local state_col = lines[1]:find('STATE', 1, true)
    local found = 0
    for i = 2, #lines do
      local name = lines[i]:match('^(%S+)')
      if name == na or name == nb then
        found = found + 1
        assert.matches('^%S+ +shm +%d+ +%d+ +size=%d+$', lines[i])
        assert.equal(state_col, lines[i]:find('size=', 1, true))
      end
    end
    assert.equal(2, found)
    assert.matches(na .. ' +shm +%d+ +' .. ipc.pid() .. ' +size=100\n', out)
  end)

  it('ls --json is one JSON document: an array of info tables', function()
    local code, out = ipcsh('ls --json')
    assert.equal(0, code)
    local got = json_query(out,
      ('[(o["type"], o["size"]) for o in d if o["name"] == %q][0]'):format(na))
    assert.equal("('shm', 100)", got)
    assert.equal('True', json_query(out, 'isinstance(d, list) and all("type" in o for o in d)'))
  end)

  it('ls lists an unreadable object as invalid, and the JSON stays valid', function()
    local junk = H.name('Junk')
    -- the object files' prefix, from the file of an object we made
    local _, files = H.sh('ls ' .. H.quote(ipc.dir()))
    local prefix = assert(files:match('([^\n]*)' .. na .. '\n'), 'no file for ' .. na)
    local path = ipc.dir() .. '/' .. prefix .. junk
    H.write_file(path, ('\1\2garbage'):rep(50))
    local code, out = ipcsh('ls')
    local code2, out2 = ipcsh('ls --json')
    local code3, out3 = ipcsh('rm ' .. junk)
    os.remove(path)
    assert.equal(0, code)
    assert.matches(junk .. ' +invalid', out)
    assert.equal(0, code2)
    assert.equal('invalid', json_query(out2, ('[o["type"] for o in d if o["name"] == %q][0]'):format(junk)))
    assert.equal(0, code3, out3)
  end)

  it('info prints every info field as "key: value"', function()
    local code, out = ipcsh('info ' .. na)
    assert.equal(0, code)
    assert.matches('^type: shm\nname: ' .. na .. '\n', out)
    assert.matches('\nsize: 100\n', out, 1, true)
    assert.matches('\ncreator_pid: ' .. ipc.pid() .. '\n', out, 1, true)
    for k in pairs(a:info()) do
      assert.matches('\n?' .. k .. ': ', out)
    end
  end)

  it('info --json (before or after the name) is the info table', function()
    for _, args in ipairs({ 'info --json ' .. na, 'info ' .. na .. ' --json' }) do
      local code, out = ipcsh(args)
      assert.equal(0, code)
      assert.equal(na .. ' shm 100 ' .. ipc.pid(),
        json_query(out, 'd["name"], d["type"], d["size"], d["creator_pid"]'):gsub("[(),']", ''):gsub(' +', ' '))
    end
  end)

  it('info on a missing object or a bad name exits 2, without creating', function()
    local missing = H.name('Missing')
    local code, _, err = ipcsh('info ' .. missing)
    assert.equal(2, code)
    assert.matches('no object named "' .. missing .. '"', err, 1, true)
    assert.is_false(ipc.remove(missing))
    code, _, err = ipcsh('info 9bad')
    assert.equal(2, code)
    assert.matches('^ipcsh: info: invalid name', err)
    assert.equal(2, (ipcsh('info')))
    assert.equal(2, (ipcsh('info ' .. na .. ' ' .. nb)))
  end)

  it('rm removes objects: 0 when all existed', function()
    local code, out, err = ipcsh('rm ' .. na .. ' ' .. nb)
    assert.equal(0, code, err)
    assert.equal('', out)
    assert.is_false(ipc.remove(na))
    assert.is_false(ipc.remove(nb))
  end)

  it('rm exits 1 naming the objects that did not exist, removing the rest', function()
    local missing = H.name('Missing')
    local code, _, err = ipcsh('rm ' .. missing .. ' ' .. na)
    assert.equal(1, code)
    assert.matches(missing, err, 1, true)
    assert.not_matches(na, err, 1, true)
    assert.is_false(ipc.remove(na))
    assert.is_true(ipc.remove(nb))
  end)

  it('rm exits 2 on a bad name and removes nothing', function()
    for _, bad in ipairs({ "'a b'", "''", '1abc', ('x'):rep(251), "'a/../b'" }) do
      local code, _, err = ipcsh('rm ' .. na .. ' ' .. bad)
      assert.equal(2, code, bad)
      assert.matches('^ipcsh: rm: invalid name', err)
    end
    assert.equal(2, (ipcsh('rm')))
    assert.is_true(ipc.remove(na))
  end)

  it('exits 2 on usage errors with a message on stderr', function()
    for _, args in ipairs({ 'ls extra', 'ls --bogus', 'ls -x', 'ls --json=1', 'info --json',
      'rm --force ' .. na }) do
      local code, out, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.equal('', out)
      assert.matches('^ipcsh: ', err)
    end
    assert.is_true(ipc.remove(na))
  end)
end)

describe('ipcsh lock', function()
  it('rejects bad usage with exit 2 before locking anything', function()
    for _, args in ipairs({ 'lock', 'lock 1bad -- true', 'lock Name', 'lock Name --',
      'lock Name --timeout -1 -- true', 'lock Name --timeout abc -- true',
      'lock Name --timeout', 'lock Name --frobnicate -- true' }) do
      local code, _, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.matches('^ipcsh: lock: ', err)
    end
  end)

  it('runs the command holding the lock and passes its exit status through', function()
    if not ipc.mutex then pending('mutex not built yet') return end
    local name = H.name('Lock')
    local code, out = ipcsh('lock ' .. name .. ' -- sh -c ' .. H.quote('echo running; exit 7'))
    assert.equal(7, code)
    assert.equal('running\n', out)
    code = ipcsh('lock ' .. name .. ' --timeout 1000 -- true')
    assert.equal(0, code)
    -- without --, the first word after the name starts the command
    code, out = ipcsh('lock ' .. name .. ' echo -n hi')
    assert.equal(0, code)
    assert.equal('hi', out)
    -- a command killed by a signal: 128 + signal
    code = ipcsh('lock ' .. name .. ' -- sh -c ' .. H.quote('kill -9 $$'))
    assert.equal(137, code)
    -- a command that cannot run: 127
    code = ipcsh('lock ' .. name .. ' -- /nonexistent/program')
    assert.equal(127, code)
    ipc.remove(name)
  end)

  it('holds against a second ipcsh lock (--timeout: exit 1), then lets it in', function()
    if not ipc.mutex then pending('mutex not built yet') return end
    local name = H.name('Lock')
    local held, release = H.tmpname('held'), H.tmpname('release')
    local holder = background(('lock %s -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done; exit 3'):format(
        H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    assert.equal(1, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    local ms, code = elapsed_ms(function()
      return ipcsh('lock --timeout 300 ' .. name .. ' -- true')
    end)
    assert.equal(1, code)
    assert.is_true(ms >= 290, 'returned after ' .. ms .. ' ms')
    assert.equal(1, (ipcsh('lock ' .. name .. ' --shared --timeout 0 -- true')))
    H.write_file(release, 'x')
    assert.equal(3, status_of(holder))
    assert.equal(0, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    os.remove(held) os.remove(release) os.remove(holder)
    ipc.remove(name)
  end)

  it('--shared holders share; an exclusive lock waits for them', function()
    if not ipc.mutex then pending('mutex not built yet') return end
    local name = H.name('Lock')
    local held, release = H.tmpname('held'), H.tmpname('release')
    local holder = background(('lock %s --shared -- sh -c %s'):format(name, H.quote(
      ('touch %s; while [ ! -e %s ]; do sleep 0.01; done'):format(H.quote(held), H.quote(release)))))
    assert.truthy(wait_file(held), 'holder did not start')
    assert.equal(0, (ipcsh('lock ' .. name .. ' --shared --timeout 0 -- true')))
    assert.equal(1, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    local code, out = ipcsh('info ' .. name)
    assert.equal(0, code)
    assert.matches('state: shared', out, 1, true)
    H.write_file(release, 'x')
    assert.equal(0, status_of(holder))
    assert.equal(0, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    os.remove(held) os.remove(release) os.remove(holder)
    ipc.remove(name)
  end)

  it('a holder killed with SIGKILL releases the lock', function()
    if not ipc.mutex then pending('mutex not built yet') return end
    local name = H.name('Lock')
    local held, release = H.tmpname('held'), H.tmpname('release')
    -- the command records its parent (the ipcsh holding the lock)
    local holder = background(('lock %s -- sh -c %s'):format(name, H.quote(
      ('echo $PPID >%s.tmp; mv %s.tmp %s; while [ ! -e %s ]; do sleep 0.01; done'):format(
        H.quote(held), H.quote(held), H.quote(held), H.quote(release)))))
    local pid = tonumber(wait_file(held))
    assert.truthy(pid, 'holder did not start')
    assert.equal(1, (ipcsh('lock ' .. name .. ' --timeout 0 -- true')))
    os.execute('kill -9 ' .. pid)
    assert.equal(137, status_of(holder))
    assert.equal(0, (ipcsh('lock ' .. name .. ' --timeout 5000 -- true')))
    H.write_file(release, 'x')
    os.remove(held) os.remove(holder)
    H.sleep(50)
    os.remove(release)
    ipc.remove(name)
  end)
end)

describe('ipcsh send / recv', function()
  it('rejects bad usage with exit 2', function()
    for _, args in ipairs({ 'send', 'send Q', 'send 1bad msg', 'send Q a b',
      'send Q --priority -1 m', 'send Q --priority 2147483648 m', 'send Q --priority 1.5 m',
      'send Q --timeout -5 m', 'recv', 'recv Q extra', 'recv Q --timeout x', 'recv 1bad' }) do
      local code, _, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.matches('^ipcsh: %a+: ', err)
    end
  end)

  it('round-trips a message given as an argument, without adding a newline', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    assert.equal(0, (ipcsh('send ' .. name .. ' ' .. H.quote('hello world'))))
    local code, out = ipcsh('recv ' .. name)
    assert.equal(0, code)
    assert.equal('hello world', out)
    ipc.remove(name)
  end)

  it('round-trips binary data from stdin (-)', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local data = table.concat(bytes) .. '\0\n\r\0'
    local infile, outfile = H.tmpname('in'), H.tmpname('out')
    H.write_file(infile, data)
    assert.equal(0, (ipcsh('send ' .. name .. ' -', '<' .. H.quote(infile))))
    local q <close> = ipc.queue(name)
    assert.equal(1, q:count())
    assert.equal(0, (H.sh(H.quote(H.bin) .. ' recv ' .. name .. ' >' .. H.quote(outfile))))
    assert.equal(data, H.read_file(outfile))
    -- an empty message too
    assert.equal(0, (ipcsh('send ' .. name .. ' -', '</dev/null')))
    local code, out = ipcsh('recv ' .. name)
    assert.equal(0, code)
    assert.equal('', out)
    os.remove(infile) os.remove(outfile)
    q:remove()
  end)

  it('sends with --priority (highest received first)', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    assert.equal(0, (ipcsh('send ' .. name .. ' low')))
    assert.equal(0, (ipcsh('send --priority 9 ' .. name .. ' high')))
    assert.equal(0, (ipcsh('send ' .. name .. ' mid --priority=5')))
    local got = {}
    for i = 1, 3 do
      local code, out = ipcsh('recv ' .. name .. ' --timeout 1000')
      assert.equal(0, code)
      got[i] = out
    end
    assert.same({ 'high', 'mid', 'low' }, got)
    ipc.remove(name)
  end)

  it('recv --timeout on an empty queue exits 1 after the timeout', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    local ms, code, out = elapsed_ms(function() return ipcsh('recv ' .. name .. ' --timeout 300') end)
    assert.equal(1, code)
    assert.equal('', out)
    assert.is_true(ms >= 290, 'returned after ' .. ms .. ' ms')
    assert.equal(1, (ipcsh('recv ' .. name .. ' --timeout 0')))
    ipc.remove(name)
  end)

  it('recv waits for a message sent later', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    local outfile = H.tmpname('out')
    local status = H.tmpname('st')
    assert(os.execute(('(%s recv %s --timeout 20000 >%s; echo $? >%s.tmp; mv %s.tmp %s) &'):format(
      H.quote(H.bin), name, H.quote(outfile), H.quote(status), H.quote(status), H.quote(status))))
    H.sleep(100)
    assert.equal(0, (ipcsh('send ' .. name .. ' late')))
    assert.equal(0, status_of(status))
    assert.equal('late', H.read_file(outfile))
    os.remove(outfile) os.remove(status)
    ipc.remove(name)
  end)

  it('send --timeout on a full queue exits 1; too long a message exits 2', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    local q <close> = ipc.queue(name, { max_count = 1, max_size = 8 })
    assert.equal(0, (ipcsh('send ' .. name .. ' one')))
    local ms, code = elapsed_ms(function() return ipcsh('send ' .. name .. ' two --timeout 200') end)
    assert.equal(1, code)
    assert.is_true(ms >= 190, 'returned after ' .. ms .. ' ms')
    assert.equal(1, (ipcsh('send ' .. name .. ' two --timeout 0')))
    assert.equal(1, q:count())
    q:clear()
    assert.equal(2, (ipcsh('send ' .. name .. ' ' .. ('x'):rep(9))))
    q:remove()
  end)

  it('refuses an object of another type (exit 2, both types named)', function()
    local name = H.name('Shm')
    local s <close> = ipc.shm(name, { size = 8, cleanup = true })
    local code, _, err = ipcsh('recv ' .. name .. ' --timeout 0')
    assert.equal(2, code)
    assert.matches('^ipcsh: recv: ', err)
    if ipc.queue then
      assert.matches('shm', err, 1, true)
      assert.matches('queue', err, 1, true)
    end
    s:remove()
  end)
end)

describe('ipcsh post / wait', function()
  it('rejects bad usage with exit 2', function()
    for _, args in ipairs({ 'post', 'post 1bad', 'post S 0', 'post S -1', 'post S x',
      'post S 1 2', 'wait', 'wait S --timeout nan', 'wait S extra' }) do
      local code, _, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.matches('^ipcsh: %a+: ', err)
    end
  end)

  it('post N makes N waits succeed, the next one times out (exit 1)', function()
    if not ipc.semaphore then pending('semaphore not built yet') return end
    local name = H.name('Sem')
    assert.equal(0, (ipcsh('post ' .. name .. ' 2')))
    assert.equal(0, (ipcsh('wait ' .. name .. ' --timeout 0')))
    assert.equal(0, (ipcsh('wait ' .. name .. ' --timeout 0')))
    local ms, code = elapsed_ms(function() return ipcsh('wait ' .. name .. ' --timeout 250') end)
    assert.equal(1, code)
    assert.is_true(ms >= 240, 'returned after ' .. ms .. ' ms')
    assert.equal(0, (ipcsh('post ' .. name)))
    local s <close> = ipc.semaphore(name)
    assert.equal(1, s:value())
    s:remove()
  end)

  it('wait blocks until another process posts', function()
    if not ipc.semaphore then pending('semaphore not built yet') return end
    local name = H.name('Sem')
    local st = background('wait ' .. name .. ' --timeout 20000')
    H.sleep(100)
    assert.is_nil(H.read_file(st))
    assert.equal(0, (ipcsh('post ' .. name)))
    assert.equal(0, status_of(st))
    os.remove(st)
    ipc.remove(name)
  end)
end)

describe('ipcsh commands', function()
  it('dispatches only the exact command words', function()
    -- "lsx" is a script name (missing here), not a command
    local code, _, err = ipcsh('lsx')
    assert.equal(1, code)
    assert.matches('cannot open lsx', err, 1, true)
  end)

  it('interprocess.cli is loadable from the module, with every command', function()
    local cli = require 'interprocess.cli'
    assert.is_function(cli.main)
    for _, cmd in ipairs({ 'ls', 'info', 'rm', 'lock', 'send', 'recv', 'post', 'wait' }) do
      assert.is_function(cli.commands[cmd], cmd)
    end
  end)

  it('json encodes the values info tables hold', function()
    local json = require 'interprocess.json'
    assert.equal('[]', json.encode({}))
    assert.equal('{"a":[1,2.5,"x\\n\\"y\\u0001"],"b":true,"c":null}',
      json.encode({ a = { 1, 2.5, 'x\n"y\1' }, b = true, c = 0 / 0 }))
    assert.equal('"caf\195\169 \\u00ff"', json.encode('caf\195\169 \255'))
    assert.equal('3.0', json.encode(3.0))
    local t = {} t.self = t
    assert.has_error(function() json.encode(t) end)
    assert.has_error(function() json.encode({ f = print }) end)
  end)
end)
