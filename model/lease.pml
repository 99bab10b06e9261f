/*
 * The claim / heartbeat / complete / release / takeover protocol of one idempotency record,
 * for `spin`. Three owners (request attempts on any process) race for one scope; a lease may
 * lapse at any moment (a GC pause, SIGSTOP, a slow handler) and an owner may crash at any moment.
 * Each store operation is one atomic step, as every store makes it one: the memory store's
 * check-and-set, SQLite's single upsert / UPDATE … WHERE owner_token, PostgreSQL's
 * INSERT … ON CONFLICT … WHERE / UPDATE … WHERE owner_token, Redis's SET NX and Lua scripts,
 * DynamoDB's conditional writes.
 *
 * Checked (docs/reliability.md):
 *   P1  never two accepted completions for one scope;
 *   P2  never a stale owner's write accepted (a write is accepted only from the owner of the
 *       current generation);
 *   P3  no acknowledged record lost: once a completion is accepted the record stays completed.
 * Compile with -DNOFENCE for the variant whose completion does not check the owner token
 * (a blind "set completed if in progress"): spin must refute it.
 */

#define OWNERS 3

mtype = { NONE, IN_PROGRESS, COMPLETED, RELEASED };

mtype state = NONE;
byte owner = 0;        /* owner token of the in-progress record (0: none) */
byte generation = 0;   /* rises on every acquisition (the fencing token) */
bool lapsed = false;   /* the lease has run out: a retry of the same request may take over */
byte completions = 0;  /* completions the store accepted */
bool acknowledged = false;

/* The clock: a live lease may lapse at any moment, while its owner still believes it holds it. */
active proctype clock() {
end:
  do
  :: atomic { state == IN_PROGRESS && !lapsed -> lapsed = true }
  od
}

/* Claim (store.claim): absent, released, or a lapsed lease of the same request → acquired. */
inline claim(me, mygen, got) {
  atomic {
    if
    :: state == NONE || state == RELEASED || (state == IN_PROGRESS && lapsed) ->
         generation++; owner = me; state = IN_PROGRESS; lapsed = false; mygen = generation; got = true
    :: else -> got = false
    fi
  }
}

/* Heartbeat (store.heartbeat): renews only the owner's own in-progress record. */
inline heartbeat(me, ok) {
  atomic {
    if
    :: state == IN_PROGRESS && owner == me -> lapsed = false; ok = true
    :: else -> ok = false
    fi
  }
}

/* Complete (store.complete): compare-and-set on the owner token. */
inline complete(me, mygen, ok) {
  atomic {
    if
#ifdef NOFENCE
    :: state == IN_PROGRESS ->
#else
    :: state == IN_PROGRESS && owner == me ->
#endif
         assert(mygen == generation);       /* P2: only the current owner's write is accepted */
         state = COMPLETED; owner = 0; completions++; acknowledged = true; ok = true;
         assert(completions <= 1)           /* P1 */
    :: else -> ok = false
    fi
  }
}

/* Release (store.release): a failed attempt leaves a tombstone that keeps the generation. */
inline release(me, ok) {
  atomic {
    if
    :: state == IN_PROGRESS && owner == me -> state = RELEASED; owner = 0; ok = true
    :: else -> ok = false
    fi
  }
}

proctype attempt(byte me) {
  byte mygen = 0;
  bool got = false;
  bool ok = false;
  byte tries = 0;
retry:
  claim(me, mygen, got);
  if
  :: !got && state == COMPLETED -> goto done        /* a replay */
  :: !got && tries < 2 -> tries++; goto retry       /* in progress: retry later */
  :: !got -> goto done
  :: got -> skip
  fi;
  /* holding the claim, as far as this owner knows */
  do
  :: true -> heartbeat(me, ok); if :: !ok -> goto done :: else -> skip fi   /* lease lost: stop */
  :: true -> complete(me, mygen, ok); goto done
  :: true -> release(me, ok); if :: tries < 2 -> tries++; goto retry :: else -> goto done fi
  :: true -> goto done                                              /* crash: forgets everything */
  od;
done:
  skip
}

/* P3: an acknowledged completion is never undone (checked in every reachable state). */
active proctype durability() {
end:
  do
  :: atomic { acknowledged -> assert(state == COMPLETED) }
  od
}

init {
  atomic {
    run attempt(1);
    run attempt(2);
    run attempt(3)
  }
}
