-- KEYS the lease and the snapshot of each room in turn; ARGV ttl ms, then
-- the lease value, epoch and data of each room in turn. For each room:
-- 1 saved, -1 nobody holds the lease, 0 another holds it or a newer epoch
-- has written.
local out = {}
for i = 1, #KEYS / 2 do
  local lease, snapshot = KEYS[2 * i - 1], KEYS[2 * i]
  local value, epoch = ARGV[3 * i - 1], ARGV[3 * i]
  local cur = redis.call('HGET', snapshot, 'epoch')
  local held = redis.call('GET', lease)
  if cur and tonumber(cur) > tonumber(epoch) then
    out[i] = 0
  elseif not held then
    out[i] = -1
  elseif held ~= value then
    out[i] = 0
  else
    redis.call('HSET', snapshot, 'epoch', epoch, 'data', ARGV[3 * i + 1])
    redis.call('PEXPIRE', snapshot, ARGV[1])
    out[i] = 1
  end
end
return out
