// Package chaos holds hose's chaos suite: tests, behind the "chaos" build
// tag, that run a real broker (the hose binary) and real worker processes
// under open-loop load from hosebench's engine (package loadgen) and inject
// one fault each: a worker killed or stopped mid-job, the broker killed or
// restarted, a flood beyond capacity, a client that never reads, client
// processes killed mid-request, max-age churn, and a network partition
// between a worker's network namespace and the broker.
//
// For every scenario the suite reports the requests sent, the replies, the
// errors by kind, the requests left without an answer, the calls that hung,
// the non-idempotent jobs executed twice and the recovery time, and fails
// unless the unanswered, hung and duplicated counts are zero and the system
// serves every request again by the end. Run it with `make chaos`, or
//
//	go test -tags chaos -count 1 -v ./chaos/
//
// The partition scenario needs root and iproute2 (ip netns, veth); without
// them it is skipped.
//
// The package has no code of its own outside its tests.
package chaos
