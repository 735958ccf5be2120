-- busted output handler: a line per file, details of every failure, and a
-- closing "N passed, N failed, N skipped".  The counts are also written to
-- $IPCSH_TEST_COUNTS so spec/run.sh can add up the runs.
return function(options)
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.base'()

  local function describe_failure(f, kind)
    local out = {}
    local trace = f.element and f.element.trace
    out[#out + 1] = ('%s: %s'):format(kind, f.name or '?')
    if trace and trace.short_src then
      out[#out + 1] = ('  at %s:%s'):format(trace.short_src, tostring(trace.currentline))
    end
    local msg = f.message
    if type(msg) ~= 'string' then msg = require('pl.pretty').write(msg) end
    out[#out + 1] = '  ' .. tostring(msg):gsub('\n', '\n  ')
    if f.trace and f.trace.traceback and kind == 'ERROR' then
      out[#out + 1] = '  ' .. f.trace.traceback:gsub('\n', '\n  ')
    end
    return table.concat(out, '\n')
  end

  handler.testEnd = function(element, parent, status)
    local mark = ({ success = '+', failure = 'F', error = 'E', pending = 'S' })[status] or '?'
    io.write(mark)
    io.flush()
    return nil, true
  end

  handler.fileStart = function(file)
    io.write(('%-40s '):format(file.name))
    io.flush()
    return nil, true
  end

  handler.fileEnd = function()
    io.write('\n')
    return nil, true
  end

  handler.suiteEnd = function()
    for _, f in ipairs(handler.failures) do io.write('\n', describe_failure(f, 'FAIL'), '\n') end
    for _, f in ipairs(handler.errors) do io.write('\n', describe_failure(f, 'ERROR'), '\n') end
    local passed = handler.successesCount
    local failed = handler.failuresCount + handler.errorsCount
    local skipped = handler.pendingsCount
    io.write(('\n%d passed, %d failed, %d skipped (%.1f s)\n'):format(passed, failed, skipped,
      handler.getDuration()))
    local path = os.getenv('IPCSH_TEST_COUNTS')
    if path then
      local f = io.open(path, 'a')
      f:write(('%d %d %d\n'):format(passed, failed, skipped))
      f:close()
    end
    return nil, true
  end

  handler.error = function()
    io.write('E')
    io.flush()
    return nil, true
  end

  busted.subscribe({ 'test', 'end' }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ 'file', 'start' }, handler.fileStart)
  busted.subscribe({ 'file', 'end' }, handler.fileEnd)
  busted.subscribe({ 'suite', 'end' }, handler.suiteEnd)
  busted.subscribe({ 'error', 'file' }, handler.error)
  busted.subscribe({ 'failure', 'file' }, handler.error)
  busted.subscribe({ 'error', 'describe' }, handler.error)
  busted.subscribe({ 'failure', 'describe' }, handler.error)
  return handler
end
