package iiitest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/iii-go/iii/connection/wire"
)

func registerMeta(c *client, data string) {
	c.sendRaw(`{"type":"invokefunction","function_id":"engine::workers::register","data":` + data + `,"action":{"type":"void"}}`)
}

func TestWorkersRegisterStoresSanitisedMetadataAndReplies(t *testing.T) {
	// It checks the FIFO order the double keeps by default.
	t.Setenv(UnorderedEnv, "")
	e := NewEngine(t)
	c := dial(t, e)
	r := c.callSync("engine::workers::register", `{"runtime":"go","version":"0.1.0","name":" \u202echeckout\u0007-worker\n ","description":"`+strings.Repeat("d", 300)+`","os":"linux","pid":4242,"isolation":null,"telemetry":{"language":"en","project_name":"shop","framework":"iii-go","extra":1}}`)
	if r.Error != nil || string(r.Result) != `{"success":true}` {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	ws := e.Workers()
	if len(ws) != 1 {
		t.Fatalf("Workers = %+v", ws)
	}
	w := ws[0]
	if w.Name != "checkout-worker" || w.Runtime != "go" || w.Version != "0.1.0" || w.PID != 4242 || w.OS != "linux" || len(w.Description) != 280 {
		t.Fatalf("WorkerInfo = %+v", w)
	}
	if md := mustJSON(t, w.Metadata); md["pid"] != 4242.0 || md["_caller_worker_id"] != nil {
		t.Fatalf("Metadata = %s", w.Metadata)
	}
	// Void, as the SDKs send it: no answer; runtime defaults to "unknown".
	registerMeta(c, `{}`)
	c.expectQuiet()
	if w := e.Workers()[0]; w.Runtime != "unknown" || w.Name != "checkout-worker" || w.Version != "" {
		t.Fatalf("after empty register: %+v", w)
	}
}

func TestWorkersListHidesWorkersWithoutPIDAndInfoShowsTheSurface(t *testing.T) {
	e := NewEngine(t)
	a, b := dial(t, e), dial(t, e)
	registerMeta(a, `{"name":"alpha","runtime":"node","pid":7}`)
	a.register("alpha::run")
	a.send(&wire.RegisterTriggerType{ID: "alpha::tick", Description: "ticks"})
	a.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "alpha::tick", FunctionID: "alpha::run", Config: json.RawMessage(`{"every":1}`)})
	a.sync()
	registerMeta(b, `{"name":"beta"}`) // no pid
	b.sync()
	var list struct {
		Workers []map[string]any `json:"workers"`
	}
	if errb := b.builtin("engine::workers::list", `{}`, &list); errb != nil {
		t.Fatal(errb)
	}
	// In-process workers have their name as id (engine v0.22.1).
	if len(list.Workers) != 2 || list.Workers[0]["name"] != "alpha" || list.Workers[1]["name"] != runtimeWorkerName || list.Workers[1]["id"] != runtimeWorkerName {
		t.Fatalf("workers::list = %+v", list)
	}
	w := list.Workers[0]
	for _, k := range []string{"name", "description", "version", "id", "runtime", "os", "status", "function_count", "connected_at_ms", "active_invocations", "isolation", "ip_address"} {
		if _, ok := w[k]; !ok {
			t.Fatalf("workers::list entry lacks %q: %v", k, w)
		}
	}
	if w["id"] != a.id || w["status"] != "connected" || w["function_count"] != 1.0 || w["description"] != nil {
		t.Fatalf("entry = %v", w)
	}
	b.builtin("engine::workers::list", `{"runtime":"engine"}`, &list)
	if len(list.Workers) != 1 {
		t.Fatalf("runtime filter: %+v", list)
	}
	var info struct {
		Worker             map[string]any   `json:"worker"`
		Functions          []map[string]any `json:"functions"`
		TriggerTypes       []map[string]any `json:"trigger_types"`
		RegisteredTriggers []map[string]any `json:"registered_triggers"`
	}
	if errb := b.builtin("engine::workers::info", `{"name":"alpha"}`, &info); errb != nil {
		t.Fatal(errb)
	}
	if info.Worker["pid"] != 7.0 || info.Worker["internal"] != false || len(info.Functions) != 1 || len(info.TriggerTypes) != 1 || len(info.RegisteredTriggers) != 1 ||
		info.RegisteredTriggers[0]["config_summary"] != `{"every":1}` {
		t.Fatalf("workers::info = %+v", info)
	}
	if errb := b.builtin("engine::workers::info", `{"name":"nobody"}`, nil); errb == nil || errb.Code != "NOT_FOUND" || errb.Message != "Worker 'nobody' is not connected." {
		t.Fatalf("unknown worker: %v", errb)
	}
	if errb := b.builtin("engine::workers::info", `{}`, nil); errb == nil || errb.Code != "deserialization_error" {
		t.Fatalf("missing name: %v", errb)
	}
}

func TestFunctionsListFiltersInternalAndSorts(t *testing.T) {
	// It checks the FIFO order the double keeps by default.
	t.Setenv(UnorderedEnv, "")
	e := NewEngine(t)
	c := dial(t, e)
	registerMeta(c, `{"name":"shop"}`)
	c.send(&wire.RegisterFunction{ID: "z::last", Description: "Z"})
	c.send(&wire.RegisterFunction{ID: "a::first", Metadata: json.RawMessage(`{"team":"x"}`)})
	c.send(&wire.RegisterFunction{ID: "a::hidden", Metadata: json.RawMessage(`{"internal":true}`)})
	c.sync()
	var list struct {
		Functions []map[string]any `json:"functions"`
	}
	c.builtin("engine::functions::list", `{}`, &list)
	// The in-process workers' functions (state::*, stream::*, ...) are
	// listed too; this test is about the others.
	list.Functions = slices.DeleteFunc(list.Functions, func(f map[string]any) bool {
		_, builtin := builtins[f["function_id"].(string)]
		return builtin
	})
	if len(list.Functions) != 2 || list.Functions[0]["function_id"] != "a::first" || list.Functions[1]["description"] != "Z" ||
		list.Functions[0]["worker_name"] != "shop" || list.Functions[0]["description"] != nil {
		t.Fatalf("functions::list = %+v", list)
	}
	c.builtin("engine::functions::list", `{"include_internal":true}`, &list)
	n := 0
	for _, f := range list.Functions {
		if strings.HasPrefix(f["function_id"].(string), "engine::") {
			n++
			if f["worker_name"] != runtimeWorkerName {
				t.Fatalf("builtin owner: %v", f)
			}
		}
	}
	// The queue worker's functions are there only WithQueue.
	engineIDs, all := 0, 0
	for id := range builtins {
		if id == enqueueProvider || id == durablePublish {
			continue
		}
		all++
		if strings.HasPrefix(id, "engine::") {
			engineIDs++
		}
	}
	if n != engineIDs || len(list.Functions) != all+3 {
		t.Fatalf("include_internal: %d builtins of %d", n, len(list.Functions))
	}
	c.builtin("engine::functions::list", `{"search":"LAST"}`, &list)
	if len(list.Functions) != 1 {
		t.Fatalf("search: %+v", list)
	}
	c.builtin("engine::functions::list", `{"prefix":"a::","workers":["shop"]}`, &list)
	if len(list.Functions) != 1 {
		t.Fatalf("prefix+workers: %+v", list)
	}
}

func TestFunctionsInfoSingleBatchAndErrors(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.send(&wire.RegisterFunction{ID: "a::f", Description: "F", RequestFormat: json.RawMessage(`{"type":"object"}`)})
	c.sync()
	var d map[string]any
	if errb := c.builtin("engine::functions::info", `{"function_id":"a::f"}`, &d); errb != nil {
		t.Fatal(errb)
	}
	if d["request_schema"] == nil || d["description"] != "F" || d["worker_name"] != "a" || d["registered_triggers"] == nil {
		t.Fatalf("info = %v", d)
	}
	var batch struct {
		Functions []map[string]any `json:"functions"`
	}
	c.builtin("engine::functions::info", `{"function_ids":["a::f","nope","a::f"]}`, &batch)
	if len(batch.Functions) != 2 || batch.Functions[1]["error"] != "not_found" {
		t.Fatalf("batch = %+v", batch)
	}
	for in, code := range map[string]string{
		`{}`:                                    "INVALID_ARGUMENTS",
		`{"function_id":"x","function_ids":[]}`: "INVALID_ARGUMENTS",
		`{"function_ids":[]}`:                   "INVALID_ARGUMENTS",
		`{"function_id":"nope"}`:                "NOT_FOUND",
		`{"function_id":5}`:                     "deserialization_error",
		`"string"`:                              "deserialization_error",
	} {
		if errb := c.builtin("engine::functions::info", in, nil); errb == nil || errb.Code != code {
			t.Fatalf("%s: %v, want %s", in, errb, code)
		}
	}
	ids := make([]string, 33)
	for i := range ids {
		ids[i] = `"f` + strings.Repeat("x", i) + `"`
	}
	if errb := c.builtin("engine::functions::info", `{"function_ids":[`+strings.Join(ids, ",")+`]}`, nil); errb == nil || errb.Message != "too many function_ids (max 32)" {
		t.Fatalf("33 ids: %v", errb)
	}
}

func TestTriggerIntrospectionBuiltins(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	c.send(&wire.RegisterTriggerType{ID: "fs::watch", Description: "Watch files", TriggerRequestFormat: json.RawMessage(`{"type":"object"}`)})
	c.register("files::on")
	c.send(&wire.RegisterTrigger{ID: "t1", TriggerType: "fs::watch", FunctionID: "files::on", Config: json.RawMessage(`{"path":"` + strings.Repeat("p", 100) + `"}`), Metadata: json.RawMessage(`{"m":1}`)})
	if got := c.sync(); len(got) != 1 || got[0].Kind() != wire.KindRegisterTrigger { // c is its own provider
		t.Fatalf("got %s", encodeAll(got))
	}
	var tl struct {
		Triggers []triggerTypeSummary `json:"triggers"`
	}
	c.builtin("engine::triggers::list", `{}`, &tl)
	// Every engine also lists its mandatory workers' types: configuration,
	// log and trace (seen on engine v0.22.1), and the double the types its
	// in-engine workers provide (cron, ...).
	extra := map[string]bool{}
	for _, et := range engineTriggerTypes {
		if et.newProvider != nil && et.newProvider(e) == nil {
			continue // not installed in this engine
		}
		if et.id != "configuration" && et.id != "log" && et.id != "trace" {
			extra[et.id] = true
		}
	}
	byID := map[string]triggerTypeSummary{}
	for _, tt := range tl.Triggers {
		byID[tt.ID] = tt
	}
	if len(tl.Triggers) != 4+len(extra) || len(byID) != len(tl.Triggers) || byID["fs::watch"] != (triggerTypeSummary{"fs::watch", "fs", "Watch files"}) ||
		byID["configuration"].WorkerName != "configuration" ||
		byID["log"] != (triggerTypeSummary{"log", "iii-observability", "Log event trigger"}) || byID["trace"].ID != "trace" {
		t.Fatalf("triggers::list = %+v", tl)
	}
	for id := range extra {
		if byID[id].ID != id {
			t.Fatalf("triggers::list lacks %s: %+v", id, tl)
		}
	}
	c.builtin("engine::triggers::list", `{"include_internal":true}`, &tl)
	if len(tl.Triggers) != 6+len(extra) {
		t.Fatalf("triggers::list internal = %+v", tl)
	}
	var ti map[string]any
	c.builtin("engine::triggers::info", `{"id":"fs::watch"}`, &ti)
	if ti["instance_count"] != 1.0 || ti["configuration_schema"] == nil {
		t.Fatalf("triggers::info = %v", ti)
	}
	var rl struct {
		RegisteredTriggers []registeredTriggerSummary `json:"registered_triggers"`
	}
	c.builtin("engine::registered-triggers::list", `{"trigger_type":"fs::watch"}`, &rl)
	if len(rl.RegisteredTriggers) != 1 || !strings.HasSuffix(rl.RegisteredTriggers[0].ConfigSummary, "…") || len([]rune(rl.RegisteredTriggers[0].ConfigSummary)) != 81 {
		t.Fatalf("registered-triggers::list = %+v", rl)
	}
	var ri map[string]any
	c.builtin("engine::registered-triggers::info", `{"id":"t1"}`, &ri)
	if ri["trigger"] == nil || ri["function"] == nil || ri["metadata"] == nil {
		t.Fatalf("registered-triggers::info = %v", ri)
	}
	if errb := c.builtin("engine::registered-triggers::info", `{"id":"nope"}`, nil); errb == nil || errb.Code != "NOT_FOUND" {
		t.Fatalf("unknown: %v", errb)
	}
	if errb := c.builtin("engine::triggers::info", `{"id":"nope"}`, nil); errb == nil || errb.Message != "Trigger type 'nope' is not registered." {
		t.Fatalf("unknown: %v", errb)
	}
}

func TestBuiltinInputThatDoesNotDecodeIsADeserializationError(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	for _, in := range []string{`null`, `[1]`, `{"buffer_size":-1}`, `{"buffer_size":"x"}`} {
		errb := c.builtin("engine::channels::create", in, nil)
		if errb == nil || errb.Code != "deserialization_error" || !strings.HasPrefix(errb.Message, "Failed to deserialize input for engine::channels::create: ") {
			t.Fatalf("%s: %v", in, errb)
		}
	}
}

func TestLogBuiltinsAcceptAndReturnNoResult(t *testing.T) {
	e := NewEngine(t)
	c := dial(t, e)
	r := c.callSync("engine::log::warn", `{"message":"careful","service_name":"svc"}`)
	if r.Error != nil || r.Result != nil {
		t.Fatalf("result = %s", wire.Encode(r))
	}
	logs, err := e.WaitLogs(ctxT(t), 1)
	if err != nil || logs[0].Body.String() != "careful" || logs[0].SeverityText != "WARN" {
		t.Fatalf("Logs = %+v %v", logs, err)
	}
}
