-- A member's new PeerInfo (media state), told to the others.
-- ARGV: room, id, session, PeerInfo JSON, the frame to send. Returns 1, or 0 if the place is not
-- this session's.
local room, id = ARGV[1], ARGV[2]
local r = route_of(room, id)
if not r or r.session ~= ARGV[3] then return 0 end
redis.call('HSET', P .. 'peers:' .. room, id, ARGV[4])
broadcast(room, id, 'D', ARGV[5])
return 1
