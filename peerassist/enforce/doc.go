// Package enforce is the edge's policy loop: every policy.tick (default 5s)
// it turns what the coordinator saw into a policy.Observation, runs the
// policy engine (peerassist/policy) and applies the decision.
//
// Observing, per session, for the period since the last tick: the bytes the
// edge served it, split into urgent bytes within its floor and the rest
// (counted by its limiter, below); its peer and upload rates from its
// x_report counters (the increments between its last two reports over the
// time between them: reports and ticks are not in step); its declared
// upload capacity and whether it uploads (x_caps); its floor: the site's
// bitrate, else the stream bitrate it declared (x_caps.bitrate_bps, at
// least policy.basic_rate_bps and at most policy.max_declared_bitrate_bps),
// else policy.basic_rate_bps; its ISP (ASN) from its
// locality; whether it is a seed; whether it marks urgent requests (it has
// sent one). Per swarm: its site (upload fraction, bitrate) and whether it
// is video (its site has a bitrate, or its sessions fetch playlists or
// segments). The edge's whole egress (Options.EgressBytes) feeds the
// observed peak, the capacity used when policy.edge_capacity_bps is 0. A
// detached session that fetched nothing in the period is left out, and so
// is a session in no swarm (unknown locality, another region): it is not
// peer-assisted, has no peers to turn to, and is not limited.
//
// Enforcing, per session: a limiter with two token buckets over body bytes
// (see limiter), installed in the coordinator, which the edge asks on every
// request carrying the session (edge.SessionGate). The floor bucket,
// refilled at the session's floor, admits urgent requests: urgent requests
// within the floor are always served. The allowance bucket, refilled at the
// session's non-urgent allowance, admits the rest, and urgent requests
// beyond the floor (whose bytes count as non-urgent). A request over both
// is refused: the edge answers 429 with Retry-After (when the bucket will
// admit again, or the tick while the allowance is 0), X-PA-Use-Peers: 1 and
// X-PA-Reason (the decision's reason). Sessions that appear between ticks
// get a limiter with their site's floor and the last decision's join
// allowance (no limit before the first decision); unknown sessions are
// admitted by the coordinator. Admission takes no lock shared between
// sessions: a lock-free map lookup in the coordinator and the session's own
// limiter.
//
// Telling the clients: an x_policy message (upload budget, edge allowance or
// -1, use_peers while stopped by the EBU cap, the reason, the swarm's
// Slurpie probability k/n) to each connected session whose policy changed
// meaningfully (use_peers or reason, the allowance by more than 25% or to
// or from 0 or unlimited, the budget by more than 10%, the probability by
// more than 25%), when it reconnected, and every Options.PolicyRefresh
// (60s). The coordinator routes no offers to a session whose reported
// uploads reached its budget (SetUploadBudgetReached).
//
// Reloading (Loop.Reload, on SIGHUP): every policy setting and the sites'
// bitrates and upload fractions apply from the next tick; the engine keeps
// the observed peak, the response curves (but those of swarms whose basic
// rate changed) and the stops it holds; a new tick period restarts the
// ticker.
//
// What an operator sees (OpenTelemetry, instrumentation scope
// github.com/peerassist/edgebox/peerassist/enforce):
//
//   - one span per tick, peerassist.policy.tick, with the EBU before and
//     after, the cap, the capacity and its source, egress, sessions,
//     swarms, CloudTracker's N and k, stopped sessions, floors over cap and
//     pushes; an event peerassist.policy.stop per session stopped in the
//     tick, whose peerassist.policy.detail says why (the EBU, the cap, the
//     session's rate and rank, the hold and the floor kept), with
//     session.id and peerassist.swarm; an event peerassist.policy.degraded
//     when observations could not be used as given;
//   - metrics: peerassist.policy.ebu (gauge, phase before/after),
//     peerassist.policy.capacity (gauge, capacity_source),
//     peerassist.policy.peak_egress, peerassist.policy.egress
//     (egress_kind all/extra), peerassist.policy.headroom,
//     peerassist.policy.allocated (gauges, bit/s),
//     peerassist.policy.allowance (histogram of each limited session's
//     allowance, bit/s), peerassist.policy.swarms (gauge by
//     peerassist.swarm.class), peerassist.policy.stopped (gauge),
//     peerassist.policy.stops (counter by peerassist.policy.reason),
//     peerassist.policy.refusals (429s, by peerassist.policy.urgent),
//     peerassist.policy.floor_violations (sessions refused what they
//     needed in a tick, an urgent request where they mark them, that got
//     less than their floor from the edge and peers over the last 6
//     ticks),
//     peerassist.policy.pushes and peerassist.policy.tick.duration;
//   - a log line (info) for every tick that stops sessions.
package enforce
