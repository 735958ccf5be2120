-- A small JSON encoder for the command line's --json output.
--
--   json.encode(value [, indent]) -> string
--
-- Tables that are sequences (1..n, including the empty table) become arrays,
-- other tables objects with their keys sorted (so output is stable).  Keys
-- must be strings or numbers (numbers are written as strings).  NaN and the
-- infinities become null; integers are written without a fraction.  Strings
-- are written as UTF-8: a byte that is not part of valid UTF-8 is written as
-- the code point of the same value (\u00XX), so any byte string encodes.
-- Cycles and functions/userdata/threads are errors.
local json = {}

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function escape_control(c)
  return escapes[c] or ('\\u%04x'):format(c:byte())
end

-- Valid UTF-8 sequences are kept; stray bytes become \u00XX.
local function encode_string(s)
  s = s:gsub('[%c"\\]', escape_control)
  if not s:find('[\128-\255]') or utf8.len(s) then
    return '"' .. s .. '"'
  end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC2 and 2 or 0
    local piece = len > 0 and s:sub(i, i + len - 1) or nil
    if piece and #piece == len and utf8.len(piece) == 1 then
      out[#out + 1] = piece
      i = i + len
    else
      out[#out + 1] = ('\\u%04x'):format(c)
      i = i + 1
    end
  end
  return '"' .. table.concat(out) .. '"'
end

local function encode_number(x)
  if math.type(x) == 'integer' then return tostring(x) end
  if x ~= x or x == math.huge or x == -math.huge then return 'null' end
  if x == math.floor(x) and math.abs(x) < 2^53 then return ('%.1f'):format(x) end
  return ('%.17g'):format(x)
end

local function is_sequence(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  return a < b
end

local encode_value

local function encode_table(t, indent, depth, seen, out)
  if seen[t] then error('json.encode: cycle in table', 0) end
  seen[t] = true
  local nl, pad, padin, sep = '', '', '', ':'
  if indent then
    nl = '\n'
    pad = indent:rep(depth)
    padin = indent:rep(depth + 1)
    sep = ': '
  end
  if is_sequence(t) then
    if #t == 0 then
      out[#out + 1] = '[]'
    else
      out[#out + 1] = '[' .. nl
      for i = 1, #t do
        out[#out + 1] = padin
        encode_value(t[i], indent, depth + 1, seen, out)
        out[#out + 1] = (i < #t and ',' or '') .. nl
      end
      out[#out + 1] = pad .. ']'
    end
  else
    local keys = {}
    for k in pairs(t) do
      local tk = type(k)
      if tk ~= 'string' and tk ~= 'number' then
        error('json.encode: cannot use a ' .. tk .. ' as an object key', 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, key_order)
    out[#out + 1] = '{' .. nl
    for i, k in ipairs(keys) do
      local ks = type(k) == 'string' and k or encode_number(k)
      out[#out + 1] = padin .. encode_string(ks) .. sep
      encode_value(t[k], indent, depth + 1, seen, out)
      out[#out + 1] = (i < #keys and ',' or '') .. nl
    end
    out[#out + 1] = pad .. '}'
  end
  seen[t] = nil
end

encode_value = function(v, indent, depth, seen, out)
  local tv = type(v)
  if tv == 'nil' then
    out[#out + 1] = 'null'
  elseif tv == 'boolean' then
    out[#out + 1] = tostring(v)
  elseif tv == 'number' then
    out[#out + 1] = encode_number(v)
  elseif tv == 'string' then
    out[#out + 1] = encode_string(v)
  elseif tv == 'table' then
    if depth > 100 then error('json.encode: nesting too deep', 0) end
    encode_table(v, indent, depth, seen, out)
  else
    error('json.encode: cannot encode a ' .. tv, 0)
  end
end

-- indent: nil for compact output, or a string (e.g. '  ') to pretty-print.
function json.encode(v, indent)
  local out = {}
  encode_value(v, indent, 0, {}, out)
  return table.concat(out)
end

return json
