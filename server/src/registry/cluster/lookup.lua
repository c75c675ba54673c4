-- Before a join: the place `key` holds in `room` (if any), the room's password salt and digest
-- (the node checks a given password against them), and two fresh numbers (a peer id and a
-- session number).
-- ARGV: room, key. Returns {id or '', PeerInfo JSON or '', salt or '', digest or '', fresh}.
local room, key = ARGV[1], ARGV[2]
local id = redis.call('HGET', P .. 'keys:' .. room, key)
local info = id and redis.call('HGET', P .. 'peers:' .. room, id) or false
local salt, digest = unpack(redis.call('HMGET', P .. 'meta:' .. room, 'salt', 'digest'))
local fresh = redis.call('INCRBY', P .. 'ids', 2)
return { id or '', info or '', salt or '', digest or '', fresh }
