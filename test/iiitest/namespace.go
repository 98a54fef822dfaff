package iiitest

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/iii-go/iii/connection/wire"
)

// WithNamespaces makes the double speak the namespaces of engine v0.23
// (as of v0.23.0-rc.4) instead of v0.22.1, which ignores every namespace
// field:
//
//   - A connection's namespace is the "namespace" of its
//     engine::workers::register call (absent: "default"). Its
//     registrations (functions, services, trigger types, triggers and
//     their removals) wait, in order, until that call arrives, or until
//     the grace (WithNamespaceGrace, 5 s) ran out, which files them under
//     "default".
//   - Functions are kept per namespace. An invokefunction resolves in its
//     "namespace" only (absent: "default", whoever the caller is); a miss
//     is function_not_found naming the namespaces the id is in. A blank
//     namespace is refused with INVALID_NAMESPACE.
//   - A registerfunction whose id another live worker holds in the
//     namespace, or an engine:: id outside "default", is refused with a
//     registrationrejected FUNCTION_NAMESPACE_CONFLICT (owner_worker_id
//     empty for engine::); the connection stays up.
//   - One live worker of a name per namespace: a second
//     engine::workers::register of the name gets a registrationrejected
//     WORKER_NAMESPACE_CONFLICT, then a Close frame, and its registrations
//     are dropped.
//   - Trigger types are kept per namespace (the registertriggertype's
//     "namespace", else the connection's). A binding's provider is the one
//     in its "trigger_namespace" if named (that one or none), else the one
//     in the connection's namespace, else the one in "default". Its target
//     resolves in its "namespace" (absent: "default"), and the provider
//     gets both in the registertrigger it is sent ("namespace" and
//     "trigger_namespace", each omitted when "default"). A binding that
//     fell back to the default provider moves to a provider that registers
//     later in its home namespace (the default one is told to unregister
//     it).
//   - An enqueued call runs in its namespace (the queue provider gets it
//     as "namespace" when not "default").
//   - engine::functions::list, engine::workers::list and ::info report
//     "namespace".
//
// Not modelled: RBAC scoping of namespaces, and the other introspection
// builtins: trigger types are listed without their namespace, and
// registered triggers and dead letters show a function or trigger type of
// another namespace as "<namespace>\x00<id>".
//
// The SDKs' default worker name is hostname:pid, the same for every worker
// of a test process: give each worker a name of its own
// (WorkerMetadata.Name), or the second is refused.
func WithNamespaces() Option { return func(c *config) { c.namespaces = true } }

// WithNamespaceGrace sets how long, with WithNamespaces, a connection's
// registrations wait for its engine::workers::register before they are
// filed under "default" (default 5 s; the engine's
// registration_namespace_grace_ms).
func WithNamespaceGrace(d time.Duration) Option { return func(c *config) { c.nsGrace = d } }

// Namespace codes of engine v0.23.
const (
	defaultNamespace          = "default"
	functionNamespaceConflict = wire.FunctionNamespaceConflict
	workerNamespaceConflict   = wire.WorkerNamespaceConflict
	invalidNamespace          = "INVALID_NAMESPACE"
	// namespaceGrace is how long registrations wait for the connection's
	// namespace (the engine's REGISTRATION_NAMESPACE_GRACE).
	namespaceGrace = 5 * time.Second
)

// nsKey is the key of id in namespace ns in the function and trigger type
// tables: the bare id for the default namespace, so that v0.22.1 behaviour
// and the builtins are untouched.
func nsKey(ns, id string) string {
	if ns == "" || ns == defaultNamespace {
		return id
	}
	return ns + "\x00" + id
}

// splitKey is the inverse of nsKey; the namespace is "" for default.
func splitKey(k string) (ns, id string) {
	if i := strings.IndexByte(k, 0); i >= 0 {
		return k[:i], k[i+1:]
	}
	return "", k
}

func nsName(ns string) string {
	if ns == "" {
		return defaultNamespace
	}
	return ns
}

func blankNS(ns string) bool { return ns != "" && strings.TrimSpace(ns) == "" }

func blankNSError(field string) *wire.ErrorBody {
	return &wire.ErrorBody{Code: invalidNamespace, Message: "`" + field +
		"` is empty: it was named and left blank. Give it a name, or omit it to use `default`."}
}

// nsConn is a connection's namespace state (worker.nsx), guarded by
// Engine.mu.
type nsConn struct {
	resolved bool
	ns       string         // "" is the default namespace
	buf      []wire.Message // registrations waiting for the namespace
	grace    *time.Timer
	lease    string // the key of the worker name lease it holds
}

// fnKey is the table key of function id registered by c.
func (c *worker) fnKey(id string) string { return nsKey(c.nsx.ns, id) }

// bindingNS is the namespace part of a binding made in namespace mode.
type bindingNS struct {
	typ      string // the bare trigger type id
	explicit string // its trigger_namespace as sent; "" lets the engine resolve
	home     string // the registering connection's namespace
}

// typeID is the binding's bare trigger type id.
func (b *binding) typeID() string {
	_, id := splitKey(b.ttype)
	return id
}

// functionID is the binding's bare function id.
func (b *binding) functionID() string {
	_, id := splitKey(b.function)
	return id
}

func (b *binding) nsRegisterMsg(cfg json.RawMessage) *wire.RegisterTrigger {
	target, fn := splitKey(b.function)
	provider, typ := splitKey(b.ttype)
	return &wire.RegisterTrigger{ID: b.id, TriggerType: typ, FunctionID: fn, Config: cfg, Metadata: b.metadata,
		Namespace: target, TriggerNamespace: provider}
}

// notFoundLocked is the function_not_found of key.
func (e *Engine) notFoundLocked(st *state, key string) *wire.ErrorBody {
	ns, id := splitKey(key)
	if !e.cfg.namespaces {
		return notFound(id)
	}
	var in []string
	for k := range st.functions {
		if kns, kid := splitKey(k); kid == id {
			in = append(in, nsName(kns))
		}
	}
	hint := ""
	if len(in) > 0 {
		sort.Strings(in)
		hint = " It is registered in namespace(s): " + strings.Join(in, ", ") + "."
	}
	return &wire.ErrorBody{Code: "function_not_found", Message: "Function " + id + " not found in namespace " + nsName(ns) + "." + hint}
}

// invokeKey is the table key an invokefunction resolves.
func (e *Engine) invokeKey(m *wire.InvokeFunction) string {
	if !e.cfg.namespaces {
		return m.FunctionID
	}
	return nsKey(m.Namespace, m.FunctionID)
}

// nsField is the "namespace" of the introspection entry of table key k:
// none without WithNamespaces.
func (e *Engine) nsField(k string) string {
	if !e.cfg.namespaces {
		return ""
	}
	ns, _ := splitKey(k)
	return nsName(ns)
}

// enqueueNamespace is the "namespace" of the enqueue provider's input: the
// call's, when not default (the engine omits it for default, which queue
// providers that predate namespaces refuse).
func (e *Engine) enqueueNamespace(m *wire.InvokeFunction) string {
	if !e.cfg.namespaces || nsName(m.Namespace) == defaultNamespace {
		return ""
	}
	return m.Namespace
}

// nsInvokeRefused answers an invokefunction with a blank namespace.
func (e *Engine) nsInvokeRefused(c *worker, m *wire.InvokeFunction, sync bool) bool {
	if !e.cfg.namespaces || !blankNS(m.Namespace) {
		return false
	}
	if sync {
		r := wire.InvocationResult{InvocationID: m.InvocationID, FunctionID: m.FunctionID, Error: blankNSError("namespace")}
		fb := getBuf()
		fb.b = r.AppendJSON(fb.b)
		c.send(fb, false)
	}
	return true
}

// isNamespacedRegistration: the frames that wait for the namespace.
func isNamespacedRegistration(m wire.Message) bool {
	switch m.(type) {
	case *wire.RegisterFunction, *wire.UnregisterFunction, *wire.RegisterService,
		*wire.RegisterTrigger, *wire.UnregisterTrigger, *wire.RegisterTriggerType:
		return true
	}
	return false
}

// nsControlLocked handles a control frame in namespace mode and reports
// whether it did; the others go to controlLocked.
func (e *Engine) nsControlLocked(ob *outbox, c *worker, msg wire.Message) bool {
	if !isNamespacedRegistration(msg) {
		return false
	}
	if !c.nsx.resolved {
		c.nsx.buf = append(c.nsx.buf, msg)
		if c.nsx.grace == nil {
			grace := e.cfg.nsGrace
			if grace <= 0 {
				grace = namespaceGrace
			}
			c.nsx.grace = time.AfterFunc(grace, func() { e.graceExpired(c) })
		}
		return true
	}
	switch m := msg.(type) {
	case *wire.RegisterFunction:
		e.nsRegisterFunctionLocked(ob, c, m)
	case *wire.UnregisterFunction:
		delete(c.fns, m.ID)
		if f := c.st.functions[c.fnKey(m.ID)]; f != nil && f.owner == c {
			delete(c.st.functions, c.fnKey(m.ID))
		}
	case *wire.RegisterTriggerType:
		e.nsRegisterTriggerTypeLocked(ob, c, m)
	case *wire.RegisterTrigger:
		e.nsRegisterTriggerLocked(ob, c, m)
	default:
		return false
	}
	return true
}

// graceExpired files a connection's waiting registrations under the
// default namespace.
func (e *Engine) graceExpired(c *worker) {
	if !e.enter() {
		return
	}
	defer e.wg.Done()
	ob := outbox{}
	e.mu.Lock()
	if !c.gone && !c.nsx.resolved && c.st == e.st {
		e.log.Warn("iiitest: no engine::workers::register within the namespace grace; registrations go to the default namespace", "worker", c.id)
		e.resolveNSLocked(&ob, c, "")
		e.notifyLocked()
	}
	e.mu.Unlock()
	e.flush(&ob)
}

// resolveNSLocked fixes c's namespace and applies what waited for it.
func (e *Engine) resolveNSLocked(ob *outbox, c *worker, ns string) {
	if c.nsx.grace != nil {
		c.nsx.grace.Stop()
	}
	if c.nsx.resolved {
		return
	}
	c.nsx.resolved, c.nsx.ns = true, ns
	buf := c.nsx.buf
	c.nsx.buf = nil
	for _, m := range buf {
		if !e.nsControlLocked(ob, c, m) {
			e.controlLocked(ob, c, m)
		}
	}
}

// nsCleanupLocked releases c's namespace state when it goes.
func (e *Engine) nsCleanupLocked(c *worker) {
	if c.nsx.grace != nil {
		c.nsx.grace.Stop()
	}
	c.nsx.buf = nil
	if c.nsx.lease != "" && c.st.names[c.nsx.lease] == c {
		delete(c.st.names, c.nsx.lease)
	}
}

// nsWorkerRegister is the namespace part of engine::workers::register for
// worker callerID: it refuses a blank namespace and a worker name held by
// another live worker (false: the call is answered), and otherwise fixes
// the connection's namespace.
func (e *Engine) nsWorkerRegister(callerID string, data json.RawMessage, name *string, reply func(json.RawMessage, *wire.ErrorBody)) bool {
	var in struct {
		Namespace *string `json:"namespace"`
	}
	_ = json.Unmarshal(data, &in)
	declared := ""
	if in.Namespace != nil {
		if strings.TrimSpace(*in.Namespace) == "" {
			reply(nil, &wire.ErrorBody{Code: invalidNamespace, Message: "namespace is empty: give it a name, or omit the field to register in 'default'."})
			return false
		}
		if *in.Namespace != defaultNamespace {
			declared = *in.Namespace
		}
	}
	ob := outbox{}
	e.mu.Lock()
	st := e.st
	w := st.workers[callerID]
	if w == nil {
		e.mu.Unlock()
		return true
	}
	if w.nsx.resolved {
		declared = w.nsx.ns // fixed by the grace timer: it stays
	}
	if n := sanitizeWorkerText(name); n != nil && *n != "" {
		lease := declared + "\x00" + *n
		if st.names == nil {
			st.names = make(map[string]*worker)
		}
		if owner := st.names[lease]; owner != nil && owner != w && !owner.gone {
			if w.nsx.grace != nil {
				w.nsx.grace.Stop()
			}
			w.nsx.buf = nil
			ob.add(w, &wire.RegistrationRejected{Code: workerNamespaceConflict, Namespace: nsName(declared), WorkerName: *n, OwnerWorkerID: owner.id})
			ob.later = append(ob.later, func() { w.closeWith(nil) })
			e.mu.Unlock()
			e.flush(&ob)
			reply(json.RawMessage(`{"success":false}`), nil)
			return false
		}
		if w.nsx.lease != "" && w.nsx.lease != lease && st.names[w.nsx.lease] == w {
			delete(st.names, w.nsx.lease)
		}
		st.names[lease], w.nsx.lease = w, lease
	}
	e.resolveNSLocked(&ob, w, declared)
	e.notifyLocked()
	e.mu.Unlock()
	e.flush(&ob)
	return true
}

func (e *Engine) nsRegisterFunctionLocked(ob *outbox, c *worker, m *wire.RegisterFunction) {
	if m.Invocation != nil {
		e.registerFunctionLocked(ob, c, m) // dropped, as in v0.22.1
		return
	}
	st, ns := c.st, c.nsx.ns
	if strings.HasPrefix(m.ID, "engine::") && ns != "" {
		ob.add(c, &wire.RegistrationRejected{Code: functionNamespaceConflict, Namespace: ns, FunctionID: m.ID})
		return
	}
	key := nsKey(ns, m.ID)
	if prev := st.functions[key]; prev != nil && prev.owner != nil && prev.owner != c && !prev.owner.gone {
		ob.add(c, &wire.RegistrationRejected{Code: functionNamespaceConflict, Namespace: nsName(ns), FunctionID: m.ID, OwnerWorkerID: prev.owner.id})
		return
	}
	st.functions[key] = &function{id: m.ID, owner: c, description: m.Description,
		requestFormat: m.RequestFormat, responseFormat: m.ResponseFormat, metadata: m.Metadata}
	c.fns[m.ID] = struct{}{}
}

func (e *Engine) nsRegisterTriggerTypeLocked(ob *outbox, c *worker, m *wire.RegisterTriggerType) {
	if blankNS(m.Namespace) {
		e.log.Warn("iiitest: registertriggertype with a blank namespace dropped", "worker", c.id, "type", m.ID)
		return
	}
	ns := c.nsx.ns
	if m.Namespace != "" {
		ns = m.Namespace
	}
	st, key := c.st, nsKey(ns, m.ID)
	st.ttypes[key] = &ttype{id: m.ID, description: m.Description, triggerRequestFormat: m.TriggerRequestFormat,
		callRequestFormat: m.CallRequestFormat, provider: c}
	for _, id := range sortedKeys(st.bindings) {
		if b := st.bindings[id]; b.ttype == key {
			ob.add(c, b.registerMsg())
		}
	}
	// Bindings of this namespace that fell back to the default provider
	// move to the one that just registered at home.
	for _, id := range sortedKeys(st.bindings) {
		b := st.bindings[id]
		if b.nsx == nil || b.nsx.explicit != "" || b.nsx.typ != m.ID || nsName(b.nsx.home) != nsName(ns) || b.ttype == key {
			continue
		}
		e.stopBindingLocked(ob, st, b)
		b.ttype = key
		ob.add(c, b.registerMsg())
	}
	for _, id := range sortedKeys(st.parked) {
		b := st.parked[id]
		if b.typeID() != m.ID || e.providerKeyLocked(st, b) != key {
			continue
		}
		delete(st.parked, id)
		if b.owner != nil && b.owner.gone {
			continue
		}
		b.ttype = key
		st.bindings[id] = b
		ob.add(c, b.registerMsg())
	}
}

// providerKeyLocked is the key of the trigger type serving b: its explicit
// namespace's, else its home's, else the default one's; "" if none is
// registered.
func (e *Engine) providerKeyLocked(st *state, b *binding) string {
	typ := b.typeID()
	if b.nsx == nil {
		return typ
	}
	cands := []string{b.nsx.explicit}
	if b.nsx.explicit == "" {
		cands = []string{b.nsx.home, ""}
	}
	for _, ns := range cands {
		if k := nsKey(ns, typ); st.ttypes[k] != nil {
			return k
		}
	}
	return ""
}

func (e *Engine) nsRegisterTriggerLocked(ob *outbox, c *worker, m *wire.RegisterTrigger) {
	for _, f := range []struct{ name, v string }{{"namespace", m.Namespace}, {"trigger_namespace", m.TriggerNamespace}} {
		if blankNS(f.v) {
			ob.add(c, &wire.TriggerRegistrationResult{ID: m.ID, TriggerType: m.TriggerType, FunctionID: m.FunctionID, Error: blankNSError(f.name)})
			return
		}
	}
	b := &binding{id: m.ID, function: nsKey(m.Namespace, m.FunctionID), config: m.Config, metadata: m.Metadata, owner: c,
		nsx: &bindingNS{typ: m.TriggerType, explicit: m.TriggerNamespace, home: c.nsx.ns}}
	b.ttype = m.TriggerType
	if k := e.providerKeyLocked(c.st, b); k != "" {
		b.ttype = k
	} else if m.TriggerNamespace != "" {
		b.ttype = nsKey(m.TriggerNamespace, m.TriggerType) // parked for that provider
	}
	e.addBindingLocked(ob, c.st, b)
}

// FunctionsIn returns the functions workers registered in namespace ns
// ("" or "default" for the default one; see WithNamespaces): function id
// -> owning worker id.
func (e *Engine) FunctionsIn(ns string) map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string)
	for k, f := range e.st.functions {
		if kns, id := splitKey(k); nsName(kns) == nsName(ns) && f.owner != nil {
			out[id] = f.owner.id
		}
	}
	return out
}

// WaitFunctionIn waits until function id is registered in namespace ns.
func (e *Engine) WaitFunctionIn(ctx context.Context, ns, id string) error {
	return e.waitFor(ctx, func() bool { return e.st.functions[nsKey(ns, id)] != nil })
}
