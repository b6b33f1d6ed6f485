"""The Lua scripts of the Redis Streams queue (``redis_streams.py`` documents the layout).

Every script that changes more than one key runs as one script, so it is atomic for every
process sharing the queue. Each gets ``KEYS = [stream, groups, leased, leases, attempts, dead]``
and ``ARGV[1]`` = the key prefix (with its hash tag), from which the per-group ``ready`` sets and
the per-item dead records are named.
"""

from __future__ import annotations

from typing import Final

# Shared by every script. ``pad`` makes sorted-set members of item numbers that sort as numbers
# (equal scores order by member, bytewise).
_COMMON: Final = """
local P = ARGV[1]
local STREAM, GROUPS, LEASED = KEYS[1], KEYS[2], KEYS[3]
local LEASES, ATTEMPTS, DEAD = KEYS[4], KEYS[5], KEYS[6]
local CG = 'delivery'
local function pad(n) return string.rep('0', 19 - #n) .. n end
local function ready(group) return P .. ':ready:' .. group end
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local function entry(n)
  local found = redis.call('XRANGE', STREAM, '0-' .. n, '0-' .. n)
  if found[1] then return fields(found[1][2]) end
  return nil
end
local function forget(n, group)
  local m = pad(n)
  redis.call('XACK', STREAM, CG, '0-' .. n)
  redis.call('XDEL', STREAM, '0-' .. n)
  redis.call('ZREM', ready(group), m)
  if redis.call('ZCARD', ready(group)) == 0 then redis.call('SREM', GROUPS, group) end
  redis.call('ZREM', LEASED, m)
  redis.call('HDEL', LEASES, n)
  redis.call('HDEL', ATTEMPTS, n)
end
"""

# ARGV: prefix, now, lease_until, limit, consumer, max_read, excluded groups...
# Returns {number, leases, group, payload, attempts, enqueued_at} per leased item, in lease order.
LEASE: Final = (
    _COMMON
    + """
local now, lease_until, limit, consumer = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local max_read = tonumber(ARGV[6])
local excluded = {}
for i = 7, #ARGV do excluded[ARGV[i]] = true end
-- 1. Entries no worker has read yet join their group's ready set, available since their put.
local read = 0
while read < max_read do
  local got = redis.call('XREADGROUP', 'GROUP', CG, consumer, 'COUNT', 500, 'STREAMS', STREAM, '>')
  if not got then break end
  local list = got[1][2]
  for _, e in ipairs(list) do
    local f = fields(e[2])
    redis.call('ZADD', ready(f.group), f.enqueued_at, pad(string.sub(e[1], 3)))
    redis.call('SADD', GROUPS, f.group)
  end
  read = read + #list
  if #list < 500 then break end
end
-- 2. The earliest available items of every group not excluded, in (available_at, number) order.
local candidates = {}
for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do
  if not excluded[group] then
    local r = redis.call('ZRANGEBYSCORE', ready(group), '-inf', now,
      'WITHSCORES', 'LIMIT', 0, limit)
    for i = 1, #r, 2 do
      candidates[#candidates + 1] = {r[i], tonumber(r[i + 1]), group}
    end
  end
end
table.sort(candidates, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1]
end)
-- 3. Lease them: hidden until lease_until, owned (XCLAIM) by this consumer.
local out = {}
for i = 1, math.min(limit, #candidates) do
  local m, group = candidates[i][1], candidates[i][3]
  local n = string.match(m, '^0*(%d+)$')
  local claimed = redis.call('XCLAIM', STREAM, CG, consumer, 0, '0-' .. n)
  -- Not pending (its consumer group was recreated): leased all the same, while it exists.
  local f = (claimed[1] and fields(claimed[1][2])) or entry(n)
  if f then
    redis.call('ZADD', ready(group), lease_until, m)
    redis.call('ZADD', LEASED, lease_until, m)
    local leases = redis.call('HINCRBY', LEASES, n, 1)
    local attempts = redis.call('HGET', ATTEMPTS, n) or '0'
    out[#out + 1] = {n, leases, group, f.payload, attempts, f.enqueued_at}
  else
    redis.call('ZREM', ready(group), m)  -- no longer in the stream: nothing to lease
  end
end
return out
"""
)

# ARGV: prefix, numbers... Removes the items (whatever their lease).
ACK: Final = (
    _COMMON
    + """
for i = 2, #ARGV do
  local f = entry(ARGV[i])
  if f then forget(ARGV[i], f.group) end
end
return 0
"""
)

# ARGV: prefix, now, available_at, add (1: count an attempt), then (number, leases) pairs.
# Only a lease that is current (same lease count) and running (lease_until > now) is finished.
RETURN: Final = (
    _COMMON
    + """
local now, available_at, add = tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
for i = 5, #ARGV, 2 do
  local n, leases = ARGV[i], ARGV[i + 1]
  local m = pad(n)
  local lease_until = redis.call('ZSCORE', LEASED, m)
  if lease_until and tonumber(lease_until) > now and redis.call('HGET', LEASES, n) == leases then
    local f = entry(n)
    if f then
      redis.call('ZADD', ready(f.group), available_at, m)
      redis.call('ZREM', LEASED, m)
      if add then redis.call('HINCRBY', ATTEMPTS, n, 1) end
    end
  end
end
return 0
"""
)

# ARGV: prefix, now, then (number, reason, code or '', message, request_id) per letter.
DEAD_LETTER: Final = (
    _COMMON
    + """
local now = ARGV[2]
for i = 3, #ARGV, 5 do
  local n = ARGV[i]
  local f = entry(n)
  if f then
    redis.call('HSET', P .. ':dead:' .. n, 'group', f.group, 'payload', f.payload,
      'attempts', redis.call('HGET', ATTEMPTS, n) or '0', 'enqueued_at', f.enqueued_at,
      'dead_at', now, 'reason', ARGV[i + 1], 'code', ARGV[i + 2], 'message', ARGV[i + 3],
      'request_id', ARGV[i + 4])
    redis.call('ZADD', DEAD, now, pad(n))
    forget(n, f.group)
  end
end
return 0
"""
)

# ARGV: prefix, now, all ('1': every dead letter), numbers... (ascending). Returns the count.
REPLAY: Final = (
    _COMMON
    + """
local now, numbers = ARGV[2], {}
if ARGV[3] == '1' then
  for _, m in ipairs(redis.call('ZRANGE', DEAD, 0, -1)) do
    numbers[#numbers + 1] = string.match(m, '^0*(%d+)$')
  end
  table.sort(numbers, function(a, b) return pad(a) < pad(b) end)
else
  for i = 4, #ARGV do numbers[#numbers + 1] = ARGV[i] end
end
local count = 0
for _, n in ipairs(numbers) do
  local record = P .. ':dead:' .. n
  local d = fields(redis.call('HGETALL', record))
  if d.group then
    redis.call('XADD', STREAM, '0-*', 'group', d.group, 'payload', d.payload, 'enqueued_at', now)
    redis.call('DEL', record)
    redis.call('ZREM', DEAD, pad(n))
    count = count + 1
  end
end
return count
"""
)

# ARGV: prefix. Returns how many dead letters were deleted.
PURGE: Final = (
    _COMMON
    + """
local members = redis.call('ZRANGE', DEAD, 0, -1)
for _, m in ipairs(members) do
  redis.call('DEL', P .. ':dead:' .. string.match(m, '^0*(%d+)$'))
end
redis.call('DEL', DEAD)
return #members
"""
)

# ARGV: prefix, this process's consumer. Deletes the other consumers with nothing pending, in one
# step: between a separate check and the delete, a consumer could read entries, and deleting it
# would drop them from the pending list. Returns how many were deleted.
DROP_IDLE_CONSUMERS: Final = (
    _COMMON
    + """
local removed = 0
for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', STREAM, CG)) do
  local c = fields(flat)
  if c.pending == 0 and c.name ~= ARGV[2] then
    redis.call('XGROUP', 'DELCONSUMER', STREAM, CG, c.name)
    removed = removed + 1
  end
end
return removed
"""
)
