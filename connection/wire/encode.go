package wire

import (
	"encoding/json"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Encode returns the JSON encoding of m.
func Encode(m Message) []byte { return m.AppendJSON(make([]byte, 0, 128)) }

// appendString appends s as a JSON string escaped the way serde_json does:
// only '"', '\\' and control characters, with \b \f \n \r \t short forms and
// lower-case \u00XX otherwise. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is plain and not yet copied
	for i := 0; ; {
		// Find the next byte that is not plain, a word at a time; dense
		// escapes (JSON in a string) find it in the first word, inline.
		if i+8 <= len(s) {
			if m := special(load64(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
			} else {
				i = plainRunString(s, i+8)
			}
		} else {
			i = plainRunString(s, i)
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			if c < 0xe0 && c >= 0xc2 && i+1 < len(s) && s[i+1]&0xc0 == 0x80 {
				i += 2 // a 2-byte rune, kept as it is
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\ufffd"...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// frame helps appending the members of one object.
type frame struct{ b []byte }

func begin(dst []byte, k Kind) frame {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, k.String()...)
	return frame{append(dst, '"')}
}

func (f *frame) key(k string) {
	f.b = append(f.b, ',', '"')
	f.b = append(f.b, k...)
	f.b = append(f.b, '"', ':')
}

func (f *frame) str(k, v string) {
	f.key(k)
	f.b = appendString(f.b, v)
}

// optStr writes a string member unless it is empty (absent).
func (f *frame) optStr(k, v string) {
	if v != "" {
		f.str(k, v)
	}
}

// raw writes an "any JSON" member verbatim; nil is written as null.
func (f *frame) raw(k string, v json.RawMessage) {
	f.key(k)
	if v == nil {
		f.b = append(f.b, "null"...)
		return
	}
	f.b = append(f.b, v...)
}

// optRaw writes an "any JSON" member unless it is absent (nil).
func (f *frame) optRaw(k string, v json.RawMessage) {
	if v != nil {
		f.raw(k, v)
	}
}

func (f *frame) uuid(k string, u UUID) {
	f.key(k)
	f.b = append(f.b, '"')
	f.b = u.appendText(f.b)
	f.b = append(f.b, '"')
}

func (f *frame) errorBody(k string, e *ErrorBody) {
	if e == nil {
		return
	}
	f.key(k)
	f.b = appendErrorBody(f.b, e)
}

func appendErrorBody(b []byte, e *ErrorBody) []byte {
	b = append(b, `{"code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if e.Stacktrace != "" {
		b = append(b, `,"stacktrace":`...)
		b = appendString(b, e.Stacktrace)
	}
	return append(b, '}')
}

func (f *frame) end() []byte { return append(f.b, '}') }

// AppendJSON implements Message.
func (m *RegisterFunction) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindRegisterFunction)
	f.str("id", m.ID)
	f.optStr("description", m.Description)
	f.optRaw("request_format", m.RequestFormat)
	f.optRaw("response_format", m.ResponseFormat)
	f.optRaw("metadata", m.Metadata)
	if inv := m.Invocation; inv != nil {
		f.key("invocation")
		f.b = append(f.b, `{"url":`...)
		f.b = appendString(f.b, inv.URL)
		if inv.Method != "" {
			f.b = append(f.b, `,"method":`...)
			f.b = appendString(f.b, inv.Method)
		}
		if inv.TimeoutMS != nil {
			f.b = append(f.b, `,"timeout_ms":`...)
			f.b = strconv.AppendUint(f.b, *inv.TimeoutMS, 10)
		}
		if inv.Headers != nil {
			f.b = append(f.b, `,"headers":{`...)
			keys := make([]string, 0, len(inv.Headers))
			for k := range inv.Headers {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i > 0 {
					f.b = append(f.b, ',')
				}
				f.b = appendString(f.b, k)
				f.b = append(f.b, ':')
				f.b = appendString(f.b, inv.Headers[k])
			}
			f.b = append(f.b, '}')
		}
		if a := inv.Auth; a != nil {
			f.b = append(f.b, `,"auth":{"type":`...)
			f.b = appendString(f.b, a.Type)
			for _, kv := range [...][2]string{{"secret_key", a.SecretKey}, {"token_key", a.TokenKey}, {"header", a.Header}, {"value_key", a.ValueKey}} {
				if kv[1] != "" {
					f.b = append(f.b, ',', '"')
					f.b = append(f.b, kv[0]...)
					f.b = append(f.b, '"', ':')
					f.b = appendString(f.b, kv[1])
				}
			}
			f.b = append(f.b, '}')
		}
		f.b = append(f.b, '}')
	}
	return f.end()
}

// AppendJSON implements Message.
func (m *UnregisterFunction) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindUnregisterFunction)
	f.str("id", m.ID)
	return f.end()
}

// AppendJSON implements Message.
func (m *UnregisterTriggerType) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindUnregisterTriggerType)
	f.str("id", m.ID)
	return f.end()
}

// AppendJSON implements Message.
func (m *RegisterTriggerType) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindRegisterTriggerType)
	f.str("id", m.ID)
	f.str("description", m.Description)
	f.optRaw("trigger_request_format", m.TriggerRequestFormat)
	f.optRaw("call_request_format", m.CallRequestFormat)
	f.optStr("namespace", m.Namespace)
	return f.end()
}

// AppendJSON implements Message.
func (m *RegisterTrigger) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindRegisterTrigger)
	f.str("id", m.ID)
	f.str("trigger_type", m.TriggerType)
	f.str("function_id", m.FunctionID)
	f.raw("config", m.Config)
	f.optRaw("metadata", m.Metadata)
	f.optStr("namespace", m.Namespace)
	f.optStr("trigger_namespace", m.TriggerNamespace)
	return f.end()
}

// AppendJSON implements Message.
func (m *UnregisterTrigger) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindUnregisterTrigger)
	f.str("id", m.ID)
	f.optStr("trigger_type", m.TriggerType)
	return f.end()
}

// AppendJSON implements Message.
func (m *TriggerRegistrationResult) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindTriggerRegistrationResult)
	f.str("id", m.ID)
	f.str("trigger_type", m.TriggerType)
	f.str("function_id", m.FunctionID)
	f.errorBody("error", m.Error)
	return f.end()
}

// AppendJSON implements Message.
func (m *InvokeFunction) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindInvokeFunction)
	if m.HasInvocationID {
		f.uuid("invocation_id", m.InvocationID)
	} else if m.nullID {
		f.b = append(f.b, `,"invocation_id":null`...)
	}
	f.str("function_id", m.FunctionID)
	f.raw("data", m.Data)
	f.optStr("traceparent", m.Traceparent)
	f.optStr("baggage", m.Baggage)
	switch m.Action.Kind {
	case ActionVoid:
		f.key("action")
		f.b = append(f.b, `{"type":"void"}`...)
	case ActionEnqueue:
		f.key("action")
		f.b = append(f.b, `{"type":"enqueue","queue":`...)
		f.b = appendString(f.b, m.Action.Queue)
		f.b = append(f.b, '}')
	}
	f.optRaw("metadata", m.Metadata)
	f.optStr("namespace", m.Namespace)
	return f.end()
}

// AppendJSON implements Message.
func (m *InvocationResult) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindInvocationResult)
	f.uuid("invocation_id", m.InvocationID)
	f.str("function_id", m.FunctionID)
	f.optRaw("result", m.Result)
	f.errorBody("error", m.Error)
	f.optStr("traceparent", m.Traceparent)
	f.optStr("baggage", m.Baggage)
	return f.end()
}

// AppendJSON implements Message.
func (m *RegisterService) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindRegisterService)
	f.str("id", m.ID)
	f.optStr("name", m.Name)
	f.optStr("description", m.Description)
	f.optStr("parent_service_id", m.ParentServiceID)
	return f.end()
}

// AppendJSON implements Message.
func (*Ping) AppendJSON(dst []byte) []byte { return append(dst, `{"type":"ping"}`...) }

// AppendJSON implements Message.
func (*Pong) AppendJSON(dst []byte) []byte { return append(dst, `{"type":"pong"}`...) }

// AppendJSON implements Message.
func (m *Reattach) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindReattach)
	f.str("previous_worker_id", m.PreviousWorkerID)
	f.optStr("reattach_token", m.ReattachToken)
	return f.end()
}

// AppendJSON implements Message.
func (m *WorkerRegistered) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindWorkerRegistered)
	f.str("worker_id", m.WorkerID)
	f.optStr("reattach_token", m.ReattachToken)
	return f.end()
}

// AppendJSON implements Message.
func (m *RegistrationRejected) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindRegistrationRejected)
	f.str("code", m.Code)
	f.str("namespace", m.Namespace)
	f.optStr("worker_name", m.WorkerName)
	f.optStr("function_id", m.FunctionID)
	f.str("owner_worker_id", m.OwnerWorkerID)
	return f.end()
}

// AppendJSON implements Message.
func (m *ErrorFrame) AppendJSON(dst []byte) []byte {
	f := begin(dst, KindError)
	f.errorBody("error", &m.Error)
	return f.end()
}

// AppendString appends s as a JSON string, escaped as the engine escapes it.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }
