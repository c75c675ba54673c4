-- A join, checked against what lookup.lua saw: if the room changed in between (someone took the
-- key's place, or the room was created with another salt) the answer is 'retry'.
-- ARGV: 1 room, 2 key, 3 mode ('resume' | 'new'), 4 id, 5 session, 6 node, 7 PeerInfo JSON,
--       8 announcement (a frame, or '' for none), 9 salt lookup saw, 10 digest lookup
--       saw, 11 new salt, 12 new digest (for a room this join creates; '' for no password),
--       13 listed '1'|'0', 14 room capacity, 15 max rooms, 16 max peers, 17 the joiner's
--       address (as per-address limits count it), 18 max places per address, 19 max joins per
--       address per window, 20 the window in ms, 21 the node's verdict on the given password
--       against digest 10 ('' none given, '1' right, '0' wrong), 22 wrong passwords per address
--       per window, 23 that window in ms, 24 wrong passwords a room takes before waits,
--       25 the first wait in ms, 26 the longest, 27 how long a room remembers wrong passwords.
-- Passwords are never compared here: the node compared in constant time, and the verdict holds
-- only while the room's salt and digest are the ones it compared against (else 'retry').
-- Returns {'ok', resumed 0|1, locked 0|1, other members' PeerInfo JSON..., chat...} as
-- {status, resumed, locked, peers, chat}, or {status} when refused ({status, ms} for a refusal
-- that time lifts: 'too_many_joins', 'too_many_attempts').
local room, key, mode, id, session, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local info, announce = ARGV[7], ARGV[8]
local keys_key, meta, route_key = P .. 'keys:' .. room, P .. 'meta:' .. room, P .. 'route:' .. room
local current = redis.call('HGET', keys_key, key)

local function answer(resumed)
  local peers = {}
  local all = redis.call('HGETALL', P .. 'peers:' .. room)
  for i = 1, #all, 2 do
    if all[i] ~= id then table.insert(peers, all[i + 1]) end
  end
  local locked = redis.call('HEXISTS', meta, 'salt')
  return { 'ok', resumed, locked, peers, redis.call('LRANGE', P .. 'chat:' .. room, 0, -1) }
end

if mode == 'resume' then
  if current ~= id then return { 'retry' } end
  local old = route_of(room, id)
  redis.call('HSET', route_key, id, route_string(node, session, true, key))
  redis.call('HSET', P .. 'peers:' .. room, id, info)
  redis.call('SADD', P .. 'node_rooms:' .. node, room)
  if old.node ~= node then forget_node_if_gone(room, old.node) end
  if announce ~= '' then broadcast(room, id, 'D', announce) end
  if old.attached then
    -- The older socket (wherever it is) gives up its place.
    redis.call('PUBLISH', P .. 'node:' .. old.node, 'R' .. id .. ',' .. old.session)
  end
  return answer(1)
end

if current then return { 'retry' } end
local salt, digest = unpack(redis.call('HMGET', meta, 'salt', 'digest'))
if (salt or '') ~= ARGV[9] or (digest or '') ~= ARGV[10] then return { 'retry' } end
salt = salt or ''
-- A new place: the joiner's address first, so that one host cannot use up what the cluster has
-- for everyone. Joins count in a window that starts with the address's first.
local ip = ARGV[17]
local joins_key, places_key = P .. 'joins:' .. ip, P .. 'places:' .. ip
if tonumber(redis.call('GET', joins_key) or '0') >= tonumber(ARGV[19]) then
  return { 'too_many_joins', redis.call('PTTL', joins_key) }
end
if redis.call('INCR', joins_key) == 1 then redis.call('PEXPIRE', joins_key, ARGV[20]) end
if tonumber(redis.call('GET', places_key) or '0') >= tonumber(ARGV[18]) then
  return { 'too_many_places' }
end
if tonumber(redis.call('GET', P .. 'peer_count') or '0') >= tonumber(ARGV[16]) then
  return { 'server_full' }
end
if redis.call('EXISTS', route_key) == 1 then
  if salt ~= '' then
    local verdict = ARGV[21]
    if verdict == '' then return { 'password_required' } end
    -- While the address's budget is spent or the room makes attempts wait, no verdict counts.
    local failed_key = P .. 'failed:' .. ip
    local guesses_key, wait_key = P .. 'guesses:' .. room, P .. 'guess_wait:' .. room
    if tonumber(redis.call('GET', failed_key) or '0') >= tonumber(ARGV[22]) then
      return { 'too_many_attempts', redis.call('PTTL', failed_key) }
    end
    local wait = redis.call('PTTL', wait_key)
    if wait > 0 then return { 'too_many_attempts', wait } end
    if verdict ~= '1' then
      if redis.call('INCR', failed_key) == 1 then redis.call('PEXPIRE', failed_key, ARGV[23]) end
      local failures = redis.call('INCR', guesses_key)
      redis.call('PEXPIRE', guesses_key, ARGV[27])
      local free = tonumber(ARGV[24])
      if failures >= free then
        local delay = math.min(tonumber(ARGV[25]) * 2 ^ math.min(failures - free, 30), tonumber(ARGV[26]))
        if delay >= 1 then redis.call('SET', wait_key, '1', 'PX', string.format('%d', delay)) end
      end
      return { 'wrong_password' }
    end
    redis.call('DEL', guesses_key, wait_key)
  end
  if redis.call('HLEN', route_key) >= tonumber(ARGV[14]) then return { 'full' } end
else
  if redis.call('SCARD', P .. 'rooms') >= tonumber(ARGV[15]) then return { 'server_full' } end
  redis.call('DEL', meta, P .. 'chat:' .. room, P .. 'peers:' .. room, keys_key, P .. 'ips:' .. room,
    P .. 'guesses:' .. room, P .. 'guess_wait:' .. room)
  if ARGV[11] ~= '' then redis.call('HSET', meta, 'salt', ARGV[11], 'digest', ARGV[12]) end
  redis.call('HSET', meta, 'listed', ARGV[13])
  redis.call('SADD', P .. 'rooms', room)
end
redis.call('HSET', route_key, id, route_string(node, session, true, key))
redis.call('HSET', P .. 'peers:' .. room, id, info)
redis.call('HSET', keys_key, key, id)
redis.call('HSET', P .. 'ips:' .. room, id, ip)
redis.call('INCR', places_key)
redis.call('INCR', P .. 'peer_count')
redis.call('SADD', P .. 'node_rooms:' .. node, room)
if redis.call('HGET', meta, 'listed') == '1' then
  redis.call('ZADD', P .. 'listed_by_people', -redis.call('HLEN', route_key), room)
end
broadcast(room, id, 'D', announce)
return answer(0)
