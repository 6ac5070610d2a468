"""Lua scripts: every job state transition is one atomic Redis step.

Each script gets the key prefix, the clock (``now`` epoch seconds and ``now_iso``) and its
arguments in ARGV and builds key names itself (single Redis primary; not Redis Cluster).
A transition writes the job hash, moves the status index, touches the stream / delayed
set / dead-letter stream, and appends a CloudEvent to the event stream, all or nothing.
"""

from __future__ import annotations

PRELUDE = r"""
local P = ARGV[1]
local NOW = ARGV[2]
local NOW_ISO = ARGV[3]
local EVENTS_MAXLEN = ARGV[4]
local GROUP = 'workers'
local TERMINAL = {succeeded=true, failed=true, dead=true, cancelled=true}

local function jkey(id) return P .. ':job:' .. id end

local function set_status(id, old, new)
  if old then redis.call('ZREM', P .. ':idx:status:' .. old, id) end
  redis.call('ZADD', P .. ':idx:status:' .. new, 0, id)
  redis.call('HSET', jkey(id), 'status', new, 'updated_at', NOW)
end

local function emit(etype, id, extra)
  local j = redis.call('HMGET', jkey(id), 'task', 'queue', 'correlation_id', 'attempts', 'status',
                       'traceparent')
  local data = {job_id=id, task=j[1], queue=j[2], correlation_id=j[3] or '',
                attempt=tonumber(j[4] or '0'), status=j[5]}
  if extra then for k, v in pairs(extra) do data[k] = v end end
  local seq = redis.call('INCR', P .. ':events:seq')
  local ce = {specversion='1.0', id=tostring(seq), source='/workers-core/' .. (j[2] or ''),
              type=etype, subject=id, time=NOW_ISO,
              datacontenttype='application/json', data=data}
  -- CloudEvents distributed-tracing extension: the submitter's W3C trace context.
  if j[6] and j[6] ~= '' then ce.traceparent = j[6] end
  local ev = cjson.encode(ce)
  redis.call('XADD', P .. ':events', 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'event', ev)
end

local function finish(id, ttl)
  redis.call('HSET', jkey(id), 'finished_at', NOW)
  redis.call('HDEL', jkey(id), 'consumer', 'entry')
  redis.call('EXPIRE', jkey(id), ttl)
  redis.call('PUBLISH', P .. ':done', id)
end

local function drop_entry(queue, entry)
  if entry and entry ~= '' then
    local s = P .. ':q:' .. queue
    redis.call('XACK', s, GROUP, entry)
    redis.call('XDEL', s, entry)
  end
end

-- Whether this delivery (entry, attempt) still runs the job. If not, a newer delivery owns it
-- (or it is over): never ack an entry someone else holds; drop ours once the job is final.
local function still_owned(id, entry, attempt, queue)
  local j = redis.call('HMGET', jkey(id), 'status', 'attempts', 'entry')
  if j[1] == 'running' and j[2] == attempt and j[3] == entry then return true end
  if j[1] == false or TERMINAL[j[1]] then drop_entry(queue, entry) end
  return false
end

local function enqueue(id, queue)
  local entry = redis.call('XADD', P .. ':q:' .. queue, '*', 'job', id)
  redis.call('HSET', jkey(id), 'entry', entry)
  return entry
end
"""

# Stores and enqueues jobs: {fields: {...all hash fields as strings...}, idem: key|"",
# fp: fingerprint, due: epoch|""} -> flat {verdict, id, ...}, verdict new|dup|conflict.
SUBMIT_FN = r"""
local function submit_jobs(jobs, idem_ttl)
  local out = {}
  for _, job in ipairs(jobs) do
    local f = job.fields
    local id = f.id
    local verdict = nil
    if job.idem ~= '' then
      local ikey = P .. ':idem:' .. job.idem
      local existing = redis.call('GET', ikey)
      if existing then
        local sep = string.find(existing, '|', 1, true)
        local old_id = string.sub(existing, 1, sep - 1)
        if string.sub(existing, sep + 1) == job.fp then verdict = {'dup', old_id}
        else verdict = {'conflict', old_id} end
      else
        redis.call('SET', ikey, id .. '|' .. job.fp, 'EX', idem_ttl)
      end
    end
    if verdict then
      table.insert(out, verdict[1]); table.insert(out, verdict[2])
    else
      local args = {}
      for k, v in pairs(f) do table.insert(args, k); table.insert(args, v) end
      redis.call('HSET', jkey(id), unpack(args))
      redis.call('ZADD', P .. ':idx:all', 0, id)
      redis.call('ZADD', P .. ':idx:task:' .. f.task, 0, id)
      redis.call('SADD', P .. ':queues', f.queue)
      if job.due ~= '' and tonumber(job.due) > tonumber(NOW) then
        set_status(id, nil, 'scheduled')
        redis.call('ZADD', P .. ':delayed:' .. f.queue, job.due, id)
        emit('job.queued', id, {not_before=tonumber(job.due)})
      else
        set_status(id, nil, 'queued')
        enqueue(id, f.queue)
        emit('job.queued', id, nil)
      end
      table.insert(out, 'new'); table.insert(out, id)
    end
  end
  return out
end
"""

# ARGV[5] idempotency ttl, ARGV[6] JSON array of jobs (see SUBMIT_FN)
SUBMIT = PRELUDE + SUBMIT_FN + r"""
return submit_jobs(cjson.decode(ARGV[6]), ARGV[5])
"""

# ARGV[5] id, ARGV[6] entry, ARGV[7] consumer, ARGV[8] queue, ARGV[9] result ttl, ARGV[10] dlq maxlen
# -> {'run', attempts, payload, task, max_attempts, correlation_id, then, traceparent}
#    | {'skip', status}
#    | {'dead'}
START = PRELUDE + r"""
local id, entry, consumer, queue = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local st = redis.call('HGET', jkey(id), 'status')
if not st then drop_entry(queue, entry); return {'skip', 'gone'} end
if TERMINAL[st] then drop_entry(queue, entry); return {'skip', st} end
local current = redis.call('HGET', jkey(id), 'entry')
if current and current ~= entry then drop_entry(queue, entry); return {'skip', 'superseded'} end
local attempts = redis.call('HINCRBY', jkey(id), 'attempts', 1)
local max_attempts = tonumber(redis.call('HGET', jkey(id), 'max_attempts'))
if attempts > max_attempts then
  -- The worker running the last attempt was lost (crash, kill): give up with the reason.
  local err = cjson.encode({type='WorkerLost', retryable=false, attempt=attempts - 1,
    message='the replica running attempt ' .. (attempts - 1) .. ' was lost and no attempts are left'})
  redis.call('HSET', jkey(id), 'error', err, 'attempts', attempts - 1)
  set_status(id, st, 'dead')
  local d = redis.call('XADD', P .. ':dlq:' .. queue, 'MAXLEN', '~', ARGV[10], '*', 'job', id, 'error', err)
  redis.call('HSET', jkey(id), 'dlq_entry', d)
  drop_entry(queue, entry)
  emit('job.dead', id, {error=cjson.decode(err)})
  finish(id, ARGV[9])
  return {'dead'}
end
redis.call('HSET', jkey(id), 'started_at', NOW, 'consumer', consumer, 'entry', entry)
set_status(id, st, 'running')
emit('job.started', id, {consumer=consumer})
local j = redis.call('HMGET', jkey(id), 'payload', 'task', 'max_attempts', 'correlation_id',
                     'then', 'traceparent')
return {'run', attempts, j[1], j[2], j[3], j[4] or '', j[5] or '', j[6] or ''}
"""

# ARGV[5] id, ARGV[6] entry, ARGV[7] attempt, ARGV[8] queue, ARGV[9] result json, ARGV[10] ttl,
# ARGV[11] follow-up jobs (JSON, see SUBMIT_FN), ARGV[12] idempotency ttl, ARGV[13] chain error
SUCCEED = PRELUDE + SUBMIT_FN + r"""
local id, entry, attempt, queue = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if not still_owned(id, entry, attempt, queue) then return 'stale' end
redis.call('HSET', jkey(id), 'result', ARGV[9])
redis.call('HDEL', jkey(id), 'error', 'cancel_requested')
set_status(id, 'running', 'succeeded')
drop_entry(queue, entry)
emit('job.succeeded', id, nil)
-- The chain's children are created in this same step: never lost, never created twice.
local children = cjson.decode(ARGV[11])
if #children > 0 then
  local verdicts = submit_jobs(children, ARGV[12])
  local ids = {}
  for i = 2, #verdicts, 2 do table.insert(ids, verdicts[i]) end
  redis.call('HSET', jkey(id), 'children', cjson.encode(ids))
end
if ARGV[13] ~= '' then
  redis.call('HSET', jkey(id), 'chain_error', ARGV[13])
  emit('job.chain_failed', id, {error=ARGV[13]})
end
finish(id, ARGV[10])
return 'ok'
"""

# ARGV[5] id, ARGV[6] entry, ARGV[7] attempt, ARGV[8] queue, ARGV[9] error json, ARGV[10] due
RETRY_LATER = PRELUDE + r"""
local id, entry, attempt, queue = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if not still_owned(id, entry, attempt, queue) then return 'stale' end
redis.call('HSET', jkey(id), 'error', ARGV[9])
redis.call('HDEL', jkey(id), 'consumer', 'entry')
set_status(id, 'running', 'retrying')
redis.call('ZADD', P .. ':delayed:' .. queue, ARGV[10], id)
drop_entry(queue, entry)
emit('job.retrying', id, {retry_at=tonumber(ARGV[10]), error=cjson.decode(ARGV[9])})
return 'ok'
"""

# ARGV[5] id, ARGV[6] entry, ARGV[7] attempt, ARGV[8] queue, ARGV[9] error json,
# ARGV[10] final status (failed|dead|cancelled), ARGV[11] ttl, ARGV[12] dlq maxlen
FAIL = PRELUDE + r"""
local id, entry, attempt, queue, final = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[10]
if not still_owned(id, entry, attempt, queue) then return 'stale' end
redis.call('HSET', jkey(id), 'error', ARGV[9])
set_status(id, 'running', final)
if final == 'dead' then
  local d = redis.call('XADD', P .. ':dlq:' .. queue, 'MAXLEN', '~', ARGV[12], '*', 'job', id, 'error', ARGV[9])
  redis.call('HSET', jkey(id), 'dlq_entry', d)
end
drop_entry(queue, entry)
emit('job.' .. final, id, {error=cjson.decode(ARGV[9])})
finish(id, ARGV[11])
return 'ok'
"""

# ARGV[5] queue, ARGV[6] limit -> number of jobs moved from the delayed set to the stream
PROMOTE = PRELUDE + r"""
local queue = ARGV[5]
local dkey = P .. ':delayed:' .. queue
local due = redis.call('ZRANGEBYSCORE', dkey, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[6]))
local moved = 0
for _, id in ipairs(due) do
  redis.call('ZREM', dkey, id)
  local st = redis.call('HGET', jkey(id), 'status')
  if st == 'scheduled' or st == 'retrying' then
    set_status(id, st, 'queued')
    enqueue(id, queue)
    emit('job.queued', id, nil)
    moved = moved + 1
  end
end
return moved
"""

# ARGV[5] id, ARGV[6] ttl -> {'cancelled'} | {'requested'} | {'terminal', status} | {'missing'}
CANCEL = PRELUDE + r"""
local id = ARGV[5]
local j = redis.call('HMGET', jkey(id), 'status', 'queue', 'entry')
local st, queue = j[1], j[2]
if not st then return {'missing'} end
if TERMINAL[st] then return {'terminal', st} end
if st == 'running' then
  redis.call('HSET', jkey(id), 'cancel_requested', '1')
  return {'requested'}
end
redis.call('ZREM', P .. ':delayed:' .. queue, id)
if j[3] then redis.call('XDEL', P .. ':q:' .. queue, j[3]) end
set_status(id, st, 'cancelled')
emit('job.cancelled', id, nil)
finish(id, ARGV[6])
return {'cancelled'}
"""

# ARGV[5] id -> {'queued'} | {'conflict', status} | {'missing'}
REQUEUE = PRELUDE + r"""
local id = ARGV[5]
local j = redis.call('HMGET', jkey(id), 'status', 'queue', 'dlq_entry')
local st, queue = j[1], j[2]
if not st then return {'missing'} end
if st ~= 'failed' and st ~= 'dead' then return {'conflict', st} end
if j[3] then redis.call('XDEL', P .. ':dlq:' .. queue, j[3]) end
redis.call('PERSIST', jkey(id))
-- Attempts keep counting (they happened); the budget grows by the original allowance.
local j2 = redis.call('HMGET', jkey(id), 'attempts', 'attempt_budget')
redis.call('HSET', jkey(id), 'max_attempts', tonumber(j2[1]) + tonumber(j2[2]))
redis.call('HDEL', jkey(id), 'finished_at', 'result', 'dlq_entry', 'cancel_requested')
set_status(id, st, 'queued')
enqueue(id, queue)
emit('job.queued', id, {manual_retry=true})
-- The job as it stood when requeued: a consumer may pick it up before the caller reads.
return {'queued', redis.call('HGETALL', jkey(id))}
"""
