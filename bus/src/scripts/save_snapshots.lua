-- KEYS the lease and the snapshot of each room in turn; ARGV ttl ms, then
-- the lease value, epoch, place (seq) and data of each room in turn. For
-- each room: 1 saved, -1 nobody holds the lease, 0 another holds it or a
-- newer epoch has written, 2 a later snapshot of this lease is stored, -2
-- the write failed (a key of another type): one room's error is not the
-- others'.
local function save(i)
  local lease, snapshot = KEYS[2 * i - 1], KEYS[2 * i]
  local value, epoch, seq = ARGV[4 * i - 2], ARGV[4 * i - 1], ARGV[4 * i]
  local stored = redis.call('HMGET', snapshot, 'epoch', 'seq')
  local cur = tonumber(stored[1])
  if cur and cur > tonumber(epoch) then return 0 end
  local held = redis.call('GET', lease)
  if not held then return -1 end
  if held ~= value then return 0 end
  if cur == tonumber(epoch) and tonumber(stored[2]) and tonumber(stored[2]) >= tonumber(seq) then return 2 end
  redis.call('HSET', snapshot, 'epoch', epoch, 'seq', seq, 'data', ARGV[4 * i + 1])
  redis.call('PEXPIRE', snapshot, ARGV[1])
  return 1
end

local out = {}
for i = 1, #KEYS / 2 do
  local ok, result = pcall(save, i)
  out[i] = ok and result or -2
end
return out
