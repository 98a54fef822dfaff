package connection

import (
	"net/url"
	"strings"
)

// Redacted stands for a secret left out of a log record or an error.
const Redacted = "REDACTED"

// RedactURL returns raw fit for logs and error texts: user info and every
// query value (tokens often travel as ?token=...) are replaced by
// Redacted, the fragment is dropped. A URL that does not parse keeps only
// what cannot hold a secret either.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i] + "?" + Redacted
		}
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			start := 0
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				start = j + 3
			}
			raw = raw[:start] + Redacted + raw[i:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	if u.RawQuery != "" || u.ForceQuery {
		q, _ := url.ParseQuery(u.RawQuery)
		for k := range q {
			q[k] = []string{Redacted}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
