-- Removes a member if `session` is still its attachment (ARGV: room, id, session, mode).
-- mode 'leave': remove; 'detach': keep the place, mark it detached; 'expire': remove only if
-- still detached. Returns 1 if something changed.
local room, id, session, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local r = route_of(room, id)
if not r or r.session ~= session then return 0 end
if mode == 'detach' then
  if not r.attached then return 0 end
  redis.call('HSET', P .. 'route:' .. room, id, route_string(r.node, r.session, false, r.key))
  return 1
end
if mode == 'expire' and r.attached then return 0 end
remove(room, id)
return 1
