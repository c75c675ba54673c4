-- Shared by the confab scripts that change a room. Every change of a room happens inside one
-- script, so Redis applies it atomically with respect to every other node.
--
-- Per room R (the name as given, after the prefix; see mod.rs for the whole layout):
--   confab:peers:R   hash  id -> PeerInfo JSON (opaque here)
--   confab:route:R   hash  id -> "node|session|attached|key"
--   confab:keys:R    hash  key -> id (who may resume which place)
--   confab:meta:R    hash  salt, digest (password), listed
--   confab:chat:R    list  ChatMessage JSON, oldest first
--   confab:ips:R     hash  id -> the client address that made the place
--   confab:guesses:R counter (expires) wrong passwords given for the room
--   confab:guess_wait:R  string (expires) present while attempts on the room must wait
-- Per client address A (IPv6: its /64): confab:places:A (its places, attached or held),
-- confab:joins:A (its joins in the current window), confab:failed:A (its wrong passwords in
-- the current window); the last two expire with their windows.
-- Cluster-wide: confab:rooms (set of names), confab:listed_by_people (sorted set: the listed
-- rooms, scored by minus their member count, so that ZRANGE gives the fullest first and equal
-- counts by name), confab:peer_count, confab:ids,
-- confab:nodes (set), confab:alive:N (presence, expires), confab:node_rooms:N (set of rooms
-- where node N has members). Node N receives its deliveries on channel confab:node:N.
local P = 'confab:'

local function parse_route(r)
  local node, session, attached, key = string.match(r, '^([^|]*)|(%d+)|([01])|(.*)$')
  return { node = node, session = session, attached = attached == '1', key = key }
end

local function route_of(room, id)
  local r = redis.call('HGET', P .. 'route:' .. room, id)
  if not r then return nil end
  return parse_route(r)
end

local function route_string(node, session, attached, key)
  return node .. '|' .. session .. '|' .. (attached and '1' or '0') .. '|' .. key
end

-- Publishes an envelope (see envelope.rs) to every attached member of `room` but `except`, one
-- per node: kind 'D' with `body` a frame the node encoded (never read here), or kind 'L' with
-- `body` the id of a member who left.
local function broadcast(room, except, kind, body)
  local all = redis.call('HGETALL', P .. 'route:' .. room)
  local by_node = {}
  for i = 1, #all, 2 do
    if all[i] ~= except then
      local r = parse_route(all[i + 1])
      if r.attached then
        by_node[r.node] = by_node[r.node] or {}
        table.insert(by_node[r.node], all[i])
      end
    end
  end
  for node, ids in pairs(by_node) do
    redis.call('PUBLISH', P .. 'node:' .. node, kind .. table.concat(ids, ',') .. '\n' .. body)
  end
end

-- Drops `room` from the rooms of `node` if none of its members are there any more.
local function forget_node_if_gone(room, node)
  for _, v in ipairs(redis.call('HVALS', P .. 'route:' .. room)) do
    if parse_route(v).node == node then return end
  end
  redis.call('SREM', P .. 'node_rooms:' .. node, room)
end

-- Removes member `id` from `room`, tells those who stay and drops the room once it is empty.
local function remove(room, id)
  local r = route_of(room, id)
  if not r then return false end
  redis.call('HDEL', P .. 'route:' .. room, id)
  redis.call('HDEL', P .. 'peers:' .. room, id)
  if redis.call('HGET', P .. 'keys:' .. room, r.key) == id then
    redis.call('HDEL', P .. 'keys:' .. room, r.key)
  end
  redis.call('DECR', P .. 'peer_count')
  local ip = redis.call('HGET', P .. 'ips:' .. room, id)
  if ip then
    redis.call('HDEL', P .. 'ips:' .. room, id)
    if redis.call('DECR', P .. 'places:' .. ip) <= 0 then redis.call('DEL', P .. 'places:' .. ip) end
  end
  broadcast(room, nil, 'L', id)
  forget_node_if_gone(room, r.node)
  local left = redis.call('HLEN', P .. 'route:' .. room)
  if left == 0 then
    redis.call('DEL', P .. 'peers:' .. room, P .. 'route:' .. room, P .. 'keys:' .. room,
      P .. 'meta:' .. room, P .. 'chat:' .. room, P .. 'ips:' .. room, P .. 'guesses:' .. room,
      P .. 'guess_wait:' .. room)
    redis.call('SREM', P .. 'rooms', room)
    redis.call('ZREM', P .. 'listed_by_people', room)
  elseif redis.call('HGET', P .. 'meta:' .. room, 'listed') == '1' then
    redis.call('ZADD', P .. 'listed_by_people', -left, room)
  end
  return true
end
