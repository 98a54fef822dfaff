package interop_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
	"github.com/iii-go/iii/test/iiitest"
)

// nodeError is how the scripts print an error from iii.trigger().
type nodeError struct {
	Name         string  `json:"name"`
	Code         string  `json:"code"`
	Message      string  `json:"message"`       // the wire message
	ErrorMessage string  `json:"error_message"` // JS err.message, "<code>: <message>"
	FunctionID   string  `json:"function_id"`
	Stacktrace   *string `json:"stacktrace"`
}

// callResult is a caller.mjs / list.mjs "result" event.
type callResult struct {
	Call       string          `json:"call"`
	FunctionID string          `json:"function_id"`
	OK         bool            `json:"ok"`
	Result     json.RawMessage `json:"result"`
	Error      *nodeError      `json:"error"`
}

// invoked is a worker.mjs "invoked"/"void" or trigger-binder.mjs "invoked" event.
type invoked struct {
	FunctionID string          `json:"function_id"`
	Input      json.RawMessage `json:"input"`
	Metadata   json.RawMessage `json:"metadata"`
}

// readyID waits for a script's "ready" event and returns its worker id.
func readyID(t testing.TB, p *proc) string {
	t.Helper()
	var r struct {
		WorkerID string `json:"worker_id"`
	}
	p.wait(ev("ready")).decode(t, &r)
	if r.WorkerID == "" {
		t.Fatalf("%s: ready without a worker id", p.name)
	}
	return r.WorkerID
}

// result decodes the "result" event of call label (caller.mjs).
func result(t testing.TB, p *proc, label string) callResult {
	t.Helper()
	var r callResult
	p.wait(ev("result", "call", label)).decode(t, &r)
	return r
}

// requireError fails unless r is an error with code and message.
func requireError(t testing.TB, r callResult, code, message string) *nodeError {
	t.Helper()
	if r.OK || r.Error == nil {
		t.Fatalf("call %s of %s: ok, result %s; want error %s", r.Call, r.FunctionID, r.Result, code)
	}
	e := r.Error
	if e.Name != "InvocationError" || e.Code != code || e.Message != message ||
		e.ErrorMessage != code+": "+message || e.FunctionID != r.FunctionID {
		t.Fatalf("call %s of %s: error %+v; want InvocationError %s %q", r.Call, r.FunctionID, *e, code, message)
	}
	return e
}

func TestNodeWorkerCallsNodeWorkerThroughTheDouble(t *testing.T) {
	testWorkerCallsWorker(t, workerCalls{
		caller: nodeSDK, worker: nodeSDK, queue: true,
		workerEnv: []string{"FUNCTIONS=interop::echo,interop::fail,interop::void", "FAIL_MESSAGE=boom from node"},
		payload:   `{"hello":"world","n":42,"nested":{"list":[1,"two",null],"unicode":"ünï ✓"}}`,
		metadata:  `{"origin":"node-caller","attempt":1}`,
		// A thrown error reaches the caller as invocation_failed (Node ignores
		// the error's own code) with the message and the handler's stack.
		fail: nodeThrow("boom from node"),
	})
}

// binding is a trigger-provider.mjs registertrigger/unregistertrigger event.
type binding struct {
	ID         string          `json:"id"`
	FunctionID *string         `json:"function_id"`
	Config     json.RawMessage `json:"config"`
	Metadata   json.RawMessage `json:"metadata"`
}

func TestNodeTriggerProviderGetsBindingsOfAnotherNodeWorkerAndFiresThem(t *testing.T) {
	testTriggerProviderGetsBindingsOfAnotherWorkerAndFiresThem(t, nodeSDK)
}

// testTriggerProviderGetsBindingsOfAnotherWorkerAndFiresThem runs a trigger
// provider and three binders of its type, all programs of sdk.
func testTriggerProviderGetsBindingsOfAnotherWorkerAndFiresThem(t *testing.T, sdk foreignSDK) {
	eng := routingEngine(t)
	provider := sdk.start(t, eng.URL, "trigger-provider", "TRIGGER_TYPE=interop::ticker", "FIRE_COUNT=2")
	providerID := sdk.id(t, eng, provider)

	// Three binders of the type, each with its own function: A keeps its
	// binding, B unbinds it at once, C's binding is refused by the provider.
	configA := `{"interval_ms":100,"binder":"a"}`
	metaA := `{"binder":"` + sdk.label + `-a"}`
	a := sdk.start(t, eng.URL, "trigger-binder", "TRIGGER_TYPE=interop::ticker", "FUNCTION_ID=interop::ticked-a",
		"CONFIG="+configA, "METADATA="+metaA)
	b := sdk.start(t, eng.URL, "trigger-binder", "TRIGGER_TYPE=interop::ticker", "FUNCTION_ID=interop::ticked-b",
		"UNREGISTER_AFTER_MS=0")
	c := sdk.start(t, eng.URL, "trigger-binder", "TRIGGER_TYPE=interop::ticker", "FUNCTION_ID=interop::ticked-c",
		`CONFIG={"reject":true}`)
	boundID := func(p *proc) string {
		var bound struct {
			ID string `json:"id"`
		}
		p.wait(ev("bound")).decode(t, &bound)
		return bound.ID
	}
	idA, idB, idC := boundID(a), boundID(b), boundID(c)

	// The provider learns A's binding as sent, and fires it twice through
	// the engine.
	var reg binding
	provider.wait(ev("registertrigger", "id", idA)).decode(t, &reg)
	requireJSON(t, "binding as the provider sees it", reg,
		json.RawMessage(`{"id":"`+idA+`","function_id":"interop::ticked-a","config":`+configA+`,"metadata":`+metaA+`}`))
	for k, e := range provider.waitN(ev("fired", "id", idA), 2) {
		var f struct {
			Tick   int             `json:"tick"`
			OK     bool            `json:"ok"`
			Result json.RawMessage `json:"result"`
		}
		e.decode(t, &f)
		if f.Tick != k+1 || !f.OK {
			t.Fatalf("fire %d: %s", k+1, e.Raw)
		}
		requireJSON(t, "fire result", f.Result, json.RawMessage(fmt.Sprintf(`{"ok":true,"tick":%d}`, k+1)))
	}
	for k, e := range a.waitN(ev("invoked"), 2) {
		var in invoked
		e.decode(t, &in)
		requireJSON(t, fmt.Sprintf("fire %d input", k+1), in.Input, json.RawMessage(fmt.Sprintf(
			`{"tick":%d,"trigger_id":"%s","config":%s,"_caller_worker_id":"%s"}`, k+1, idA, configA, providerID)))
		requireJSON(t, fmt.Sprintf("fire %d metadata", k+1), in.Metadata, json.RawMessage(metaA))
	}

	// Binder B unbinds explicitly: the provider gets unregistertrigger with
	// only the id (the SDK fills function_id with "").
	b.wait(ev("unbound", "id", idB))
	var unreg binding
	provider.wait(ev("unregistertrigger", "id", idB)).decode(t, &unreg)
	requireJSON(t, "explicit unbinding", unreg, json.RawMessage(`{"id":"`+idB+`","function_id":"","config":null,"metadata":null}`))
	requireOrder(t, provider, ev("registertrigger", "id", idB), ev("unregistertrigger", "id", idB))

	// Binder C's binding is refused by the provider; the engine forwards the
	// provider's error to the binder.
	var failed struct {
		TriggerType string `json:"trigger_type"`
		Message     string `json:"message"`
	}
	provider.wait(ev("registertrigger", "id", idC, "function_id", "interop::ticked-c", "config", map[string]any{"reject": true}))
	c.wait(ev("trigger_registration_failed", "id", idC)).decode(t, &failed)
	if failed.TriggerType != "interop::ticker" || failed.Message != "binding "+idC+" rejected by interop provider" {
		t.Fatalf("refused binding reported as %+v", failed)
	}

	// When binder A disconnects, the engine unbinds its binding at the provider.
	if code := a.stop(); code != 0 {
		t.Fatalf("binder A exited with %d", code)
	}
	provider.wait(ev("unregistertrigger", "id", idA))
	requireOrder(t, provider, ev("registertrigger", "id", idA), ev("unregistertrigger", "id", idA))
	if n := len(provider.all(ev("registertrigger", "id", idA))); n != 1 {
		t.Fatalf("provider got binding A %d times", n)
	}
}

// requireOrder fails unless the first event first comes before the first
// event then.
func requireOrder(t testing.TB, p *proc, first, then match) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.events, first.matches)
	j := slices.IndexFunc(p.events, then.matches)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("%s: want %v (at %d) before %v (at %d)", p.name, first, i, then, j)
	}
}

// channelSummary is what channel.mjs reports for each side of a channel.
type channelSummary struct {
	Bytes    int      `json:"bytes"`
	SHA256   string   `json:"sha256"`
	Messages []string `json:"messages"`
	Offsets  []int    `json:"offsets"`
}

// expectedChannel computes, independently of the script, what channel.mjs
// writes for total bytes and count messages.
func expectedChannel(total, count int) channelSummary {
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	sum := sha256.Sum256(data)
	s := channelSummary{Bytes: total, SHA256: hex.EncodeToString(sum[:]), Messages: []string{}, Offsets: []int{}}
	for k := range count {
		s.Messages = append(s.Messages, fmt.Sprintf(`{"seq":%d,"text":"message %d ✓"}`, k, k))
		s.Offsets = append(s.Offsets, (k+1)*total/(count+1))
	}
	return s
}

func TestNodeChannelInOneProcessCarriesBytesAndInterleavedMessagesInOrder(t *testing.T) {
	testChannelInOneProcess(t, nodeSDK)
}

// testChannelInOneProcess has a channel program of sdk write into a channel
// and read it back itself.
func testChannelInOneProcess(t *testing.T, sdk foreignSDK) {
	eng := routingEngine(t)
	const total, count = 200_000, 3
	p := sdk.start(t, eng.URL, "channel", "MODE=self", fmt.Sprint("BYTES=", total), fmt.Sprint("MESSAGES=", count))
	want := expectedChannel(total, count)
	for _, side := range []string{"written", "read"} {
		var got channelSummary
		p.wait(ev(side)).decode(t, &got)
		requireJSON(t, side, got, want)
	}
	p.wait(ev("self", "match", true))
	p.waitExit()
}

func TestNodeChannelFromOneProcessToAnotherWithBackpressure(t *testing.T) {
	eng := routingEngine(t)
	// 1 MB in 64 KiB frames through a 4-item buffer: the writer runs ahead
	// of the reader, which starts only once the writer has made the channel,
	// and has to wait for it.
	const total, count = 1_000_000, 5
	bytesEnv, messagesEnv := fmt.Sprint("BYTES=", total), fmt.Sprint("MESSAGES=", count)
	writer := startScript(t, eng.URL, "channel.mjs", "MODE=create-and-write", "BUFFER_SIZE=4", bytesEnv, messagesEnv)
	var refs struct {
		Reader json.RawMessage `json:"reader"`
		Writer json.RawMessage `json:"writer"`
	}
	writer.wait(ev("channel")).decode(t, &refs)
	var r, w struct {
		ChannelID string `json:"channel_id"`
		AccessKey string `json:"access_key"`
		Direction string `json:"direction"`
	}
	if json.Unmarshal(refs.Reader, &r) != nil || json.Unmarshal(refs.Writer, &w) != nil ||
		r.Direction != "read" || w.Direction != "write" || r.ChannelID == "" || r.ChannelID != w.ChannelID || r.AccessKey != w.AccessKey {
		t.Fatalf("engine::channels::create gave refs %s / %s", refs.Reader, refs.Writer)
	}
	reader := startScript(t, eng.URL, "channel.mjs", "MODE=read", "READER_REF="+string(refs.Reader))
	want := expectedChannel(total, count)
	var got channelSummary
	reader.wait(ev("read")).decode(t, &got)
	requireJSON(t, "read", got, want)
	writer.wait(ev("written")).decode(t, &got)
	requireJSON(t, "written", got, want)
	reader.waitExit()
	writer.waitExit()
}

func TestNodeListsFunctionsAndWorkersThroughTheBuiltins(t *testing.T) {
	testListsFunctionsAndWorkersThroughTheBuiltins(t, nodeSDK)
}

// testListsFunctionsAndWorkersThroughTheBuiltins has a lister program of sdk
// list the functions and workers of itself and of a worker program of sdk.
func testListsFunctionsAndWorkersThroughTheBuiltins(t *testing.T, sdk foreignSDK) {
	eng := routingEngine(t)
	worker := sdk.start(t, eng.URL, "worker", "FUNCTIONS=interop::echo,interop::fail", "III_WORKER_NAME=interop-worker")
	workerID := sdk.id(t, eng, worker)
	lister := sdk.start(t, eng.URL, "list", "REGISTER=interop::listed", "III_WORKER_NAME=interop-lister",
		"LIST=engine::functions::list,engine::workers::list")
	listerID := sdk.id(t, eng, lister)
	lister.waitExit()

	var fns callResult
	lister.wait(ev("result", "function_id", "engine::functions::list")).decode(t, &fns)
	if !fns.OK {
		t.Fatalf("engine::functions::list: %+v", fns.Error)
	}
	// Sorted by id; builtins hidden; the description only where one was
	// given. An external engine lists the functions of its in-process
	// workers too (configuration::* always): there only ours are compared.
	requireJSON(t, "engine::functions::list", eng.ownFunctions(t, fns.Result), json.RawMessage(`{"functions":[
		{"function_id":"interop::echo","worker_name":"interop-worker"},
		{"function_id":"interop::fail","worker_name":"interop-worker"},
		{"function_id":"interop::listed","worker_name":"interop-lister","description":"interop interop::listed"}]}`))

	var wks callResult
	lister.wait(ev("result", "function_id", "engine::workers::list")).decode(t, &wks)
	if !wks.OK {
		t.Fatalf("engine::workers::list: %+v", wks.Error)
	}
	type summary struct {
		ID            string  `json:"id"`
		Name          string  `json:"name"`
		Runtime       string  `json:"runtime"`
		Version       string  `json:"version"`
		Status        string  `json:"status"`
		FunctionCount int     `json:"function_count"`
		OS            string  `json:"os"`
		IPAddress     *string `json:"ip_address"`
		ConnectedAtMs int64   `json:"connected_at_ms"`
	}
	var list struct {
		Workers []summary `json:"workers"`
	}
	if err := json.Unmarshal(wks.Result, &list); err != nil {
		t.Fatalf("engine::workers::list result %s: %v", wks.Result, err)
	}
	// Sorted by name: the engine's own worker, then the two workers
	// (an external engine has more in-process workers, and maybe other
	// connections: those are left out there).
	list.Workers = ownWorkers(eng, list.Workers, func(w summary) (string, string) { return w.ID, w.Name }, listerID, workerID)
	var names []string
	for _, w := range list.Workers {
		names = append(names, w.Name)
	}
	if !slices.Equal(names, []string{"iii-engine-functions", "interop-lister", "interop-worker"}) {
		t.Fatalf("engine::workers::list names %v in %s", names, wks.Result)
	}
	if e := list.Workers[0]; e.Runtime != "engine" || e.ID != "iii-engine-functions" || e.Status != "available" {
		t.Fatalf("engine worker %+v", e)
	}
	for _, w := range []struct {
		got       summary
		id        string
		functions int
	}{{list.Workers[1], listerID, 1}, {list.Workers[2], workerID, 2}} {
		g := w.got
		if g.ID != w.id || g.Runtime != sdk.label || g.Version != sdk.version || g.Status != "connected" || g.FunctionCount != w.functions ||
			g.OS == "" || g.IPAddress == nil || *g.IPAddress != "127.0.0.1" || g.ConnectedAtMs <= 0 {
			t.Fatalf("worker %s listed as %+v", w.id, g)
		}
	}

	// The double's own view agrees, with the process id the SDK reported.
	if eng.double == nil {
		return
	}
	var info *iiitest.WorkerInfo
	for _, wi := range eng.double.Workers() {
		if wi.ID == workerID {
			info = &wi
		}
	}
	if info == nil || info.Runtime != sdk.label || info.Name != "interop-worker" || info.PID != worker.cmd.Process.Pid ||
		!slices.Equal(info.Functions, []string{"interop::echo", "interop::fail"}) {
		t.Fatalf("double's worker info %+v", info)
	}
}

func TestNodeLoggerRecordsReachTheDoubleAsLogsFrames(t *testing.T) {
	eng := doubleEngine(t)
	const mark = "interop-log-7f3a"
	p := startScript(t, eng.URL, "logger.mjs", "LOG_MARK="+mark) // the script turns OTel on
	p.wait(ev("flushed"))
	p.waitExit()
	requireLoggerRecords(t, markedLogRecords(t, eng, mark), mark, "interop-logger")
	// One record per frame (the SDK's default batch size is 1), all on /otel.
	if n := eng.TelemetryFrames(wire.TelemetryLogs); n < 4 {
		t.Fatalf("%d LOGS frames, want at least 4", n)
	}
}

// markedLogRecords waits until the double has received the four log records
// a logger program writes, picked by their mark among any the SDK logs of
// its own.
func markedLogRecords(t *testing.T, eng *iiitest.Engine, mark string) []wire.LogRecord {
	t.Helper()
	ctx := testCtx(t)
	var ours []wire.LogRecord
	for n := 4; len(ours) < 4; n++ {
		recs, err := eng.WaitLogs(ctx, n)
		if err != nil {
			t.Fatalf("waiting for %d log records (have %d of ours): %v", n, len(ours), err)
		}
		ours = ours[:0]
		for _, r := range recs {
			if strings.HasPrefix(r.Body.String(), mark+" ") {
				ours = append(ours, r)
			}
		}
	}
	return ours
}

// requireLoggerRecords fails unless ours are the records a logger program
// writes with mark: "<mark> <level> #<seq>" at info, warn, error and debug,
// each with log.data {seq, level, mark}, and, unless serviceName is empty,
// service.name serviceName.
func requireLoggerRecords(t *testing.T, ours []wire.LogRecord, mark, serviceName string) {
	t.Helper()
	levels := []struct {
		name     string
		severity int
	}{{"info", 9}, {"warn", 13}, {"error", 17}, {"debug", 5}}
	if len(ours) != len(levels) {
		t.Fatalf("got %d records with the mark, want %d", len(ours), len(levels))
	}
	for seq, lv := range levels {
		r := ours[seq]
		if body := fmt.Sprintf("%s %s #%d", mark, lv.name, seq); r.Body.String() != body || r.SeverityNumber != lv.severity {
			t.Fatalf("record %d: body %q severity %d; want %q %d", seq, r.Body.String(), r.SeverityNumber, body, lv.severity)
		}
		attrs := map[string]wire.AnyValue{}
		for _, kv := range r.Attributes {
			attrs[kv.Key] = kv.Value
		}
		if s := attrs["service.name"]; serviceName != "" && s.String() != serviceName {
			t.Fatalf("record %d: service.name %q", seq, s.String())
		}
		data := attrs["log.data"].KvlistValue
		if data == nil {
			t.Fatalf("record %d: no log.data kvlist in %+v", seq, r.Attributes)
		}
		got := map[string]string{}
		for _, kv := range data.Values {
			got[kv.Key] = kv.Value.String()
		}
		if want := map[string]string{"seq": fmt.Sprint(seq), "level": lv.name, "mark": mark}; !jsonEqual(got, want) {
			t.Fatalf("record %d: log.data %v, want %v", seq, got, want)
		}
	}
}

func TestNodeWorkerReconnectsWithReattachThenReplayThenMetadata(t *testing.T) {
	eng := doubleEngine(t)
	p := startScript(t, eng.URL, "reconnect.mjs", "TRIGGER_TYPE=interop::reconnect-type", "FUNCTION_ID=interop::reconnect-fn")
	var ready struct {
		WorkerID  string `json:"worker_id"`
		TriggerID string `json:"trigger_id"`
	}
	p.wait(ev("ready")).decode(t, &ready)
	first, triggerID := ready.WorkerID, ready.TriggerID
	replay := []string{
		"registertriggertype interop::reconnect-type",
		"registerfunction interop::reconnect-fn",
		"registertrigger " + triggerID + " interop::reconnect-type interop::reconnect-fn {\"reconnect\":true}",
		"invokefunction engine::workers::register",
	}
	// The first connection: the same sequence without reattach. (What
	// follows it, the ready round trip and the provider's answer to its own
	// binding, may come in either order.)
	if got := describe(eng.Journal(first)); !slices.Equal(got[:min(len(got), len(replay))], replay) {
		t.Fatalf("first connection's journal:\n%s", strings.Join(got, "\n"))
	}

	if !eng.DropWorker(first) {
		t.Fatalf("DropWorker(%s): not connected", first)
	}
	var next struct {
		WorkerID string `json:"worker_id"`
	}
	p.wait(ev("worker_id", "n", 2)).decode(t, &next)
	second := next.WorkerID
	if second == first {
		t.Fatal("the new connection kept the old worker id")
	}
	// The metadata call is the last frame the SDK sends on open.
	poll(t, "the second connection's engine::workers::register", func() bool {
		return slices.Contains(describe(eng.Journal(second)), "invokefunction engine::workers::register")
	})
	journal := eng.Journal(second)
	// (The provider's answer to its own binding races the metadata call.)
	got := slices.DeleteFunc(describe(journal), func(s string) bool { return s == "triggerregistrationresult" })
	if len(got) < 5 || got[0] != "reattach" || !slices.Equal(got[1:5], replay) {
		t.Fatalf("second connection's journal:\n%s\nwant reattach, then:\n%s", strings.Join(got, "\n"), strings.Join(replay, "\n"))
	}
	if ra := journal[0].(*wire.Reattach); ra.PreviousWorkerID != first || ra.ReattachToken == "" {
		t.Fatalf("reattach names %q with token %q; want %q and a token", ra.PreviousWorkerID, ra.ReattachToken, first)
	}
	var meta struct {
		Runtime string `json:"runtime"`
		PID     int    `json:"pid"`
	}
	if err := json.Unmarshal(journal[4].(*wire.InvokeFunction).Data, &meta); err != nil || meta.Runtime != "node" || meta.PID != p.cmd.Process.Pid {
		t.Fatalf("metadata after reconnect: %s (%v)", journal[4].(*wire.InvokeFunction).Data, err)
	}

	// The function now routes to the new connection, and the provider (the
	// same worker) got its own binding again.
	if owner := eng.Functions()["interop::reconnect-fn"]; owner != second {
		t.Fatalf("interop::reconnect-fn owned by %q, want %q", owner, second)
	}
	res, errb, err := eng.Invoke(testCtx(t), "interop::reconnect-fn", json.RawMessage(`{"after":"reconnect"}`))
	if err != nil || errb != nil {
		t.Fatalf("invoke after reconnect: %v %+v", err, errb)
	}
	requireJSON(t, "result after reconnect", res, json.RawMessage(fmt.Sprintf(`{"pid":%d,"worker_id":"%s"}`, p.cmd.Process.Pid, second)))
	p.waitN(ev("registertrigger", "id", triggerID), 2)
	if code := p.stop(); code != 0 {
		t.Fatalf("reconnect.mjs exited with %d", code)
	}
}

// describe renders journal frames compactly for comparison.
func describe(ms []wire.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		switch m := m.(type) {
		case *wire.RegisterTriggerType:
			out[i] = "registertriggertype " + m.ID
		case *wire.RegisterFunction:
			out[i] = "registerfunction " + m.ID
		case *wire.RegisterTrigger:
			out[i] = fmt.Sprintf("registertrigger %s %s %s %s", m.ID, m.TriggerType, m.FunctionID, m.Config)
		case *wire.InvokeFunction:
			out[i] = "invokefunction " + m.FunctionID
		default:
			out[i] = m.Kind().String()
		}
	}
	return out
}
