// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Profile mode (dc_cfg.profile): calls aggregated in the kernel per (process, thread, function,
 * file, interval) instead of sent one by one; used by every entry file that completes a call.
 */
#ifndef DC_PROFILE_H
#define DC_PROFILE_H

#include "dc_task.h"

/* The bucket of dc_agg.ret_log2 a return value falls in: 0 for ret <= 0, else 1 + its log2. */
static __always_inline __u32 dc_log2_bucket(__s64 ret)
{
	__u64 x = ret;
	__u32 k = 1;

	if (ret <= 0)
		return 0;
	if (x >> 32) {
		x >>= 32;
		k += 32;
	}
	if (x >> 16) {
		x >>= 16;
		k += 16;
	}
	if (x >> 8) {
		x >>= 8;
		k += 8;
	}
	if (x >> 4) {
		x >>= 4;
		k += 4;
	}
	if (x >> 2) {
		x >>= 2;
		k += 2;
	}
	if (x >> 1)
		k += 1;
	return k < DC_HIST_BUCKETS ? k : DC_HIST_BUCKETS - 1;
}

/* Profile mode: the interval a call that ended at ``now`` belongs to (see dc_cfg.interval_shift).
 * A thread keeps its last one and when it ends: most calls fall in the same interval as the one
 * before, and skip the 64-bit division (tens of cycles). */
static __always_inline __u64 dc_interval(struct dc_thread *th, __u64 now)
{
	__u64 t = now + dc_cfg.interval_shift, interval;

	if (th && t < th->interval_end && t + dc_cfg.interval_ns >= th->interval_end)
		return th->interval;
	interval = t / dc_cfg.interval_ns;
	if (th) {
		th->interval = interval;
		th->interval_end = (interval + 1) * dc_cfg.interval_ns;
	}
	return interval;
}

/* One call, as profile mode adds it to an aggregate. */
struct dc_agg_call {
	__u64 dur;
	__s64 ret;
	__s64 offset;
	__u32 bucket;
};

static __always_inline void dc_agg_first(struct dc_agg *a, const struct dc_agg_call *c)
{
	__builtin_memset(a->ret_log2, 0, sizeof(a->ret_log2));
	a->count = 1;
	a->dur_sum = a->dur_min = a->dur_max = c->dur;
	a->ret_sum = c->ret >= 0 ? c->ret : 0;
	a->errors = c->ret < 0;
	a->ret_min = a->ret_max = c->ret;
	a->offset_min = a->offset_max = c->offset;
	a->ret_log2[c->bucket & (DC_HIST_BUCKETS - 1)] = 1;
}

static __always_inline void dc_agg_minmax(struct dc_agg *a, __u64 dur_min, __u64 dur_max,
					  __s64 ret_min, __s64 ret_max, __s64 off_min,
					  __s64 off_max)
{
	if (dur_min < a->dur_min)
		a->dur_min = dur_min;
	if (dur_max > a->dur_max)
		a->dur_max = dur_max;
	if (ret_min < a->ret_min)
		a->ret_min = ret_min;
	if (ret_max > a->ret_max)
		a->ret_max = ret_max;
	if (off_min < a->offset_min)
		a->offset_min = off_min;
	if (off_max > a->offset_max)
		a->offset_max = off_max;
}

/* Add a call to an aggregate only this CPU updates (plain stores), or, ``shared``, one that
 * io_uring completions on other CPUs may update at once (counts and sums atomic; min and max
 * may then miss a value completed at the very same moment). */
static __always_inline void dc_agg_add(struct dc_agg *a, const struct dc_agg_call *c, bool shared)
{
	__u32 bucket = c->bucket & (DC_HIST_BUCKETS - 1);

	if (shared) {
		__sync_fetch_and_add(&a->count, 1);
		__sync_fetch_and_add(&a->dur_sum, c->dur);
		if (c->ret >= 0)
			__sync_fetch_and_add(&a->ret_sum, c->ret);
		else
			__sync_fetch_and_add(&a->errors, 1);
		__sync_fetch_and_add(&a->ret_log2[bucket], 1);
	} else {
		a->count += 1;
		a->dur_sum += c->dur;
		if (c->ret >= 0)
			a->ret_sum += c->ret;
		else
			a->errors += 1;
		a->ret_log2[bucket] += 1;
	}
	dc_agg_minmax(a, c->dur, c->dur, c->ret, c->ret, c->offset, c->offset);
}

/* Add a call to its aggregate in dc_profile (made when missing). */
static __always_inline void dc_profile_map_add(struct dc_agg_key *key, const struct dc_agg_call *c,
					       bool shared)
{
	__u32 slot = shared;
	struct dc_agg *a = bpf_map_lookup_elem(&dc_profile, key);

	if (!a) {
		struct dc_agg *init = bpf_map_lookup_elem(&dc_agg_scratch, &slot);

		if (!init)
			return;
		dc_agg_first(init, c);
		if (!bpf_map_update_elem(&dc_profile, key, init, BPF_NOEXIST))
			return;
		/* full, or made meanwhile on another CPU (an io_uring completion) */
		a = bpf_map_lookup_elem(&dc_profile, key);
		if (!a) {
			dc_count_lost(DC_LOST_PROFILE);
			return;
		}
	}
	dc_agg_add(a, c, shared);
}

/* Add a thread's aggregate of the open interval to dc_profile (the thread moves on to another
 * function or file: it may come back to this one within the interval). */
static __noinline __attribute__((unused)) void dc_profile_map_merge(struct dc_agg_key *key, struct dc_agg *src)
{
	struct dc_agg *a = bpf_map_lookup_elem(&dc_profile, key);

	if (!a) {
		if (!bpf_map_update_elem(&dc_profile, key, src, BPF_NOEXIST))
			return;
		a = bpf_map_lookup_elem(&dc_profile, key);
		if (!a) {
			dc_count_lost_n(DC_LOST_PROFILE, src->count);
			return;
		}
	}
	a->count += src->count;
	a->dur_sum += src->dur_sum;
	a->ret_sum += src->ret_sum;
	a->errors += src->errors;
	for (int i = 0; i < DC_HIST_BUCKETS; i++)
		a->ret_log2[i] += src->ret_log2[i];
	dc_agg_minmax(a, src->dur_min, src->dur_max, src->ret_min, src->ret_max, src->offset_min,
		      src->offset_max);
}

/* Hand a thread's aggregate over to user space (dc_profile_done). */
static __always_inline void dc_agg_hand_over(struct dc_agg_key *key, struct dc_agg *a)
{
	if (bpf_map_update_elem(&dc_profile_done, key, a, BPF_NOEXIST))
		dc_count_lost_n(DC_LOST_PROFILE, a->count);
}

/* The thread's held aggregate, handed over if it still holds one (its exit; the iterator). */
static __always_inline void dc_agg_release(struct dc_thread *th)
{
	if (th->agg_state != DC_AGG_HELD ||
	    __sync_val_compare_and_swap(&th->agg_state, DC_AGG_HELD, DC_AGG_HANDING) != DC_AGG_HELD)
		return;
	dc_agg_hand_over(&th->agg_key, &th->agg);
	__sync_lock_test_and_set(&th->agg_state, DC_AGG_EMPTY);
}

/* Profile mode: add one completed call to its aggregate (interval by its exit time ``now``).
 *
 * A thread's calls (``th``) go to the aggregate it holds in its own storage while they keep one
 * function, file and interval: a compare and a few adds, no map lookup. When a call leaves it,
 * the held aggregate goes to dc_profile (same interval: the thread may come back to it) or is
 * handed over to dc_profile_done (its interval is over). So that no aggregate is left behind
 * in a thread that stops calling, the harvest's task iterator (dc_profile_flush) and the
 * thread's exit (dc_task_exit) hand over what a thread still holds; ``agg_state`` is swapped
 * atomically so that one of them only does it. The thread adds to its held aggregate only in
 * the open interval, which the iterator never takes.
 *
 * io_uring completions (no ``th``) go to dc_profile directly, atomically (``shared``). */
static __always_inline void dc_profile_add(struct dc_thread *th, __u32 fid, __u32 pid, __u32 tid,
					   __u64 fhash, __u64 fhash2, __u64 now, __u64 dur,
					   __s64 ret, const __u64 *args)
{
	struct dc_agg_key key = {
		.pid = pid,
		.tid = tid,
		.fid = fid,
		.interval = dc_interval(th, now),
		.fhash = fhash,
		.fhash2 = fhash2,
	};
	struct dc_agg_call c = {.dur = dur, .ret = ret, .bucket = dc_log2_bucket(ret)};
	__u32 *offset_arg = bpf_map_lookup_elem(&dc_offset_args, &fid);

	if (offset_arg && *offset_arg) {
		__u32 i = *offset_arg - 1;

		if (i < DC_MAX_ARGS)
			c.offset = args[i];
	}
	if (!th) {
		dc_profile_map_add(&key, &c, true);
		return;
	}
	if (th->agg_state == DC_AGG_HELD && th->agg_key.fid == fid &&
	    th->agg_key.fhash == fhash && th->agg_key.fhash2 == fhash2 &&
	    th->agg_key.interval == key.interval &&
	    th->agg_key.tid == tid && th->agg_key.pid == pid) {
		dc_agg_add(&th->agg, &c, false);
		return;
	}
	if (th->agg_state == DC_AGG_HELD) {
		if (__sync_val_compare_and_swap(&th->agg_state, DC_AGG_HELD, DC_AGG_HANDING) !=
		    DC_AGG_HELD) {
			dc_profile_map_add(&key, &c, false); /* the iterator is handing it over */
			return;
		}
		if (th->agg_key.interval == key.interval)
			dc_profile_map_merge(&th->agg_key, &th->agg);
		else
			dc_agg_hand_over(&th->agg_key, &th->agg);
	} else if (th->agg_state != DC_AGG_EMPTY) {
		dc_profile_map_add(&key, &c, false); /* the iterator is handing it over */
		return;
	}
	th->agg_key = key;
	dc_agg_first(&th->agg, &c);
	__sync_lock_test_and_set(&th->agg_state, DC_AGG_HELD);
}

#endif /* DC_PROFILE_H */
