// Package conformance holds the checks that define how an iii engine
// behaves towards a worker: connect, register, invoke, errors, enqueue,
// triggers, engine events, channels, introspection and reconnect. They
// are Go tests written with the iii SDK, so one run checks the SDK and the
// engine together.
//
// By default they run against the engine double (test/iiitest), with
// unordered dispatch, as a real engine delivers:
//
//	go test ./test/conformance/
//
// To run them against your engine, start it with its worker port reachable
// and point III_ENGINE_URL at it:
//
//	III_ENGINE_URL=ws://127.0.0.1:49134 go test -count=1 -v ./test/conformance/
//
// Every check uses function and trigger ids under a fresh random prefix
// (conformance::<uuid>::...) and cleans up what it registered, so a shared
// engine can be used. A check that needs to restart the engine skips
// against an external engine, saying why, unless III_ENGINE_RESTART holds
// a shell command that restarts it (stops it, starts it again in the
// background and returns):
//
//	III_ENGINE_URL=ws://127.0.0.1:49134 III_ENGINE_RESTART='systemctl restart iii' \
//		go test -count=1 -v ./test/conformance/
//
// A dropped connection is made by an iiitest.Proxy between the worker and
// the engine, so that check runs against any engine. A check that depends
// on an optional engine part accepts both outcomes: an Enqueue either
// succeeds and runs the job (the queue worker is installed) or fails with
// enqueue_error (it is not).
package conformance
