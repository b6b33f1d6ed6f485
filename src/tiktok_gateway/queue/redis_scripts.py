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
local function enqueued(group) return P .. ':enqueued:' .. group end
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
-- redis.call(head..., args...) in slices of 1,000 arguments (Lua's unpack has a limit of a few
-- thousand); the elements of the replies that are lists, joined in order.
local function chunked(head, args)
  local joined = {}
  for i = 1, #args, 1000 do
    local call = {unpack(head)}
    for j = i, math.min(i + 999, #args) do call[#call + 1] = args[j] end
    local reply = redis.call(unpack(call))
    if type(reply) == 'table' then
      for _, v in ipairs(reply) do joined[#joined + 1] = v end
    end
  end
  return joined
end
-- Acknowledge and delete the items, with everything kept about them: a few calls for all.
local function remove(numbers)
  if #numbers == 0 then return end
  local ids, members = {}, {}
  for i, n in ipairs(numbers) do
    ids[i] = '0-' .. n
    members[i] = pad(n)
  end
  chunked({'XACK', STREAM, CG}, ids)
  chunked({'XDEL', STREAM}, ids)
  for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do
    chunked({'ZREM', ready(group)}, members)
    chunked({'ZREM', enqueued(group)}, members)
    if redis.call('ZCARD', ready(group)) == 0 then redis.call('SREM', GROUPS, group) end
  end
  chunked({'ZREM', LEASED}, members)
  chunked({'HDEL', LEASES}, numbers)
  chunked({'HDEL', ATTEMPTS}, numbers)
end
local function append(by_key, key, ...)
  local list = by_key[key]
  if not list then list = {}; by_key[key] = list end
  for _, v in ipairs({...}) do list[#list + 1] = v end
end
-- Entries no worker has read yet join their group's ready set (available since their put) and
-- enqueued set, in stream order, until `wanted` entries of the groups `taken(group)` names have
-- joined (later ones cannot come before those) or `max_read` entries were read. Entries of other
-- groups join their own sets all the same. Returns number -> fields of the entries read: read by
-- `consumer` just now, so already its own (no claim needed).
local function join(consumer, wanted, max_read, taken)
  local read, fresh, joining = 0, {}, {}
  while wanted > 0 and read < max_read do
    local count = math.min(wanted, 1000)
    local got = redis.call('XREADGROUP', 'GROUP', CG, consumer, 'COUNT', count,
      'STREAMS', STREAM, '>')
    if not got then break end
    local list = got[1][2]
    for _, e in ipairs(list) do
      local f = fields(e[2])
      local n = string.sub(e[1], 3)
      fresh[n] = f
      append(joining, f.group, f.enqueued_at, pad(n))
      if taken(f.group) then wanted = wanted - 1 end
    end
    read = read + #list
    if #list < count then break end
  end
  for group, args in pairs(joining) do
    chunked({'ZADD', ready(group)}, args)
    chunked({'ZADD', enqueued(group)}, args)
    redis.call('SADD', GROUPS, group)
  end
  return fresh
end
"""

# ARGV: prefix, then (group, payload, enqueued_at) per item. One call instead of one XADD each in
# a MULTI: the client encodes and parses one command, not one per item.
PUT: Final = (
    _COMMON
    + """
for i = 2, #ARGV, 3 do
  redis.call('XADD', STREAM, '0-*', 'group', ARGV[i], 'payload', ARGV[i + 1],
    'enqueued_at', ARGV[i + 2])
end
return 0
"""
)

# ARGV: prefix, now, lease_until, limit, consumer, max_read, mode, groups... (distinct): mode
# 'except' takes every group but those listed, 'only' takes the listed groups alone.
# Returns {number, leases, group, payload, attempts, enqueued_at} per leased item, in lease order.
# Commands take many members at once (chunked for Lua's unpack): a lease of 1,000 items makes a
# few dozen calls, not several per item.
LEASE: Final = (
    _COMMON
    + """
local now, lease_until, limit, consumer = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local max_read = math.max(tonumber(ARGV[6]), limit)  -- never fewer than a lease may take
local only, listed = ARGV[7] == 'only', {}
for i = 8, #ARGV do listed[ARGV[i]] = true end
local function taken(group)  -- whether this lease takes items of `group`
  if only then return listed[group] == true end
  return not listed[group]
end
-- 1. Unread entries join their sets, until `limit` of the groups taken have (`join`).
local fresh = join(consumer, limit, max_read, taken)
-- 2. The earliest available items of the groups taken, in (available_at, number) order. With
-- 'only' these are the listed groups' sets alone: a lease of one group reads no other's.
local groups = {}
if only then
  for i = 8, #ARGV do groups[#groups + 1] = ARGV[i] end
else
  for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do
    if taken(group) then groups[#groups + 1] = group end
  end
end
local candidates = {}
for _, group in ipairs(groups) do
  local r = redis.call('ZRANGEBYSCORE', ready(group), '-inf', now,
    'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #r, 2 do
    candidates[#candidates + 1] = {r[i], tonumber(r[i + 1]), group}
  end
end
table.sort(candidates, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1]
end)
-- 3. Lease them: hidden until lease_until, owned (XCLAIM) by this consumer.
local chosen, numbers, claim = {}, {}, {}
for i = 1, math.min(limit, #candidates) do
  local m, group = candidates[i][1], candidates[i][3]
  local n = string.match(m, '^0*(%d+)$')
  chosen[#chosen + 1] = {m, group, n}
  numbers[#numbers + 1] = n
  if not fresh[n] then claim[#claim + 1] = '0-' .. n end
end
local claimed = {}
for _, e in ipairs(chunked({'XCLAIM', STREAM, CG, consumer, 0}, claim)) do
  claimed[string.sub(e[1], 3)] = fields(e[2])
end
local leases = chunked({'HMGET', LEASES}, numbers)  -- false where there is none yet
local attempts = chunked({'HMGET', ATTEMPTS}, numbers)
local out, hidden, gone, lease_counts, lease_ends = {}, {}, {}, {}, {}
for i, c in ipairs(chosen) do
  local m, group, n = c[1], c[2], c[3]
  -- Not pending (its consumer group was recreated): leased all the same, while it exists.
  local f = fresh[n] or claimed[n] or entry(n)
  if f then
    local count = (tonumber(leases[i]) or 0) + 1
    append(hidden, group, lease_until, m)
    lease_counts[#lease_counts + 1] = n
    lease_counts[#lease_counts + 1] = count
    lease_ends[#lease_ends + 1] = lease_until
    lease_ends[#lease_ends + 1] = m
    out[#out + 1] = {n, count, group, f.payload, attempts[i] or '0', f.enqueued_at}
  else
    append(gone, group, m)  -- no longer in the stream: nothing to lease
  end
end
for group, args in pairs(hidden) do chunked({'ZADD', ready(group)}, args) end
if #out > 0 then
  chunked({'HSET', LEASES}, lease_counts)
  chunked({'ZADD', LEASED}, lease_ends)
end
for group, args in pairs(gone) do
  chunked({'ZREM', ready(group)}, args)
  chunked({'ZREM', enqueued(group)}, args)
end
return out
"""
)

# ARGV: prefix, numbers... Removes the items (whatever their lease).
ACK: Final = (
    _COMMON
    + """
local numbers = {}
for i = 2, #ARGV do numbers[#numbers + 1] = ARGV[i] end
remove(numbers)
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

# The write of one dead letter, the same in DEAD_LETTER and EXPIRE (one text, so the two cannot
# write different records): the record of item `n` (its stream fields `f`, its attempts) and its
# member in the dead letters, scored by `now`: the ARGV text, not its tonumber (written back, a
# number may lose digits). The caller removes the items (`remove`), all at once.
_BURY: Final = """
local function bury(n, f, now, reason, code, message, request_id)
  redis.call('HSET', P .. ':dead:' .. n, 'group', f.group, 'payload', f.payload,
    'attempts', redis.call('HGET', ATTEMPTS, n) or '0', 'enqueued_at', f.enqueued_at,
    'dead_at', now, 'reason', reason, 'code', code, 'message', message,
    'request_id', request_id)
  redis.call('ZADD', DEAD, now, pad(n))
end
"""

# ARGV: prefix, now, then (number, reason, code or '', message, request_id) per letter.
DEAD_LETTER: Final = (
    _COMMON
    + _BURY
    + """
local now, moved, numbers = ARGV[2], {}, {}
for i = 3, #ARGV, 5 do
  local n = ARGV[i]
  local f = not moved[n] and entry(n)  -- the same item twice: the first letter counts
  if f then
    bury(n, f, now, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
    moved[n] = true
    numbers[#numbers + 1] = n
  end
end
remove(numbers)
return 0
"""
)

# ARGV: prefix, now, consumer, max_read, group, before, limit, scan, message. Moves up to `limit`
# of the group's items put before `before` and not leased now to the dead letters as 'expired',
# oldest first, of the first `scan` its enqueued set holds; unread entries join their sets first
# (as a lease's do). Returns how many moved.
EXPIRE: Final = (
    _COMMON
    + _BURY
    + """
local now, consumer, max_read = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local group, before, limit, scan = ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local message = ARGV[9]
join(consumer, limit, math.max(max_read, limit), function(g) return g == group end)
local moved, gone = {}, {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', enqueued(group), '-inf', '(' .. before,
    'LIMIT', 0, scan)) do
  if #moved >= limit then break end
  local lease_until = redis.call('ZSCORE', LEASED, m)
  if not lease_until or tonumber(lease_until) <= now then
    local n = string.match(m, '^0*(%d+)$')
    local f = entry(n)
    if f then
      bury(n, f, ARGV[2], 'expired', '', message, '')
      moved[#moved + 1] = n
    else
      gone[#gone + 1] = n  -- no longer in the stream: only its set members are left
    end
  end
end
remove(moved)
remove(gone)
return #moved
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

# ARGV: prefix, now. Reads only, in one script: one snapshot (as a MULTI would be), and allowed
# while Redis refuses writes (out of memory), where a MULTI is refused as a whole, so /readyz and
# /metrics still show the queue. Returns depth, leased, the oldest entry's enqueued_at (false
# when empty), dead letters.
STATS: Final = (
    _COMMON
    + """
local first = redis.call('XRANGE', STREAM, '-', '+', 'COUNT', 1)
local oldest = false
if first[1] then oldest = fields(first[1][2]).enqueued_at end
return {redis.call('XLEN', STREAM), redis.call('ZCOUNT', LEASED, '(' .. ARGV[2], '+inf'),
        oldest, redis.call('ZCARD', DEAD)}
"""
)

# KEYS: the probe key. ARGV: a value. A write Redis refuses as it refuses a put (out of memory,
# MISCONF, a read-only replica: a script's writes are checked alike), of a key that expires by
# itself. Returns OK.
PROBE: Final = """
return redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)
"""
