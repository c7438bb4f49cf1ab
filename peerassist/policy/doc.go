// Package policy holds the edge's peer-assistance decisions as pure,
// deterministic functions and small value types: no clocks (time is an
// input), no I/O, no goroutines, no global state and no randomness. The
// coordinator's policy loop and the simulator (peerassist/sim) call the same
// code.
//
// The pieces, each usable alone:
//
//   - Classify: CloudTracker's swarm classes (hungry, potentially hungry,
//     high-demand, normal) from leechers, seeds and the average download
//     rate, with the acceleration links n = max(0, ATD(L)*L - S).
//   - EBU, StopCount and SelectStops: CloudTracker's extra bandwidth
//     utilization and the k = ceil(N(EBU-cap)/EBU) sessions with the highest
//     download rates that stop non-urgent edge fetches; PeakTracker is the
//     observed-peak capacity B_max.
//   - Params.UploadFractionFor and UploadBudgetBps: each peer gives at most a fraction
//     (default 1/3, per site and per ISP) of its upload capacity.
//   - ResponseCurve, Curve and Allocate: Antfarm's allocation of the edge
//     headroom across swarms, on concave response curves estimated online,
//     by exact water-filling (equal marginal gain) after minimum guarantees.
//   - SlurpieProbability: the k/n backoff for chunks nobody holds.
//   - Engine.Tick: one policy tick, turning observations into a complete
//     Decision (per-session allowances and upload budgets, stops with
//     reasons, swarm classes and allocations, EBU before and after).
//
// Units: every rate is in bits per second (identifiers end in Bps), every
// byte count ends in Bytes. Observations carry bytes (what the edge and the
// clients count); decisions carry bits per second.
//
// Definitions used throughout (see the README of peerassist/sim for the
// papers they come from):
//
//   - A session's floor is its basic rate: the stream's bitrate for video
//     where known, else basic_rate_bps (CloudTracker's d_basic, 30 KBps).
//     Urgent requests within the floor are always served by the edge. For
//     a client that does not mark urgent requests the policy never gives
//     less non-urgent allowance than it needs to reach its floor from what
//     peers and urgent fetches gave it.
//   - EBU is the non-urgent edge egress drawn by peer-assisted sessions,
//     divided by the edge capacity. Urgent egress within floors is the
//     edge's base duty (what keeps playback going, as a pure CDN would);
//     the extra that peer assistance draws on top of it, for prefetch and
//     acceleration, is what the cap limits and what stopping a session
//     reduces.
package policy
