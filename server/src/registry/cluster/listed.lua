-- The rooms the start page lists, fullest first (equal counts by name): the first `limit` of
-- the sorted set join.lua and remove() keep, so a listing reads only what it answers.
-- ARGV: limit. Returns {name, people, locked 0|1, name, people, locked, ...}.
local limit = tonumber(ARGV[1])
if limit < 1 then return {} end
local ranked = redis.call('ZRANGE', P .. 'listed_by_people', 0, limit - 1, 'WITHSCORES')
local out = {}
for i = 1, #ranked, 2 do
  local room = ranked[i]
  table.insert(out, room)
  table.insert(out, -tonumber(ranked[i + 1]))
  table.insert(out, redis.call('HEXISTS', P .. 'meta:' .. room, 'salt'))
end
return out
