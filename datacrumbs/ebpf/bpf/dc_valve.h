// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Where a completed call goes: one record in its ring buffer (trace mode), or its aggregate
 * (profile mode; and trace mode's valve, when the ring is filling up, the function calls too
 * fast, the trace's budget is spent, or the function's rule says so). Every entry file that
 * completes a call reserves its record with dc_call_reserve and, given none, hands the call to
 * dc_call_fold: a call is then an event, inside an aggregate, or counted lost, never dropped
 * unseen.
 */
#ifndef DC_VALVE_H
#define DC_VALVE_H

#include "dc_profile.h"

/* dc_call_reserve's verdicts besides a record: aggregated (profile mode), or lost. */
#define DC_GO_PROFILE 0xfe
#define DC_GO_LOST 0xff

static __always_inline void dc_count_fold(struct dc_fold *f, struct dc_fold *total, __u32 why)
{
	if (why >= DC_FOLD_REASONS)
		return;
	if (f)
		f->calls[why] += 1; /* per-CPU values: no atomics needed */
	if (total)
		total->calls[why] += 1;
}

/* Whether a function passed its rate on this CPU (f: its counters; its window's calls, this
 * one counted). */
static __always_inline bool dc_over_rate(struct dc_fold *f, __u64 now)
{
	if (!f)
		return false;
	if (now - f->window >= dc_cfg.rate_window_ns) {
		f->window = now;
		f->window_calls = 0;
	}
	f->window_calls += 1;
	return f->window_calls > dc_cfg.rate_limit;
}

/* Why trace mode's valve folds a call of function fid now (DC_FOLD_*), or DC_FOLD_REASONS
 * when it does not; *rule is the function's rule, *f its fold counters on this CPU when they
 * were looked up (the rate needs them). */
static __always_inline __u32 dc_valve_reason(void *ring, __u32 fid, __u64 now,
					     struct dc_fold **f, __u32 *rule)
{
	__u32 zero = 0, *r = bpf_map_lookup_elem(&dc_fold_rules, &fid);
	__u64 *flags;

	*rule = r ? *r : DC_RULE_VALVE;
	if (*rule == DC_RULE_AGGREGATE)
		return DC_FOLD_RULE;
	if (*rule == DC_RULE_EVENTS)
		return DC_FOLD_REASONS;
	flags = bpf_map_lookup_elem(&dc_valve, &zero);
	if (flags && (*flags & DC_VALVE_BUDGET_SPENT))
		return DC_FOLD_BUDGET;
	if (dc_cfg.rate_limit) {
		*f = bpf_map_lookup_elem(&dc_folds, &fid);
		if (dc_over_rate(*f, now))
			return DC_FOLD_RATE;
	}
	if (dc_cfg.fold_above && ring && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) > dc_cfg.fold_above)
		return DC_FOLD_RING;
	return DC_FOLD_REASONS;
}

/* The record of a call of function fid that completed at ``now``, reserved in ``ring``; or
 * NULL, and *go says where the call goes instead: a DC_FOLD_* reason (the valve's: folded and
 * counted), DC_GO_PROFILE (profile mode) or DC_GO_LOST (no room, and no valve). */
static __always_inline struct dc_call *dc_call_reserve(void *ring, __u32 fid, __u64 now, __u32 *go)
{
	struct dc_fold *f, *total;
	struct dc_call *e;
	__u32 zero = 0, why, rule = DC_RULE_EVENTS;

	if (dc_cfg.profile) {
		*go = DC_GO_PROFILE;
		return NULL;
	}
	why = DC_FOLD_REASONS;
	f = NULL;
	if (dc_cfg.valve)
		why = dc_valve_reason(ring, fid, now, &f, &rule);
	e = NULL;
	if (why == DC_FOLD_REASONS && ring)
		e = bpf_ringbuf_reserve(ring, sizeof(*e), 0);
	if (e)
		return e;
	if (why == DC_FOLD_REASONS) /* the ring is full */
		why = dc_cfg.valve && rule != DC_RULE_EVENTS ? DC_FOLD_RING : DC_GO_LOST;
	if (why < DC_FOLD_REASONS) {
		if (!f)
			f = bpf_map_lookup_elem(&dc_folds, &fid);
		total = bpf_map_lookup_elem(&dc_folds, &zero);
		dc_count_fold(f, total, why);
	}
	*go = why;
	return NULL;
}

/* A call dc_call_reserve gave no record: added to its aggregate, or counted lost. */
static __always_inline void dc_call_fold(__u32 go, struct dc_thread *th, __u32 fid, __u32 pid,
					 __u32 tid, __u64 fhash, __u64 fhash2, __u64 now, __u64 dur,
					 __s64 ret, const __u64 *args)
{
	if (go == DC_GO_LOST) {
		dc_count_lost(DC_LOST_CALLS);
		return;
	}
	dc_profile_add(th, fid, pid, tid, fhash, fhash2, now, dur, ret, args);
}

#endif /* DC_VALVE_H */
