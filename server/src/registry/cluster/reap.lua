-- Removes every member a dead node held (its presence key expired), announcing each as left.
-- ARGV: node. Returns how many members were removed.
local node = ARGV[1]
if redis.call('EXISTS', P .. 'alive:' .. node) == 1 then return 0 end
local removed = 0
for _, room in ipairs(redis.call('SMEMBERS', P .. 'node_rooms:' .. node)) do
  local all = redis.call('HGETALL', P .. 'route:' .. room)
  for i = 1, #all, 2 do
    if parse_route(all[i + 1]).node == node then
      remove(room, all[i])
      removed = removed + 1
    end
  end
end
redis.call('DEL', P .. 'node_rooms:' .. node)
redis.call('SREM', P .. 'nodes', node)
return removed
