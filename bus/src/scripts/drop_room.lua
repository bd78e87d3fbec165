-- KEYS lease, snapshot, epoch counter; ARGV lease value. While the lease
-- is ours, deletes the lease and the snapshot, and lets the counter expire
-- in a minute (by then the clock alone keeps a new room's epochs above the
-- old ones); 1 if so.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[3], 60000)
return 1
