-- A chat message: kept in the room's history and sent to every member, the sender included.
-- ARGV: room, id, ChatMessage JSON, the frame to send, history length. Returns 1, or 0 if `id` is
-- not in the room.
local room = ARGV[1]
if redis.call('HEXISTS', P .. 'route:' .. room, ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', P .. 'chat:' .. room, ARGV[3])
redis.call('LTRIM', P .. 'chat:' .. room, -tonumber(ARGV[5]), -1)
broadcast(room, nil, 'D', ARGV[4])
return 1
