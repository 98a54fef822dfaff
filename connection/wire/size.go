package wire

// envelope bounds the bytes of an invokefunction or invocationresult frame
// other than its strings and raw JSON values: the type, the keys, the
// punctuation, the invocation id and the action's fixed text.
const envelope = 512

// maxEscape is the most bytes a byte of a string can take once encoded
// (a control character becomes \u00XX).
const maxEscape = 6

// FrameFits reports whether m encodes to at most limit bytes. For an
// invokefunction or an invocationresult it answers from the sizes of the
// fields when their worst-case encoding fits, and encodes m to measure it
// only when that bound does not (a frame near the limit, or one with
// large string fields); any other message is encoded.
func FrameFits(m Message, limit int) bool {
	var bound int
	switch m := m.(type) {
	case *InvokeFunction:
		bound = len(m.Data) + len(m.Metadata) + maxEscape*(len(m.FunctionID)+len(m.Traceparent)+
			len(m.Baggage)+len(m.Action.Queue)+len(m.Namespace))
	case *InvocationResult:
		bound = len(m.Result) + maxEscape*(len(m.FunctionID)+len(m.Traceparent)+len(m.Baggage))
		if e := m.Error; e != nil {
			bound += maxEscape * (len(e.Code) + len(e.Message) + len(e.Stacktrace))
		}
	default:
		return len(m.AppendJSON(nil)) <= limit
	}
	if bound+envelope <= limit {
		return true
	}
	return len(m.AppendJSON(nil)) <= limit
}
