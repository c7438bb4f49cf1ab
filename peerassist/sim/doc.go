// Package sim is a discrete-time simulator of an ISP's edge boxes and
// their viewers: it drives the real policy engine (peerassist/policy) with
// synthetic video-on-demand and software-update workloads over regions and
// ISPs, and compares pure CDN, peer assistance as the hybrid CDN-P2P paper
// models it, and the policy. README.md states the model, its assumptions
// and the figures it reproduces; peerassist/cmd/sim is its command.
package sim
