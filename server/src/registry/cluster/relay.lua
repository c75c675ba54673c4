-- Delivers a signal. ARGV: room, from, to, the frame (encoded by the node, see envelope.rs). Returns 1, or 0 if either peer is
-- not in the room. A detached receiver loses it (its client renegotiates after resuming).
local route = 'confab:route:' .. ARGV[1]
if redis.call('HEXISTS', route, ARGV[2]) == 0 then return 0 end
local r = redis.call('HGET', route, ARGV[3])
if not r then return 0 end
local node, attached = string.match(r, '^([^|]*)|%d+|([01])|')
if attached == '1' then
  redis.call('PUBLISH', 'confab:node:' .. node, 'D' .. ARGV[3] .. '\n' .. ARGV[4])
end
return 1
