/**
 * Lua scripts of the Redis directory and membership, registered with ioredis `defineCommand`
 * (EVALSHA, with EVAL on NOSCRIPT). Each script touches the keys of one hash slot only, except
 * `claimTenant` (see docs/cluster.md, "Redis Cluster"). The data model is in docs/cluster.md.
 *
 * Conventions: numbers travel as decimal strings; a tenant hash carries a `rev` (Redis server time
 * in µs, and always above the previous rev) that orders index updates; results are arrays whose
 * first element is a status: 1 = applied, 0 = expectation not met, negative = a specific refusal.
 */

/** Shared prologue: the next revision of a tenant hash (server time in µs, strictly increasing). */
const NEXT_REV = `
local function next_rev(prev)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local p = tonumber(prev or '0') or 0
  if now <= p then now = p + 1 end
  return string.format('%.0f', now)
end`;

/** KEYS[1] tenant · ARGV field/value pairs → rev, or nil when the tenant exists. */
export const CREATE_TENANT = `${NEXT_REV}
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local rev = next_rev(nil)
redis.call('HSET', KEYS[1], 'rev', rev, unpack(ARGV))
return rev`;

/**
 * KEYS[1] tenant · ARGV[1] expected incarnation, ARGV[2] expected epoch, ARGV[3] channel,
 * ARGV[4..] patch field/value pairs → {-1} missing, {0} mismatch, {1, field, value, ...} applied.
 * Publishes {tenant, epoch, node} on the channel when the epoch or the node changed.
 */
export const CAS_TENANT = `${NEXT_REV}
local cur = redis.call('HMGET', KEYS[1], 'incarnation', 'epoch', 'node', 'rev', 'id')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return {0} end
local patch = {}
for i = 4, #ARGV do patch[#patch + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'rev', next_rev(cur[4]), unpack(patch))
local after = redis.call('HMGET', KEYS[1], 'epoch', 'node')
if after[1] ~= cur[2] or after[2] ~= cur[3] then
  redis.call('PUBLISH', ARGV[3], cjson.encode({tenant = cur[5], epoch = tonumber(after[1]), node = after[2]}))
end
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out`;

/**
 * KEYS[1] tenant · ARGV[1] incarnation, ARGV[2] channel → {1, rev} removed, {0} not this incarnation.
 * Publishes {tenant, epoch, node, removed: true}.
 */
export const REMOVE_TENANT = `${NEXT_REV}
local cur = redis.call('HMGET', KEYS[1], 'incarnation', 'rev', 'id', 'epoch', 'node')
if not cur[1] or cur[1] ~= ARGV[1] then return {0} end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({tenant = cur[3], epoch = tonumber(cur[4]), node = cur[5], removed = true}))
return {1, next_rev(cur[2])}`;

/**
 * Brings the secondary indexes in line with one tenant's state at revision `rev`; an update older
 * than the one already indexed is ignored, so concurrent writers cannot leave an older state behind.
 * KEYS[1] all (ids), KEYS[2] by region, KEYS[3] by residency, KEYS[4] by node (members
 * `<value>\\0<id>`, score 0, read with ZRANGEBYLEX), KEYS[5] indexed state per id (JSON; a removed
 * tenant leaves `{rev}` so a late update cannot bring it back), KEYS[6] tenant count per region.
 * ARGV[1] id, ARGV[2] rev, ARGV[3] '1' present / '0' removed, ARGV[4] incarnation, ARGV[5] region,
 * ARGV[6] residency, ARGV[7] node → 1 applied, 0 stale.
 */
export const SYNC_INDEX = `
local id, rev = ARGV[1], tonumber(ARGV[2])
local raw = redis.call('HGET', KEYS[5], id)
if raw then
  local old = cjson.decode(raw)
  if tonumber(old.rev) >= rev then return 0 end
  if old.region then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], old.region .. '\\0' .. id)
    redis.call('ZREM', KEYS[3], old.residency .. '\\0' .. id)
    redis.call('ZREM', KEYS[4], old.node .. '\\0' .. id)
    if redis.call('HINCRBY', KEYS[6], old.region, -1) <= 0 then redis.call('HDEL', KEYS[6], old.region) end
  end
end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], 0, id)
  redis.call('ZADD', KEYS[2], 0, ARGV[5] .. '\\0' .. id)
  redis.call('ZADD', KEYS[3], 0, ARGV[6] .. '\\0' .. id)
  redis.call('ZADD', KEYS[4], 0, ARGV[7] .. '\\0' .. id)
  redis.call('HINCRBY', KEYS[6], ARGV[5], 1)
  redis.call('HSET', KEYS[5], id, cjson.encode({rev = ARGV[2], inc = ARGV[4], region = ARGV[5], residency = ARGV[6], node = ARGV[7]}))
else
  redis.call('HSET', KEYS[5], id, cjson.encode({rev = ARGV[2]}))
end
return 1`;

/**
 * KEYS[1] lease of the node, KEYS[2] node registry (hash id → JSON) · ARGV[1] lease id, ARGV[2] ttl
 * ms, ARGV[3] node id, ARGV[4] node JSON → 1 acquired, 0 another live lease holds the id.
 */
export const JOIN_NODE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1`;

/** KEYS[1] lease · ARGV[1] lease id, ARGV[2] ttl ms → 1 extended, 0 the lease is gone or someone else's. */
export const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** KEYS[1] lease, KEYS[2] registry · ARGV[1] lease id, ARGV[2] node id, ARGV[3] info JSON → 1 announced, 0 the lease is not ours. */
export const ANNOUNCE_NODE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`;

/** KEYS[1] lease, KEYS[2] registry · ARGV[1] lease id, ARGV[2] node id → 1 left, 0 the lease was not ours. */
export const LEAVE_NODE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1`;

/**
 * The failover's fencing step: epoch + 1 and a new node, only while the current owner has no live
 * lease and the new node has one. KEYS[1] tenant, KEYS[2] owner's lease, KEYS[3] new node's lease ·
 * ARGV[1] expected incarnation, ARGV[2] expected epoch, ARGV[3] expected node, ARGV[4] new node,
 * ARGV[5] channel → {-1} missing, {0} mismatch, {-2} owner alive,
 * {-3} new node has no live lease (or is the owner), {1, field, value, ...} claimed.
 */
export const CLAIM_TENANT = `${NEXT_REV}
local cur = redis.call('HMGET', KEYS[1], 'incarnation', 'epoch', 'node', 'rev', 'id')
if not cur[1] then return {-1} end
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] or cur[3] ~= ARGV[3] then return {0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {-2} end
if ARGV[4] == ARGV[3] or redis.call('EXISTS', KEYS[3]) == 0 then return {-3} end
local epoch = string.format('%.0f', tonumber(cur[2]) + 1)
redis.call('HSET', KEYS[1], 'rev', next_rev(cur[4]), 'epoch', epoch, 'node', ARGV[4])
redis.call('PUBLISH', ARGV[5], cjson.encode({tenant = cur[5], epoch = tonumber(epoch), node = ARGV[4]}))
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 1)
return out`;

/**
 * Append-only list: KEYS[1] list · ARGV[1] expected length, ARGV[2..] items → the new length, or
 * -1 when the list is not that long any more (someone appended first: re-read and retry).
 */
export const APPEND_IF_LENGTH = `
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
return redis.call('LLEN', KEYS[1])`;
