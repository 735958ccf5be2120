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

local elapsed_ms, wait_file = H.elapsed_ms, H.wait_file

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

  it('ls prints its directory, a header and aligned columns with each object\'s state', function()
    local code, out, err = ipcsh('ls')
    assert.equal(0, code, err)
    local lines = {}
    for l in out:gmatch('[^\n]+') do lines[#lines + 1] = l end
    assert.equal('# ' .. ipc.dir(), lines[1])
    assert.matches('^NAME +TYPE +STATE +HOLDERS +WAITERS +SIZE +AGE$', lines[2])
    local size_col = lines[2]:find('SIZE', 1, true)
    local found = 0
    for i = 3, #lines do
      local name = lines[i]:match('^(%S+)')
      if name == na or name == nb then
        found = found + 1
        assert.matches('^%S+ +shm +%- +%- +%- +%d+ +%d+s$', lines[i])
        assert.equal(size_col, lines[i]:find('%d+ +%d+s$'))
      end
    end
    assert.equal(2, found)
  end)

  it('ls shows holders, waiters and state of a held mutex and a queue', function()
    local nm, nq = H.name('LsM'), H.name('LsQ')
    local m <close> = ipc.mutex(nm, { cleanup = true })
    local q <close> = ipc.queue(nq, { max_count = 7, cleanup = true })
    local g = m:lock()
    q:send('x')
    local code, out = ipcsh('ls')
    assert.equal(0, code)
    assert.matches('\n' .. nm .. ' +mutex +exclusive +' .. ipc.pid() .. ' +0 +%d+ +%d+s\n', out)
    assert.matches('\n' .. nq .. ' +queue +1/7 +%- +0 +%d+ +%d+s\n', out)
    assert.truthy(g)
    m:unlock()
    m:remove() q:remove()
  end)

  it('ls PATTERN lists only the names matching a shell glob', function()
    local code, out = ipcsh('ls ' .. H.quote(na))
    assert.equal(0, code)
    assert.matches('\n' .. na .. ' ', out, 1, true)
    assert.not_matches('\n' .. nb .. ' ', out, 1, true)
    code, out = ipcsh('ls ' .. H.quote(na:sub(1, 2) .. '*'))
    assert.equal(0, code)
    assert.matches('\n' .. na .. ' ', out, 1, true)
    assert.matches('\n' .. nb .. ' ', out, 1, true)
    code, out = ipcsh('ls ' .. H.quote(na:sub(1, #na - 1) .. '?'))
    assert.matches('\n' .. na .. ' ', out, 1, true)
    code, out = ipcsh('ls --json ' .. H.quote('[!' .. na:sub(1, 1) .. ']*'))
    assert.equal(0, code)
    assert.equal('False', json_query(out, ('any(o["name"] == %q for o in d["objects"])'):format(na)))
  end)

  it('ls --json is one JSON document: the directory and the info tables', function()
    local code, out = ipcsh('ls --json')
    assert.equal(0, code)
    local got = json_query(out,
      ('[(o["type"], o["size"]) for o in d["objects"] if o["name"] == %q][0]'):format(na))
    assert.equal("('shm', 100)", got)
    assert.equal('True', json_query(out,
      'isinstance(d["objects"], list) and all("type" in o for o in d["objects"])'))
    assert.equal(ipc.dir(), json_query(out, 'd["directory"]'))
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
    assert.equal('invalid', json_query(out2,
      ('[o["type"] for o in d["objects"] if o["name"] == %q][0]'):format(junk)))
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
    assert.equal("ipcsh: info: no such object '" .. missing .. "'\n", err)
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

  it('rm exits 2 naming the objects that did not exist, removing the rest', function()
    local missing = H.name('Missing')
    local code, _, err = ipcsh('rm ' .. missing .. ' ' .. na)
    assert.equal(2, code)
    assert.equal("ipcsh: rm: no such object '" .. missing .. "'\n", err)
    assert.is_false(ipc.remove(na))
    assert.is_true(ipc.remove(nb))
  end)

  it('rm -f: a missing name or an unmatched pattern is not an error', function()
    local missing = H.name('Missing')
    local code, out, err = ipcsh('rm -f ' .. missing .. ' ' .. na .. ' ' .. H.quote(missing .. '*'))
    assert.equal(0, code, err)
    assert.equal('', out .. err)
    assert.is_false(ipc.remove(na))
    code, _, err = ipcsh('rm ' .. H.quote(missing .. '*'))
    assert.equal(2, code)
    assert.equal("ipcsh: rm: no object matches '" .. missing .. "*'\n", err)
    assert.equal(0, (ipcsh('rm --force ' .. missing)))
    assert.is_true(ipc.remove(nb))
  end)

  it('rm PATTERN removes every matching object, and only those', function()
    local tag = 'P' .. ipc.uid()
    local objs = {}
    for _, n in ipairs({ tag .. 'a1', tag .. 'a2', tag .. 'b1' }) do
      objs[#objs + 1] = ipc.shm(n, { size = 8, cleanup = true })
    end
    local code, _, err = ipcsh('rm ' .. H.quote(tag .. 'a*'))
    assert.equal(0, code, err)
    assert.is_false(ipc.remove(tag .. 'a1'))
    assert.is_false(ipc.remove(tag .. 'a2'))
    assert.is_true(ipc.remove(tag .. 'b1'))
    for _, o in ipairs(objs) do o:close() end
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
    for _, args in ipairs({ 'ls a b', 'ls --bogus', 'ls -x', 'ls --json=1', 'info --json',
      'rm --frob ' .. na, 'rm -f' }) do
      local code, out, err = ipcsh(args)
      assert.equal(2, code, args)
      assert.equal('', out)
      assert.matches('^ipcsh: ', err)
    end
    assert.is_true(ipc.remove(na))
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
    assert.equal(0, (ipcsh('send --create ' .. name .. ' ' .. H.quote('hello world'))))
    local code, out = ipcsh('recv ' .. name)
    assert.equal(0, code)
    assert.equal('hello world', out)
    -- after --, a message may start with a dash
    assert.equal(0, (ipcsh('send ' .. name .. ' -- -n')))
    code, out = ipcsh('recv ' .. name)
    assert.equal(0, code)
    assert.equal('-n', out)
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
    assert.equal(0, (ipcsh('send --create ' .. name .. ' -', '<' .. H.quote(infile))))
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
    assert.equal(0, (ipcsh('send ' .. name .. ' low --create')))
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
    local q <close> = ipc.queue(name)
    local ms, code, out = elapsed_ms(function() return ipcsh('recv ' .. name .. ' --timeout 300') end)
    assert.equal(1, code)
    assert.equal('', out)
    assert.is_true(ms >= 290, 'returned after ' .. ms .. ' ms')
    assert.equal(1, (ipcsh('recv ' .. name .. ' --timeout 0')))
    q:remove()
  end)

  it('recv waits for a message sent later', function()
    if not ipc.queue then pending('queue not built yet') return end
    local name = H.name('Q')
    local outfile = H.tmpname('out')
    local status = H.tmpname('st')
    assert(os.execute(('(%s recv --create %s --timeout 20000 >%s; echo $? >%s.tmp; mv %s.tmp %s) &'):format(
      H.quote(H.bin), name, H.quote(outfile), H.quote(status), H.quote(status), H.quote(status))))
    assert.truthy(H.wait_until(function() return (ipcsh('info ' .. name)) == 0 end, 15000))
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
    assert.equal(0, (ipcsh('post --create ' .. name .. ' 2')))
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
    local sem <close> = ipc.semaphore(name)
    local st = background('wait ' .. name .. ' --timeout 20000')
    H.sleep(100)
    assert.is_nil(H.read_file(st))
    assert.equal(0, (ipcsh('post ' .. name)))
    assert.equal(0, status_of(st))
    os.remove(st)
    sem:remove()
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

describe('ipcsh: only lock creates', function()
  it('send, recv, post, wait and info on a missing object exit 2 and create nothing', function()
    local name = H.name('Nothere')
    for _, c in ipairs({ { 'send ' .. name .. ' hi', 'queue' }, { 'send ' .. name .. ' -', 'queue' },
      { 'recv ' .. name, 'queue' }, { 'recv --timeout 0 ' .. name, 'queue' },
      { 'post ' .. name, 'semaphore' }, { 'wait ' .. name, 'semaphore' },
      { 'info ' .. name, 'object' } }) do
      local ms, code, out, err = elapsed_ms(function() return ipcsh(c[1]) end)
      assert.equal(2, code, c[1])
      assert.equal('', out)
      assert.equal(('ipcsh: %s: no such %s \'%s\'\n'):format(c[1]:match('^%a+'), c[2], name), err)
      assert.is_true(ms < 10000, c[1] .. ' blocked')
      assert.is_false(ipc.remove(name), c[1] .. ' created it')
    end
  end)

  it('--create makes the object with the creation options given', function()
    local q, s = H.name('Q'), H.name('Sem')
    assert.equal(0, (ipcsh('send --create --max-size 4096 --max-count 3 ' .. q .. ' ' ..
      ('x'):rep(4000))))
    local qq <close> = ipc.queue(q, { assert = 'exists' })
    assert.equal(4096, qq:max_size())
    assert.equal(3, qq:max_count())
    assert.equal(1, qq:count())
    -- an existing object keeps its own sizes
    assert.equal(0, (ipcsh('send --create --max-size 10 ' .. q .. ' ' .. ('y'):rep(100))))
    assert.equal(2, qq:count())
    assert.equal(0, (ipcsh('post --create --value 5 --max 9 ' .. s .. ' 2')))
    local ss <close> = ipc.semaphore(s, { assert = 'exists' })
    assert.equal(7, ss:value())
    assert.equal(2, (ipcsh('post ' .. s .. ' 3'))) -- past max: bad input
    assert.equal(0, (ipcsh('wait --create ' .. s .. ' --timeout 0')))
    assert.equal(6, ss:value())
    qq:remove() ss:remove()
  end)

  it('creation options without --create are an error, naming the option', function()
    local name = H.name('Q')
    for _, c in ipairs({ { 'send --max-size 10 ' .. name .. ' x', '--max-size' },
      { 'recv --max-count 3 ' .. name, '--max-count' }, { 'post --value 3 ' .. name, '--value' },
      { 'wait --max=3 ' .. name, '--max' } }) do
      local code, _, err = ipcsh(c[1])
      assert.equal(2, code, c[1])
      assert.matches(c[2] .. ' only applies with --create', err, 1, true)
      assert.is_false(ipc.remove(name))
    end
  end)
end)

describe('ipcsh send Q - (stdin)', function()
  it('reads stdin in pieces and stops past max_size: exit 2, bounded memory, nothing sent', function()
    local name = H.name('Q')
    local q <close> = ipc.queue(name, { max_size = 16 })
    local code, out, err = H.sh(('head -c 200000000 /dev/zero | /usr/bin/time -f "rss %%M" %s send %s -')
      :format(H.quote(H.bin), name))
    assert.equal(2, code, err)
    assert.equal('', out)
    assert.matches("ipcsh: send: the message on stdin is longer than this queue's max_size " ..
      '(16 bytes); nothing sent\n', err, 1, true)
    local kb = tonumber(err:match('rss (%d+)'))
    assert.truthy(kb, err)
    -- reading all of it would take 200 MB; the runner itself needs a few MB
    -- (tens under the sanitizers)
    assert.is_true(kb < 100000, 'max RSS ' .. kb .. ' KB')
    assert.equal(0, q:count())
    -- exactly max_size bytes still go
    code = H.sh(('head -c 16 /dev/zero | %s send %s -'):format(H.quote(H.bin), name))
    assert.equal(0, code)
    assert.equal(('\0'):rep(16), q:receive(0))
    q:remove()
  end)
end)

describe('ipcsh error messages', function()
  -- Every class of misuse: exit 2, one message on stderr that names the
  -- command, no source path, no '?'.
  it('name the command, never a source file or \'?\'', function()
    local ev, q = H.name('Ev'), H.name('Q')
    local e <close> = ipc.event(ev)
    local qq <close> = ipc.queue(q, { max_size = 16 })
    local cases = {
      { 'send ' .. q .. ' --bogus x', 'send', "unknown option '--bogus'" },  -- unknown option
      { 'recv ' .. q .. ' -z', 'recv', "unknown option '-z'" },
      { 'wait ' .. q .. ' --timeout soon', 'wait', 'bad timeout' },          -- bad number
      { 'post ' .. ev .. ' many', 'post', 'bad count' },
      { 'lock -w forever ' .. q .. ' true', 'lock', 'bad wait' },
      { 'recv ' .. q .. 'x', 'recv', 'no such queue' },                       -- missing object
      { 'post ' .. ev, 'post', '"' .. ev .. '" is an event, not a semaphore' }, -- wrong type
      { 'send ' .. ev .. ' x', 'send', '"' .. ev .. '" is an event, not a queue' },
      { 'lock -n ' .. q .. ' true', 'lock', 'queue' },
      { 'send ' .. q .. ' ' .. ('x'):rep(17), 'send', 'message is 17 bytes' }, -- oversize
      { 'send 9lives x', 'send', 'invalid name' },                            -- bad name
      { 'rm a/b', 'rm', 'invalid name' },
      { 'lock -s -x ' .. q .. ' true', 'lock', 'conflict' },                  -- conflicting
      { 'send --max-size 4 ' .. q .. ' x', 'send', 'only applies with --create' },
    }
    for _, c in ipairs(cases) do
      local code, out, err = ipcsh(c[1])
      assert.equal(2, code, c[1])
      assert.equal('', out, c[1])
      assert.matches('^ipcsh: ' .. (c[2] and c[2] .. ': ' or ''), err)
      assert.matches(c[3], err, 1, true)
      assert.not_matches('%.lua:%d+', err)
      assert.not_matches('%.c:%d+', err)
      assert.not_matches("'?'", err, 1, true)
      assert.equal(1, select(2, err:gsub('\n', '')), c[1] .. ': one line: ' .. err)
    end
    -- a bad directory
    for _, dir in ipairs({ '/nonexistent/ipcsh-dir', '/etc/passwd' }) do
      for _, args in ipairs({ 'ls', 'info x', 'rm x', 'send --create q x' }) do
        local code, out, err = H.sh(('IPCSH_DIR=%s %s %s </dev/null'):format(dir, H.quote(H.bin), args))
        assert.equal(2, code, dir .. ' ' .. args)
        assert.equal('', out)
        assert.matches('^ipcsh: ' .. args:match('^%a+') .. ': ', err)
        assert.not_matches('%.lua:%d+', err)
        assert.not_matches("'?'", err, 1, true)
      end
    end
    e:remove() qq:remove()
  end)
end)

describe('ipcsh --help, the man page and the manual', function()
  it('agree: every command option in --help is in docs/ipcsh.1 and docs/manual.md', function()
    local code, help = H.sh(H.quote(H.bin) .. ' --help')
    assert.equal(0, code)
    local commands = assert(help:match('\nCommands[^\n]*\n(.*)$'), 'no Commands section')
    local man = assert(H.read_file('docs/ipcsh.1')):gsub('\\%-', '-'):gsub('\\f[BIRP]', '')
    local manual = assert(H.read_file('docs/manual.md'))
    local seen = {}
    for opt in commands:gmatch('%-%-?[%a][%w-]*') do
      if not seen[opt] and opt ~= '--' then
        seen[opt] = true
        local plain = opt:gsub('%-', '%%-')
        assert.truthy(man:find('%f[%w-]' .. plain .. '%f[^%w-]'), 'docs/ipcsh.1 lacks ' .. opt)
        assert.truthy(manual:find('%f[%w-]' .. plain .. '%f[^%w-]'), 'docs/manual.md lacks ' .. opt)
      end
    end
    for _, must in ipairs({ '--db', '-n', '-w', '-E', '-c', '--create', '--max-size', '-f' }) do
      assert.truthy(seen[must], '--help lacks ' .. must)
    end
  end)
end)
