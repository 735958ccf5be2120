#!/bin/sh
# Seed corpus for decode_fuzz: encodings of assorted values, made by ipcsh.
dir=${1:-corpus}
mkdir -p "$dir"
top=$(cd "$(dirname "$0")/.." && pwd)
CORPUS_DIR="$dir" "$top/ipcsh" -e '
local dir = os.getenv("CORPUS_DIR")
local vals = { 0, -1, 127, 128, math.mininteger, math.maxinteger, 1.5, -0.0, 1/0, 0/0,
  "", "x", ("y"):rep(70), true, false,
  { 1, 2, 3 }, { a = 1, b = { c = "d" } }, { [false] = 1, [true] = 2, [-3] = 4, [2.5] = 5,
  s = "t", [{ 1 }] = { 2 } }, { {}, { {} } }, { 1, nil, 3 } }
vals[#vals + 1] = nil
for i, v in ipairs(vals) do
  local f = assert(io.open(dir .. "/seed" .. i, "wb")) f:write(ipc.encode(v)) f:close()
end
local f = assert(io.open(dir .. "/seed_nil", "wb")) f:write(ipc.encode(nil)) f:close()
'
