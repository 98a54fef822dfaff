package connection

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1:49134":                    "ws://127.0.0.1:49134",
		"ws://u:p@127.0.0.1:1/x?token=t&a=b#frag": "ws://REDACTED@127.0.0.1:1/x?a=REDACTED&token=REDACTED",
		"wss://127.0.0.1/?token=abc":              "wss://127.0.0.1/?token=REDACTED",
		"ws://u:p@127.0.0.1:1/%zz?token=t":        "ws://REDACTED@127.0.0.1:1/%zz?REDACTED",
		"ws://127.0.0.1/%zz#t":                    "ws://127.0.0.1/%zz?REDACTED",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
